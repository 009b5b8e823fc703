// Pure renderers for the files pgha owns: pgha.conf (included from postgresql.conf), the passfile
// and pg_hba.conf, plus libpq connection strings. Tested without a server. No password is ever
// written into pgha.conf: primary_conninfo names a passfile instead.
import { PgHaError } from '../errors.ts';

export type ParamValue = string | number | boolean;

/**
 * Settings pgha needs whatever the user sets (a user value for one of these wins, except for the
 * managed ones below).
 * - wal_level replica, max_wal_senders, max_replication_slots, hot_standby: streaming standbys
 *   with a slot each.
 * - wal_log_hints: pg_rewind needs hint-bit changes WAL-logged (data checksums, on from initdb,
 *   imply it too; this covers data directories made elsewhere).
 * - wal_keep_size: a standby without a slot (use_slots off) can fall 128 MB behind and catch up.
 * - hot_standby_feedback: queries on a standby do not get cancelled by vacuum on the primary.
 * - wal_receiver_status_interval 1s: the primary sees standby positions (and sync state) within
 *   a second.
 * - wal_sender_timeout / wal_receiver_timeout 5s: a dead upstream or standby is noticed in 5 s
 *   instead of the default minute, so a standby reconnects to a new primary quickly; 5 s stays
 *   well above the 1 s status interval, so a live but busy peer is not cut off.
 * - wal_retrieve_retry_interval 250ms: after losing its upstream a standby retries every 250 ms
 *   (the default waits 5 s), which shortens a switchover.
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
export const MANAGED_PARAMETERS = new Set([
  'synchronous_standby_names', 'port', 'listen_addresses', 'unix_socket_directories', 'primary_conninfo',
  'primary_slot_name', 'recovery_target_timeline', 'hba_file', 'ident_file', 'config_file', 'data_directory',
]);

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** A value in postgresql.conf syntax: numbers bare, booleans on/off, everything else single-quoted. */
export function confValue(v: ParamValue): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  const escaped = v.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return `'${escaped}'`;
}

/** A value in a libpq keyword/value connection string: bare when safe, else single-quoted. */
export function libpqValue(v: string): string {
  return /^[A-Za-z0-9_./:-]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A libpq keyword/value string from ordered pairs. Refuses a password: use a passfile. */
export function conninfo(pairs: Array<[string, string | number]>): string {
  return pairs
    .map(([k, v]) => {
      if (k === 'password') throw new Error('conninfo: passwords go in the passfile, never in a connection string');
      return `${k}=${libpqValue(String(v))}`;
    })
    .join(' ');
}

/** libpq TLS keywords for a connection to another member (the role's postgresql.authentication keys). */
export interface PeerTls {
  sslmode?: string | undefined;
  sslrootcert?: string | undefined;
  sslcert?: string | undefined;
  sslkey?: string | undefined;
  sslcrl?: string | undefined;
  channel_binding?: string | undefined;
}

const TLS_KEYWORDS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslcrl', 'channel_binding'] as const;

/** The TLS pairs that are set, in a fixed order. */
export function tlsPairs(t: PeerTls): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const k of TLS_KEYWORDS) {
    const v = t[k];
    if (v !== undefined) out.push([k, v]);
  }
  return out;
}

/**
 * The connection string of every TCP connection pgha makes to another member: primary_conninfo,
 * pg_basebackup, pg_rewind and its checkpoint. Passwords come from the passfile.
 */
export function peerConninfo(host: string, port: number | string, user: string, tls: PeerTls, extra: Array<[string, string | number]> = []): string {
  return conninfo([['host', host], ['port', port], ['user', user], ...tlsPairs(tls), ...extra]);
}

/** postgresql.ssl: TLS on this server. Layered last over the parameters, so it wins. */
export interface ServerSsl {
  cert_file: string;
  key_file: string;
  ca_file?: string | undefined;
  crl_file?: string | undefined;
}

