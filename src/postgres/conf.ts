// Pure renderers for the files pgha owns: pgha.conf (included from postgresql.conf), the passfile
// and pg_hba.conf. Tested without a server.

export type ParamValue = string | number | boolean;

/**
 * Settings pgha needs whatever the user sets. wal_log_hints lets pg_rewind work (data checksums
 * are also on from initdb); the short sender/receiver timeouts make a standby notice a dead
 * upstream in seconds rather than the default minute, and the 250 ms retry interval makes it
 * reconnect quickly after its upstream was promoted or replaced (the default waits 5 s).
 */
export const REQUIRED_PARAMETERS: Record<string, ParamValue> = {
  wal_level: 'replica',
  hot_standby: 'on',
  max_wal_senders: 10,
  max_replication_slots: 10,
  wal_log_hints: 'on',
  wal_keep_size: '128MB',
  password_encryption: 'scram-sha-256',
  hot_standby_feedback: 'on',
  wal_receiver_status_interval: '1s',
  wal_sender_timeout: '5s',
  wal_receiver_timeout: '5s',
  wal_retrieve_retry_interval: '250ms',
};

/** Parameters pgha sets itself; a user value for them is ignored. */
export const MANAGED_PARAMETERS = new Set(['synchronous_standby_names', 'port', 'listen_addresses', 'unix_socket_directories', 'primary_conninfo', 'primary_slot_name', 'recovery_target_timeline', 'hba_file', 'data_directory']);

/** A value in postgresql.conf syntax: numbers bare, everything else single-quoted. */
export function confValue(v: ParamValue): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A value in a libpq keyword/value connection string. */
export function libpqValue(v: string): string {
  return /^[A-Za-z0-9_./:-]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export interface StandbyConf {
  host: string;
  port: number;
  user: string;
  passfile: string;
  applicationName: string;
  slot: string | null;
  /** Member name of the upstream, recorded so that observe() can tell whom we follow. */
  upstreamName: string;
}

export interface PghaConfInput {
  port: number;
  listenHost: string;
  socketDir: string;
  /** dynamic config postgresql.parameters, then node postgresql.parameters (later wins). */
  parameters: Array<Record<string, ParamValue>>;
  standby: StandbyConf | null;
  /** synchronous_standby_names; '' when asynchronous. */
  syncNames?: string;
}

export function renderPghaConf(i: PghaConfInput): string {
  const merged: Record<string, ParamValue> = { ...REQUIRED_PARAMETERS };
  for (const layer of i.parameters) for (const [k, v] of Object.entries(layer)) if (!MANAGED_PARAMETERS.has(k)) merged[k] = v;
  const lines = ['# Written by pgha; changes are overwritten. Set parameters in the pgha configuration.'];
  for (const [k, v] of Object.entries(merged).sort(([a], [b]) => a.localeCompare(b))) lines.push(`${k} = ${confValue(v)}`);
  lines.push(`synchronous_standby_names = ${confValue(i.syncNames ?? '')}`);
  lines.push(`port = ${i.port}`, `listen_addresses = ${confValue(i.listenHost)}`, `unix_socket_directories = ${confValue(i.socketDir)}`);
  if (i.standby !== null) {
    const s = i.standby;
    const conninfo = [
      `host=${libpqValue(s.host)}`, `port=${s.port}`, `user=${libpqValue(s.user)}`, `passfile=${libpqValue(s.passfile)}`,
      `application_name=${libpqValue(s.applicationName)}`, 'connect_timeout=2', 'keepalives_idle=2', 'keepalives_interval=1', 'keepalives_count=3',
    ].join(' ');
    lines.push(`# pgha-upstream: ${s.upstreamName}`, `primary_conninfo = ${confValue(conninfo)}`);
    if (s.slot !== null) lines.push(`primary_slot_name = ${confValue(s.slot)}`);
    lines.push(`recovery_target_timeline = 'latest'`);
  } else {
    lines.push(`primary_conninfo = ''`, `primary_slot_name = ''`);
  }
  return `${lines.join('\n')}\n`;
}

/** The member name from a pgha.conf's "# pgha-upstream:" line, or null. */
export function upstreamFromConf(text: string): string | null {
  const m = /^# pgha-upstream: (\S+)$/m.exec(text);
  return m?.[1] ?? null;
}

export interface PgpassEntry { host: string; port: number | '*'; database: string; user: string; password: string }

export function renderPgpass(entries: PgpassEntry[]): string {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return entries.map((e) => [esc(e.host), String(e.port), esc(e.database), esc(e.user), esc(e.password)].join(':')).join('\n') + '\n';
}

export interface HbaRoles { superuser: string; replication: string; rewind: string | null }

/** Default pg_hba.conf: only pgha's roles, only with scram-sha-256. */
export function defaultHba(r: HbaRoles): string[] {
  const lines = [
    `local all ${r.superuser} scram-sha-256`,
    `host all ${r.superuser} all scram-sha-256`,
    `host replication ${r.replication} all scram-sha-256`,
  ];
  if (r.rewind !== null && r.rewind !== r.superuser) lines.push(`host postgres ${r.rewind} all scram-sha-256`);
  return lines;
}

export function renderHba(lines: string[]): string {
  return `# Written by pgha at bootstrap (bootstrap.pg_hba).\n${lines.join('\n')}\n`;
}

/** synchronous_standby_names for `FIRST count (names)`; [] blocks commits (strict, nobody left); null is ''. */
export function syncStandbyNames(names: string[] | null, count: number): string {
  if (names === null) return '';
  const list = names.length === 0 ? ['pgha_no_sync_standby'] : names;
  return `FIRST ${Math.min(count, list.length)} (${list.map((n) => `"${n.replace(/"/g, '""')}"`).join(', ')})`;
}