export function sslParameters(ssl: ServerSsl | undefined): Record<string, ParamValue> {
  if (ssl === undefined) return {};
  return {
    ssl: 'on', ssl_cert_file: ssl.cert_file, ssl_key_file: ssl.key_file,
    ...(ssl.ca_file === undefined ? {} : { ssl_ca_file: ssl.ca_file }),
    ...(ssl.crl_file === undefined ? {} : { ssl_crl_file: ssl.crl_file }),
  };
}

export interface StandbyConf {
  host: string;
  port: number | string;
  /** Further libpq pairs (target_session_attrs towards a multi-host source). */
  extra?: Array<[string, string]>;
  /** Recovery settings of a standby leader (standby_cluster's restore_command ...). */
  recovery?: Record<string, ParamValue>;
  user: string;
  passfile: string;
  /** The replication role's TLS settings; none: libpq's defaults. */
  tls?: PeerTls;
  /** This member's name: how the upstream's pg_stat_replication and synchronous_standby_names see us. */
  applicationName: string;
  slot: string | null;
  /** Member name of the upstream, recorded so that observe() can tell whom we follow. */
  upstreamName: string;
}

export interface PghaConfInput {
  port: number;
  listenHost: string;
  socketDir: string;
  /** Layers over REQUIRED_PARAMETERS, later wins: dynamic postgresql.parameters, then the node's. */
  parameters: Array<Record<string, ParamValue>>;
  standby: StandbyConf | null;
  /** synchronous_standby_names; '' when asynchronous. */
  syncNames?: string;
}

/**
 * libpq keepalives and connect_timeout in primary_conninfo: a standby whose upstream host
 * vanished (no RST) gives up on the socket after about 2 + 3 × 1 s and on a connect after 2 s,
 * instead of waiting for the kernel's two-hour keepalive default.
 */
const CONNINFO_LIVENESS: Array<[string, number]> = [
  ['connect_timeout', 2], ['keepalives_idle', 2], ['keepalives_interval', 1], ['keepalives_count', 3],
];

export function renderPghaConf(i: PghaConfInput): string {
  const merged: Record<string, ParamValue> = { ...REQUIRED_PARAMETERS };
  for (const layer of i.parameters) {
    for (const [k, v] of Object.entries(layer)) {
      if (!PARAM_NAME.test(k)) throw new PgHaError('PGHA_CONFIG_INVALID', `postgresql.parameters: ${JSON.stringify(k)} is not a parameter name`);
      if (!MANAGED_PARAMETERS.has(k)) merged[k] = v;
    }
  }
  const lines = ['# Written by pgha; changes are overwritten. Set parameters in the pgha configuration.'];
  for (const [k, v] of Object.entries(merged).sort(([a], [b]) => a.localeCompare(b))) lines.push(`${k} = ${confValue(v)}`);
  lines.push(`synchronous_standby_names = ${confValue(i.syncNames ?? '')}`);
  lines.push(`port = ${i.port}`, `listen_addresses = ${confValue(i.listenHost)}`, `unix_socket_directories = ${confValue(i.socketDir)}`);
  lines.push(...(i.standby === null ? [`primary_conninfo = ''`, `primary_slot_name = ''`] : standbyLines(i.standby)));
  // On a primary too: recovery_target_timeline can only change at a restart, and PostgreSQL marks
  // a removed line of such a setting pending_restart, so a promoted standby whose pgha.conf lost
  // it reported a restart it did not need. A primary ignores the setting.
  lines.push(`recovery_target_timeline = 'latest'`);
  return `${lines.join('\n')}\n`;
}

function standbyLines(s: StandbyConf): string[] {
  if (!/^\S+$/.test(s.upstreamName)) throw new Error(`bad upstream member name ${JSON.stringify(s.upstreamName)}`);
  const info = peerConninfo(s.host, s.port, s.user, s.tls ?? {}, [
    ['passfile', s.passfile], ['application_name', s.applicationName], ...(s.extra ?? []), ...CONNINFO_LIVENESS,
  ]);
  return [
    `# pgha-upstream: ${s.upstreamName}`,
    `primary_conninfo = ${confValue(info)}`,
    `primary_slot_name = ${confValue(s.slot ?? '')}`,
    ...Object.entries(s.recovery ?? {}).map(([k, v]) => `${k} = ${confValue(v)}`),
  ];
}

/** The member name from a pgha.conf's "# pgha-upstream:" line, or null. */
export function upstreamFromConf(text: string): string | null {
  const m = /^# pgha-upstream: (\S+)$/m.exec(text);
  return m?.[1] ?? null;
}

/**
 * The synchronous_standby_names pgha.conf holds ('' when absent): an agent restarted under a
 * running primary keeps that setting rather than going asynchronous behind the /sync record.
 */
export function syncNamesFromConf(text: string): string {
  const m = /^synchronous_standby_names = '((?:[^'\\]|''|\\.)*)'$/m.exec(text);
  if (m === null) return '';
  return (m[1] ?? '').replace(/\\(.)|''/g, (all, c: string | undefined) => (all === "''" ? "'" : c === 'n' ? '\n' : c === 'r' ? '\r' : (c ?? '')));
}

export interface PgpassEntry {
  host: string;
  port: number | '*';
  database: string;
  user: string;
  password: string;
}

/**
 * The passfile for connections to one member: each role's password for exactly that host and
 * port, never `*`, so libpq hands a password to no other server. `peer` null (a primary, or a
 * standby following nobody): no entries.
 */
export function peerPgpass(peer: { host: string; port: number } | Array<{ host: string; port: number }> | null, roles: Array<{ username: string; password: string }>): PgpassEntry[] {
  if (peer === null) return [];
  const peers = Array.isArray(peer) ? peer : [peer];
  return peers.flatMap((p) => roles.map((r) => ({ host: p.host, port: p.port, database: '*', user: r.username, password: r.password })));
}

/** ~/.pgpass format: one `host:port:database:user:password` per line, `:` and `\` escaped. */
export function renderPgpass(entries: PgpassEntry[]): string {
  const esc = (s: string) => {
    if (/[\r\n]/.test(s)) throw new Error('a passfile field cannot contain a line break');
    return s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  };
  return entries.map((e) => `${[esc(e.host), String(e.port), esc(e.database), esc(e.user), esc(e.password)].join(':')}\n`).join('');
}

export interface HbaRoles {
  superuser: string;
  replication: string;
  /** null: pg_rewind connects as the superuser. */
  rewind: string | null;
  /** postgresql.ssl is set: the lines for other hosts are hostssl (TLS or nothing). */
  ssl?: boolean;
}

/**
 * Default pg_hba.conf (bootstrap.pg_hba absent): only pgha's roles, only scram-sha-256.
 * - the superuser over the Unix socket and from the loopback addresses only (the agent, and an
 *   operator on the host);
 * - the replication role, for replication connections, from anywhere (standbys on other hosts);
 * - the rewind role, for every database, from anywhere (pg_rewind and the checkpoint before it
 *   run from the member being rewound). Without a rewind role that is the superuser, which then
 *   is reachable from other hosts too: configure a rewind role to keep the superuser local.
 * Any other role, even one created by bootstrap.users, is refused until the operator adds lines.
 * With postgresql.ssl set, the two remote lines are `hostssl`: no replication or rewind without TLS.
 */
export function defaultHba(r: HbaRoles): string[] {
  const rewinder = r.rewind ?? r.superuser;
  const remote = r.ssl === true ? 'hostssl' : 'host';
  return [
    `local all ${r.superuser} scram-sha-256`,
    `host all ${r.superuser} 127.0.0.1/32 scram-sha-256`,
    `host all ${r.superuser} ::1/128 scram-sha-256`,
    `${remote} replication ${r.replication} all scram-sha-256`,
    `${remote} all ${rewinder} all scram-sha-256`,
  ];
}

export function renderHba(lines: string[]): string {
  return `# Written by pgha at bootstrap (bootstrap.pg_hba, or pgha's default).\n${lines.join('\n')}\n`;
}
