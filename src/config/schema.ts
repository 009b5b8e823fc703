// The node configuration (one YAML file per node) and the cluster-wide dynamic configuration
// (written to etcd once at bootstrap, read from there afterwards). Key names follow Patroni's so
// that a Patroni user finds what they expect; pgha-only keys are marked in docs/configuration.md.
import { isIP, isIPv4 } from 'node:net';
import { z } from 'zod';
import { MAX_NAME_BYTES, dataDirProblem, isLoopbackHost, isWildcardHost } from './safety.ts';
import { SHELL_SAFE_PATH, backupSchema } from '../backup/config.ts';
import { bootstrapPgbackrestSchema, sharedRepositories } from '../backup/bootstrap-config.ts';

/** "host:port" with a numeric port. */
export const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8008')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port > 0 && port < 65536;
  }, 'port must be between 1 and 65535');

const seconds = (min: number, max: number) => z.number().min(min).max(max);
const absolutePath = z.string().startsWith('/', 'an absolute path');

/** An IPv4/IPv6 address, a network in CIDR notation, or a host name (resolved when checked). */
const allowlistEntry = z.string().refine((s) => parseAllowlistEntry(s) !== null, 'an IP address, a CIDR network (10.0.0.0/24) or a host name');

export type AllowlistEntry = { kind: 'net'; address: string; prefix: number; family: 'ipv4' | 'ipv6' } | { kind: 'host'; name: string };

/** Parse one allowlist entry (pure); null when it is none of the three forms. */
export function parseAllowlistEntry(s: string): AllowlistEntry | null {
  const [address = '', prefixText, extra] = s.split('/');
  const v = isIP(address);
  if (extra === undefined && v !== 0) {
    const max = v === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
    return prefix >= 0 && prefix <= max ? { kind: 'net', address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' } : null;
  }
  const numericTld = /(^|\.)\d+$/.test(s); // "10.0.0.300" is a bad address, not a host name
  return prefixText === undefined && !numericTld && /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(s) && s.length <= 253
    ? { kind: 'host', name: s.toLowerCase() } : null;
}


const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/**
 * A host another member may connect to: an IPv4 address or a DNS name. Never a Unix socket
 * directory, a space, a quote or an `=`, which would change what a libpq connection string
 * means; a name whose last label is all digits is refused too (getaddrinfo reads "10.1" as an
 * address).
 */
export function isPeerHost(host: string): boolean {
  if (isIPv4(host)) return true;
  return host.length <= 253 && DNS_NAME.test(host) && /[A-Za-z-]/.test(host.slice(host.lastIndexOf('.') + 1));
}

/** "host:port" whose host is a peer host (isPeerHost): what a member publishes in etcd. */
export function isPeerAddress(hp: string): boolean {
  if (!hostPort.safeParse(hp).success) return false;
  return isPeerHost(splitHostPort(hp).host);
}

/**
 * libpq TLS settings for the connections pgha makes as a role to another member (Patroni's
 * per-user keys under postgresql.authentication). Absent keys keep libpq's defaults
 * (sslmode=prefer, channel_binding=prefer).
 */
const peerTls = {
  sslmode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
  sslrootcert: absolutePath.optional(),
  sslcert: absolutePath.optional(),
  sslkey: absolutePath.optional(),
  sslcrl: absolutePath.optional(),
  channel_binding: z.enum(['disable', 'prefer', 'require']).optional(),
};

const roleName = z.string().min(1).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a plain role name: letters, digits, _');
const credentials = z.strictObject({ username: roleName, password: z.string().min(1) });

/** A PostgreSQL role pgha connects as, with the TLS settings of those connections. */
const pgCredentials = z
  .strictObject({ username: roleName, password: z.string().min(1), ...peerTls })
  .superRefine((c, ctx) => {
    if ((c.sslmode === 'verify-ca' || c.sslmode === 'verify-full') && c.sslrootcert === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sslrootcert'], message: `sslmode ${c.sslmode} needs sslrootcert (the CA that signed the servers' certificates)` });
    }
    if ((c.sslcert === undefined) !== (c.sslkey === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['sslkey'], message: 'sslcert and sslkey go together' });
    }
    if (c.channel_binding === 'require' && c.sslmode === 'disable') {
      ctx.addIssue({ code: 'custom', path: ['channel_binding'], message: 'channel_binding require needs TLS: sslmode disable cannot be used with it' });
    }
  });

export type PgCredentials = z.infer<typeof pgCredentials>;

/** A value of postgresql.parameters. */
const paramValue = z.union([z.string(), z.number(), z.boolean()]);
type ParamValue = z.infer<typeof paramValue>;

/** A PostgreSQL parameter name (dotted for extensions, e.g. auto_explain.log_min_duration). */
export const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

const asInt = (v: ParamValue): number | null => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) ? n : null;
};
const asBool = (v: ParamValue): boolean | null => {
  if (typeof v === 'boolean') return v;
  const t = String(v).trim().toLowerCase();
  return ['on', 'true', 'yes', '1'].includes(t) ? true : ['off', 'false', 'no', '0'].includes(t) ? false : null;
};

/**
 * Parameters every member needs to run streaming standbys with slots and to serve reads on them
 * (Patroni enforces the same floors). A value breaking one would be stored and then stop every
 * member from starting: it is refused before anything is written. Names compare case-insensitively,
 * as PostgreSQL's do.
 */
export const PARAMETER_MINIMUMS: Record<string, { need: string; ok: (v: ParamValue) => boolean }> = {
  wal_level: { need: 'replica or logical', ok: (v) => ['replica', 'logical', 'hot_standby'].includes(String(v).trim().toLowerCase()) },
  hot_standby: { need: 'on', ok: (v) => asBool(v) === true },
  max_wal_senders: { need: 'an integer of at least 3', ok: (v) => (asInt(v) ?? -1) >= 3 },
  max_replication_slots: { need: 'an integer of at least 4', ok: (v) => (asInt(v) ?? -1) >= 4 },
};

/**
 * postgresql.parameters: names validated (no `include*` directive, which would pull an arbitrary
 * file into postgresql.conf; no two spellings of one name), values above PARAMETER_MINIMUMS.
 */
export const parametersSchema = z.record(z.string(), paramValue).superRefine((params, ctx) => {
  const seen = new Map<string, string>();
  for (const [name, value] of Object.entries(params)) {
    const lower = name.toLowerCase();
    const bad = (message: string) => ctx.addIssue({ code: 'custom', path: [name], message });
    if (name.length > 128 || !PARAMETER_NAME.test(name)) { bad('not a parameter name (letters, digits, _, one dot)'); continue; }
    if (lower.startsWith('include')) { bad('include directives are refused: set parameters here instead'); continue; }
    const twin = seen.get(lower);
    if (twin !== undefined) bad(`the same parameter as ${JSON.stringify(twin)} (names are case-insensitive)`);
    seen.set(lower, name);
    const min = PARAMETER_MINIMUMS[lower];
    if (min !== undefined && !min.ok(value)) bad(`must be ${min.need}: replication, promotion or pg_rewind need it`);
  }
});

/**
 * A callback command: an absolute path (run as is, never through a shell), or a list whose first
 * item is that path and the rest fixed leading arguments. pgha appends action, role and scope.
 */
const callbackCommand = z
  .union([absolutePath, z.array(z.string().min(1)).min(1)])
  .transform((c) => (typeof c === 'string' ? [c] : c))
  .refine((c) => c[0]!.startsWith('/'), 'the first item must be an absolute path');

/** A replication slot or publication name: a-z, 0-9, _ (pgha quotes nothing it does not have to). */
const slotName = z.string().regex(/^[a-z0-9_]{1,63}$/, 'a slot name: a-z, 0-9, _ (at most 63)');
/** A database or output plugin name: a plain identifier (a plugin is a shared library's base name). */
const plainIdentifier = (what: string) => z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, `${what}: letters, digits, _ (at most 63, not starting with a digit)`);
/** A table of a publication: "table" (schema public) or "schema.table", plain identifiers. */
const tableName = z.string().regex(/^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a table: name or schema.name (letters, digits, _)');

const permanentSlot = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('physical') }),
  z.strictObject({ type: z.literal('logical'), plugin: plainIdentifier('plugin'), database: plainIdentifier('database') }),
], { error: 'type: physical, or logical with plugin and database' });

const publicationSchema = z
  .strictObject({
    database: plainIdentifier('database'),
    all_tables: z.boolean().default(false),
    tables: z.array(tableName).default([]),
  })
  .refine((p) => p.all_tables !== (p.tables.length > 0), { message: 'name its tables, or set all_tables: true (not both)' });

/** wal_level and hot_standby_feedback as the dynamic parameters set them (names compare case-insensitively). */
function dynamicParameter(params: Record<string, ParamValue>, name: string): ParamValue | undefined {
  return Object.entries(params).find(([k]) => k.toLowerCase() === name)?.[1];
}

export const CALLBACK_ACTIONS = ['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'] as const;

/** A port as Patroni's YAML may hold it: a number or a numeric string. */
const sourcePort = z.union([z.number().int(), z.string().regex(/^\d{1,5}$/).transform(Number)]).pipe(z.number().int().min(1).max(65535));

/**
 * Patroni's standby_cluster: this whole cluster replicates from another one (docs/disaster-recovery.md).
 * `host` is one host (the source's HAProxy, or its primary) or a libpq multi-host list "h1,h2,h3";
 * `port` one port for every host, or a comma list with one port per host. The standby leader
 * connects with target_session_attrs=read-write when several hosts are given, so it streams from
 * the source's primary and follows it across the source's failovers.
 */
export const standbyClusterSchema = z
  .strictObject({
    host: z.string().min(1).regex(/^[A-Za-z0-9_.:\[\]-]+(,[A-Za-z0-9_.:\[\]-]+)*$/, 'a host name or address, or a comma-separated list of them'),
    port: z.union([sourcePort, z.string().regex(/^\d{1,5}(,\d{1,5})+$/, 'a port, or a comma-separated list with one port per host')]).default(5432),
    // A physical slot on the source the standby leader streams through (create it there as a permanent slot).
    primary_slot_name: z.string().regex(/^[a-z0-9_]{1,63}$/, 'a slot name: a-z, 0-9, _').nullish(),
    // Run by the standby leader only (Patroni's keys); the source's archive, for a leader far behind.
    restore_command: z.string().min(1).nullish(),
    archive_cleanup_command: z.string().min(1).nullish(),
    // Patroni's: a delayed standby site. Milliseconds, or a string with a unit ('5min').
    recovery_min_apply_delay: z.union([z.number().int().min(0), z.string().regex(/^\d+\s*(ms|s|min|h|d)?$/)]).nullish(),
    // Patroni's list of replica methods for the first standby leader; pgha clones with basebackup.
    create_replica_methods: z.array(z.string()).nullish(),
  })
  .superRefine((c, ctx) => {
    const hosts = c.host.split(',');
    if (typeof c.port === 'string' && c.port.split(',').length !== hosts.length) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: `${c.port.split(',').length} ports for ${hosts.length} hosts: give one port, or one per host` });
    }
    for (const p of typeof c.port === 'string' ? c.port.split(',').map(Number) : []) {
      if (p < 1 || p > 65535) ctx.addIssue({ code: 'custom', path: ['port'], message: `port ${p} is not between 1 and 65535` });
    }
    const methods = c.create_replica_methods ?? ['basebackup'];
    if (!methods.includes('basebackup')) ctx.addIssue({ code: 'custom', path: ['create_replica_methods'], message: 'pgha builds the first standby leader with basebackup only: list basebackup' });
  });

export type StandbyClusterConfig = z.infer<typeof standbyClusterSchema>;

/** The source's addresses: one {host, port} per host of the standby_cluster entry. */
export function sourceHosts(c: StandbyClusterConfig): Array<{ host: string; port: number }> {
  const hosts = c.host.split(',');
  const ports = typeof c.port === 'string' ? c.port.split(',').map(Number) : [c.port];
  return hosts.map((host, i) => ({ host, port: ports[ports.length === 1 ? 0 : i] ?? 5432 }));
}

/** Dynamic, cluster-wide settings. All of them live in etcd under /<namespace>/<scope>/config. */
export const dynamicConfigSchema = z
  .strictObject({
    // How long the leader key lives without renewal (seconds). 2 s (etcd's own minimum lease with
    // its default 1 s election timeout): a crashed primary is replaced in about 2.5 s, while a
    // healthy leader renews 4 times per TTL and survives a 1 s etcd stall. `npm run soak` (10 min
    // idle under 2 CPU burners on 2 cores) saw no leader change with these four defaults.
    ttl: seconds(2, 3600).default(2),
    // Pause between HA loop runs (seconds). The leader renews its key once per loop.
    loop_wait: seconds(0.1, 600).default(0.5),
    // Deadline of one etcd or PostgreSQL call made by the HA loop (seconds).
    retry_timeout: seconds(0.2, 600).default(0.75),
    // pgha-only: how long before its lease can expire a leader that could not renew stops its
    // PostgreSQL. Covers the time to stop PostgreSQL (SIGQUIT: tens of ms) and clock-rate drift
    // between hosts (parts per million).
    fence_margin: seconds(0.3, 60).default(0.5),
    // A standby further behind the last known leader position (bytes) may not take the key.
    maximum_lag_on_failover: z.number().int().min(0).default(1048576),
    // Maintenance mode: no agent promotes, demotes, restarts or fences on its own.
    pause: z.boolean().default(false),
    // Patroni's DCS failsafe mode: with etcd unreachable, a leader that every member listed in
    // /failsafe confirms over the REST API keeps running as primary (docs/data-safety.md).
    failsafe_mode: z.boolean().default(true),
    // Synchronous replication managed by the leader: off | on (FIRST n) | quorum (ANY n).
    synchronous_mode: z.enum(['off', 'on', 'quorum']).default('off'),
    // Standbys that must confirm each commit (`on`: the first n listed; `quorum`: any n listed).
    synchronous_node_count: z.number().int().min(1).max(16).default(1),
    // With no synchronous standby left, commits wait (strict) instead of going asynchronous.
    synchronous_mode_strict: z.boolean().default(false),
    // Seconds the leader keeps the replication slot of a member whose key disappeared.
    member_slots_ttl: z.number().min(0).max(7 * 86400).default(1800),
    // Slots the leader keeps whatever the members (created again on a new leader after failover).
    // Physical ones, and logical ones for external consumers (Patroni's keys: type, plugin,
    // database), which pgha copies to every standby and advances there (docs/logical-replication.md).
    permanent_slots: z.record(slotName, permanentSlot).default({}),
    // pgha-only: publications the leader keeps on this cluster (docs/logical-replication.md).
    logical: z
      .strictObject({
        publications: z.record(slotName, publicationSchema).default({}),
      })
      .prefault({}),
    // Patroni's standby cluster: replicate the whole cluster from another (null or absent: a
    // normal cluster). The leader is then a standby leader and nobody promotes.
    standby_cluster: standbyClusterSchema.nullish(),
    postgresql: z
      .strictObject({
        use_pg_rewind: z.boolean().default(true),
        use_slots: z.boolean().default(true),
        parameters: parametersSchema.default({}),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    // Logical slots and publications need wal_level logical on every member (a standby with a
    // logical slot does not even start without it), and the copies on the standbys need
    // hot_standby_feedback so that the primary keeps the catalog rows they still decode with.
    const logicalSlots = Object.values(c.permanent_slots).some((s) => s.type === 'logical');
    if (logicalSlots || Object.keys(c.logical.publications).length > 0) {
      if (String(dynamicParameter(c.postgresql.parameters, 'wal_level') ?? '').toLowerCase() !== 'logical') {
        ctx.addIssue({ code: 'custom', path: ['postgresql', 'parameters', 'wal_level'], message: 'logical slots and publications need postgresql.parameters.wal_level: logical (a restart of every member)' });
      }
    }
    if (logicalSlots && asBool(dynamicParameter(c.postgresql.parameters, 'hot_standby_feedback') ?? false) !== true) {
      ctx.addIssue({ code: 'custom', path: ['postgresql', 'parameters', 'hot_standby_feedback'], message: 'logical permanent slots need postgresql.parameters.hot_standby_feedback: on (the standbys\' copies hold catalog rows through it)' });
    }
    // The split-brain guard: a leader must get at least one full loop and one call deadline to
    // renew, and still stop PostgreSQL fence_margin seconds before etcd can expire its key.
    if (c.loop_wait + c.retry_timeout + c.fence_margin > c.ttl) {
      ctx.addIssue({
        code: 'custom',
        path: ['ttl'],
        message:
          `unsafe timing: loop_wait (${c.loop_wait}) + retry_timeout (${c.retry_timeout}) + ` +
          `fence_margin (${c.fence_margin}) must not exceed ttl (${c.ttl}); raise ttl or lower the others`,
      });
    }
  });

export type DynamicConfig = z.infer<typeof dynamicConfigSchema>;

/** Patroni's initdb list: plain flags ("data-checksums") or one-key maps ({encoding: UTF8}). */
const initdbOption = z.union([
  z.string().regex(/^[a-z][a-z-]*$/, 'an initdb long option without dashes, e.g. data-checksums'),
  z.record(z.string().regex(/^[a-z][a-z-]*$/), z.union([z.string(), z.number()])),
]);

const tagsSchema = z
  .strictObject({
    nofailover: z.boolean().default(false),
    noloadbalance: z.boolean().default(false),
    clonefrom: z.boolean().default(false),
    nosync: z.boolean().default(false),
    // Patroni's cascading replication: stream from this member instead of the leader (it falls
    // back to the leader while that member is gone or not streaming: src/ha/upstream.ts).
    replicatefrom: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a member name').optional(),
    // Patroni's archive-only standby: no streaming at all, WAL from restore_command only (needs backup:).
    nostream: z.boolean().default(false),
    // Higher wins a tie between equally advanced candidates; 0 means never promote (like nofailover).
    failover_priority: z.number().int().min(0).default(1),
  })
  .prefault({});

export type Tags = z.infer<typeof tagsSchema>;

/** An etcd host: host:port, optionally with http:// or https://. */
const etcdHost = z.string().refine((s) => hostPort.safeParse(s.replace(/^https?:\/\//, '')).success, 'expected host:port, optionally with http:// or https://, e.g. 127.0.0.1:2379');

/** The `etcd:` section (also pghactl's --etcd* flags). Hosts come out as host:port, protocol resolved. */
export const etcdSchema = z
  .strictObject({
    // host:port, or http://host:port / https://host:port (the scheme then sets the protocol).
    hosts: z
      .union([z.array(etcdHost).min(1), z.string()])
      .default(['127.0.0.1:2379'])
      .transform((h, ctx) => {
        const list = typeof h === 'string' ? h.split(',').map((s) => s.trim()).filter(Boolean) : h;
        for (const item of list) {
          if (!etcdHost.safeParse(item).success) {
            ctx.addIssue({ code: 'custom', message: `"${item}" is not host:port (optionally with http:// or https://)` });
          }
        }
        return list;
      }),
    // Absent: taken from the hosts' scheme, else http. cacert/cert/key need https.
    protocol: z.enum(['http', 'https']).optional(),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    // PEM files: the CA that signed etcd's server certificate, and this client's certificate and
    // key for etcd's --client-cert-auth. loadConfig checks that they are readable PEM.
    cacert: z.string().startsWith('/', 'an absolute path').optional(),
    cert: z.string().startsWith('/', 'an absolute path').optional(),
    key: z.string().startsWith('/', 'an absolute path').optional(),
    // Also keep a copy of the leader's name in etcd's v2 API at <namespace>/<scope>/leader, for
    // vip-manager 1.x, which reads v2 only (docs/vip-manager.md). Needs etcd --enable-v2.
    v2_leader_mirror: z.boolean().default(false),
  })
  .prefault({})
  .superRefine((e, ctx) => {
    if ((e.username === undefined) !== (e.password === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'username and password go together' });
    }
    if ((e.cert === undefined) !== (e.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: [e.cert === undefined ? 'cert' : 'key'], message: 'cert and key go together' });
    }
    const schemes = new Set(e.hosts.map((h) => /^(https?):\/\//.exec(h)?.[1] ?? null).filter((x) => x !== null));
    if (schemes.size > 1) ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'hosts mix http:// and https://' });
    const fromHosts = [...schemes][0];
    if (e.protocol !== undefined && fromHosts !== undefined && e.protocol !== fromHosts) {
      ctx.addIssue({ code: 'custom', path: ['protocol'], message: `is ${e.protocol} but the hosts say ${fromHosts}://` });
    }
    // No silent downgrade: TLS files with a plain-HTTP protocol are a mistake, not a hint.
    if ((e.protocol ?? fromHosts ?? 'http') === 'http') {
      for (const f of ['cacert', 'cert', 'key'] as const) {
        if (e[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: 'is set but etcd.protocol is http: set protocol: https (or https:// hosts)' });
      }
    }
  })
  .transform((e) => ({
    ...e,
    protocol: e.protocol ?? (e.hosts.some((h) => h.startsWith('https://')) ? 'https' as const : 'http' as const),
    hosts: e.hosts.map((h) => h.replace(/^https?:\/\//, '')),
  }));

/**
 * One PgBouncer's admin console (the `pgbouncer` database): pgha sends it PAUSE, RESUME and
 * RECONNECT around a switchover and RECONNECT after a failover (docs/pgbouncer.md).
 */
const poolerSchema = z
  .strictObject({
    // How the pooler is named in logs, GET /poolers and pghactl (default host:port).
    name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits, _ . : - only').optional(),
    host: z.string().min(1).refine((h) => isPeerHost(h), 'an IPv4 address or a DNS name'),
    port: z.number().int().min(1).max(65535).default(6432),
    // A user listed in PgBouncer's admin_users.
    user: roleName,
    password: z.string().min(1).optional(),
    // A file holding the password (first line), read at each call: never in the YAML or the logs.
    password_file: absolutePath.optional(),
    // TLS to the admin console (client_tls_* on the PgBouncer side): libpq's sslmode names.
    sslmode: z.enum(['disable', 'require', 'verify-ca', 'verify-full']).default('disable'),
    sslrootcert: absolutePath.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.password !== undefined && p.password_file !== undefined) ctx.addIssue({ code: 'custom', path: ['password_file'], message: 'password and password_file exclude each other' });
    if ((p.sslmode === 'verify-ca' || p.sslmode === 'verify-full') && p.sslrootcert === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sslrootcert'], message: `sslmode ${p.sslmode} needs sslrootcert (the CA that signed the pooler's certificate)` });
    }
  });

export type PoolerConfig = z.infer<typeof poolerSchema>;

export const pgbouncerSchema = z
  .strictObject({
    // Every PgBouncer in front of the cluster (one shared, or one per node): every member's file
    // lists the same poolers, since any member may be the one that steps down or promotes.
    poolers: z.array(poolerSchema).default([]),
    // Seconds PAUSE may wait for in-flight transactions before the switchover goes on anyway
    // (those transactions then meet the clean stop of the old primary).
    pause_timeout: seconds(0.1, 60).default(2),
    // Seconds any other admin call (connect, RESUME, RECONNECT) may take.
    call_timeout: seconds(0.1, 60).default(1),
    // Seconds the old leader waits for the new primary to be writable before it RESUMEs anyway:
    // paused clients are never held longer than this (plus call_timeout).
    resume_timeout: seconds(1, 600).default(15),
    // host:port where the poolers' servers are (HAProxy's read-write port): RESUME waits until a
    // connection there reaches a writable primary. Unset: the new leader's PostgreSQL is checked.
    route_check: hostPort.optional(),
  })
  .superRefine((b, ctx) => {
    const seen = new Set<string>();
    b.poolers.forEach((p, i) => {
      const n = p.name ?? `${p.host}:${p.port}`;
      if (seen.has(n)) ctx.addIssue({ code: 'custom', path: ['poolers', i], message: `two poolers named ${n}` });
      seen.add(n);
    });
  });

export const nodeConfigSchema = z.strictObject({
  scope: z.string().min(1).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  // PostgreSQL's application_name (synchronous_standby_names matches it) keeps 63 bytes; the
  // member's slot name is the name lower-cased with . and - as _ (two names that map to one slot
  // are refused when the agent starts: src/agent/names.ts).
  name: z.string().min(1).max(MAX_NAME_BYTES, `at most ${MAX_NAME_BYTES} characters (PostgreSQL's application_name and slot name limit)`).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only')
    // The lease witness's application_name (src/witness/names.ts WITNESS_NAME).
    .refine((n) => n !== 'pgha_lease_witness', 'pgha_lease_witness is the lease witness\'s name in synchronous_standby_names'),
  namespace: z
    .string()
    .regex(/^\/[A-Za-z0-9_./-]*$/, 'an absolute key prefix such as /service')
    .default('/service'),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
      // Prefix each line with its sd-daemon priority <N> (journald then filters by level).
      journald_prefix: z.boolean().default(false),
    })
    .prefault({}),
  restapi: z
    .strictObject({
      listen: hostPort.default('0.0.0.0:8008'),
      connect_address: hostPort.optional(),
      authentication: credentials.optional(),
      // TLS (as Patroni): with certfile and keyfile the API is HTTPS and members publish https://.
      certfile: absolutePath.optional(),
      keyfile: absolutePath.optional(),
      // CA that signs client certificates (verify_client) and, for the agent's own calls to
      // other members, their server certificates (unless ctl.cacert is set).
      cafile: absolutePath.optional(),
      // none: no client certificate asked. optional: asked; the mutating endpoints need a valid
      // one. required: the TLS handshake refuses a client without a valid one (health checks too).
      verify_client: z.enum(['none', 'optional', 'required']).default('none'),
      // Addresses and networks (CIDR) allowed to call the mutating endpoints; others get 403.
      allowlist: z.array(allowlistEntry).optional(),
      // Also allow the hosts of the members' published API addresses.
      allowlist_include_members: z.boolean().default(false),
    })
    .superRefine((r, ctx) => {
      if ((r.certfile === undefined) !== (r.keyfile === undefined)) {
        ctx.addIssue({ code: 'custom', path: [r.certfile === undefined ? 'certfile' : 'keyfile'], message: 'certfile and keyfile go together' });
      }
      if (r.verify_client !== 'none' && (r.certfile === undefined || r.cafile === undefined)) {
        ctx.addIssue({ code: 'custom', path: ['verify_client'], message: `verify_client: ${r.verify_client} needs certfile, keyfile and cafile (the CA of the client certificates)` });
      }
    })
    .prefault({}),
  // How pghactl (and the agent, for its own calls to other members) reaches the REST APIs.
  // Each file falls back to the restapi one (cacert to restapi.cafile), as in Patroni.
  ctl: z
    .strictObject({
      certfile: absolutePath.optional(),
      keyfile: absolutePath.optional(),
      cacert: absolutePath.optional(),
      // pghactl only: do not verify the agents' server certificates (a warning is printed).
      insecure: z.boolean().default(false),
    })
    .refine((c) => (c.certfile === undefined) === (c.keyfile === undefined), { message: 'certfile and keyfile go together', path: ['keyfile'] })
    .prefault({}),
  etcd: etcdSchema,
  bootstrap: z
    .strictObject({
      dcs: dynamicConfigSchema.prefault({}),
      // How the first member of a new cluster gets its data: initdb, or pgbackrest (restored from
      // a stanza, possibly another cluster's, to bootstrap.pgbackrest.target: docs/backup.md).
      method: z.enum(['initdb', 'pgbackrest']).default('initdb'),
      pgbackrest: bootstrapPgbackrestSchema.optional(),
      initdb: z.array(initdbOption).default([{ encoding: 'UTF8' }, 'data-checksums']),
      pg_hba: z.array(z.string().min(1)).optional(),
      // pgha-only: the database system identifier of existing data this member may register as
      // the cluster when etcd holds no /initialize key (etcd lost its data). Without it, existing
      // data never becomes a new cluster on its own (a typo in scope would otherwise turn a
      // standby into a second primary). pg_controldata or /status shows the identifier.
      adopt_system_id: z.string().regex(/^[1-9]\d{0,19}$/, 'a database system identifier (digits), as pg_controldata shows it').optional(),
      users: z
        .record(
          z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
          z.strictObject({ password: z.string().min(1), options: z.array(z.string()).default([]) }),
        )
        .default({}),
    })
    .prefault({}),
  postgresql: z.strictObject({
    listen: hostPort.default('127.0.0.1:5432'),
    connect_address: hostPort.optional(),
    data_dir: z.string().startsWith('/', 'an absolute path').superRefine((d, ctx) => {
      const why = d.startsWith('/') ? dataDirProblem(d) : null;
      if (why !== null) ctx.addIssue({ code: 'custom', message: why });
    }),
    bin_dir: z.string().startsWith('/', 'an absolute path').default('/usr/lib/postgresql/15/bin'),
    // Directory of the Unix socket the agent uses to reach its own PostgreSQL.
    socket_dir: z.string().startsWith('/', 'an absolute path').default('/var/run/postgresql'),
    pgpass: z.string().startsWith('/', 'an absolute path').optional(),
    // pgha-only: the lease witness (docs/data-safety.md#the-lease-witness): a local synchronous
    // standby that confirms WAL only while the leader's lease is valid, so a primary frozen and
    // thawed past its lease acknowledges no commit. Off by default: it adds about 0.18 ms to
    // every commit (docs/benchmarks-witness.md), which is not negligible (issue #14's rule).
    lease_witness: z.boolean().default(false),
    // pgha-only: TLS on this server: ssl = on with these files (docs/configuration.md#tls).
    ssl: z
      .strictObject({ cert_file: absolutePath, key_file: absolutePath, ca_file: absolutePath.optional(), crl_file: absolutePath.optional() })
      .optional(),
    authentication: z.strictObject({
      superuser: pgCredentials,
      replication: pgCredentials,
      rewind: pgCredentials.optional(),
    }),
    parameters: parametersSchema.default({}),
    // Seconds pg_ctl may take to start or stop the server before the agent gives up.
    pg_ctl_timeout: seconds(5, 3600).default(60),
    // Patroni's callbacks, run without waiting as `command action role scope` (docs/callbacks.md).
    callbacks: z.strictObject(Object.fromEntries(CALLBACK_ACTIONS.map((a) => [a, callbackCommand.optional()])) as Record<typeof CALLBACK_ACTIONS[number], z.ZodOptional<typeof callbackCommand>>).prefault({}),
    // pgha-only: seconds an on_* callback may run before its process group is killed.
    callback_timeout: seconds(1, 3600).default(60),
    // Run after taking the leader key, before pg_promote; a non-zero exit vetoes the promotion.
    pre_promote: callbackCommand.optional(),
    // pgha-only: seconds pre_promote may run (the failover waits that long at most); past it, a veto.
    pre_promote_timeout: seconds(1, 600).default(10),
    // Run, and waited for, before each clean stop of PostgreSQL (not before a fence).
    before_stop: callbackCommand.optional(),
    // pgha-only: seconds before_stop may delay the stop.
    before_stop_timeout: seconds(1, 600).default(10),
  }),
  tags: tagsSchema,
  // The Linux watchdog device as a second line of defence (docs/data-safety.md#watchdog-device).
  watchdog: z
    .strictObject({
      mode: z.enum(['off', 'automatic', 'required']).default('automatic'),
      device: z.string().startsWith('/', 'an absolute path').default('/dev/watchdog'),
      // Seconds between the device firing at the latest and the earliest moment etcd can expire
      // the leader key.
      safety_margin: seconds(0, 60).default(0.5),
      // pgha-only: the device's timeout in seconds (softdog: the soft_margin module parameter).
      // Node cannot set it by ioctl; when absent it is read from sysfs.
      timeout: z.number().int().min(1).max(3600).optional(),
    })
    .prefault({}),
  // pgha-only: PgBouncer poolers paused around a switchover (docs/pgbouncer.md).
  pgbouncer: pgbouncerSchema.prefault({}),
  // pgha-only: pgBackRest backups, WAL archiving and point-in-time recovery (docs/backup.md).
  backup: backupSchema.optional(),
}).superRefine((c, ctx) => {
  if (c.backup !== undefined && c.backup.dir === undefined && !SHELL_SAFE_PATH.test(`${c.postgresql.data_dir}.pgbackrest`)) {
    ctx.addIssue({ code: 'custom', path: ['backup', 'dir'], message: `postgresql.data_dir has characters archive_command cannot carry unquoted: set backup.dir to a plain path` });
  }
  bootstrapMethodProblems(c).forEach((i) => ctx.addIssue({ code: 'custom', ...i }));
  // An archive-only standby reads WAL through restore_command, which only the backup: section sets.
  if (c.tags.nostream && c.backup === undefined) {
    ctx.addIssue({ code: 'custom', path: ['tags', 'nostream'], message: 'an archive-only standby needs a WAL archive to read from: configure the backup: section (docs/backup.md) or remove tags.nostream' });
  }
  if (c.tags.nostream && c.tags.replicatefrom !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['tags', 'replicatefrom'], message: 'tags.nostream streams from nobody: remove tags.replicatefrom or tags.nostream' });
  }
  // The addresses published in the member key are what the other members, HAProxy and pghactl
  // connect to. Other members refuse a key whose addresses are not peer addresses
  // (src/dcs/codec.ts); a wildcard would send them to their own host, and so would a loopback
  // address once the members live on several hosts (etcd is not all on this one).
  const multiHost = c.etcd.hosts.some((h) => !isLoopbackHost(splitHostPort(h).host));
  const peers = { postgresql: 'the address other members connect to', restapi: 'the address other members call' } as const;
  for (const section of ['restapi', 'postgresql'] as const) {
    const s = c[section];
    const published = s.connect_address ?? s.listen;
    const { host } = splitHostPort(published);
    const field = s.connect_address === undefined ? 'listen' : 'connect_address';
    if (!isPeerAddress(published)) {
      ctx.addIssue({ code: 'custom', path: [section, field], message: `${peers[section]} must be an IPv4 address or a DNS name with a port; set ${section}.connect_address` });
    }
    if (isWildcardHost(host)) {
      ctx.addIssue({ code: 'custom', path: [section, 'connect_address'], message: `${section}.${field} ${published} listens on every interface, which is no address to publish: set ${section}.connect_address to this host's address` });
    } else if (multiHost && isLoopbackHost(host)) {
      ctx.addIssue({ code: 'custom', path: [section, 'connect_address'], message: `${section}.${field} ${published} is a loopback address, but etcd.hosts are not all on this host: set ${section}.connect_address to an address the other members can reach` });
    }
  }
});

/**
 * bootstrap.method: pgbackrest needs bootstrap.pgbackrest and the backup: section (the new
 * cluster archives to its own stanza), and that stanza must not be the source's in a repository
 * both use: the copy would write its new timeline into production's archive.
 */
function bootstrapMethodProblems(c: { scope: string; bootstrap: { method: string; pgbackrest?: z.infer<typeof bootstrapPgbackrestSchema> | undefined }; backup?: z.infer<typeof backupSchema> | undefined }): Array<{ path: string[]; message: string }> {
  const b = c.bootstrap;
  if (b.method !== 'pgbackrest') return b.pgbackrest === undefined ? [] : [{ path: ['bootstrap', 'method'], message: 'bootstrap.pgbackrest is set: set method: pgbackrest too (or remove it)' }];
  if (b.pgbackrest === undefined) return [{ path: ['bootstrap', 'pgbackrest'], message: 'method: pgbackrest needs bootstrap.pgbackrest (stanza, target)' }];
  if (c.backup === undefined) return [{ path: ['backup'], message: 'bootstrap.method: pgbackrest needs the backup: section (pgbackrest itself, and the stanza the new cluster archives to)' }];
  const own = c.backup.stanza ?? c.scope;
  const shared = sharedRepositories(b.pgbackrest.repositories ?? c.backup.repositories, c.backup.repositories);
  if (own === b.pgbackrest.stanza && shared.length > 0) {
    return [{ path: ['backup', 'stanza'], message: `the new cluster's stanza ${own}${c.backup.stanza === undefined ? ' (the scope)' : ''} is the source's (bootstrap.pgbackrest.stanza) in the shared repository ${shared[0]!.path}: set backup.stanza to a name of its own` }];
  }
  return [];
}

export type NodeConfigInput = z.input<typeof nodeConfigSchema>;
export type NodeConfig = z.infer<typeof nodeConfigSchema>;

/** The address other members and clients use for this node's REST API and PostgreSQL. */
/**
 * Replication capacity for a cluster of `members` agents: a sender per standby plus two for a
 * pg_basebackup clone (base backup and WAL stream), a slot per standby plus the permanent slots.
 * null when `c` has room; else why not.
 */
export function replicationCapacityProblem(c: DynamicConfig, members: number): string | null {
  const find = (name: string) => Object.entries(c.postgresql.parameters).find(([k]) => k.toLowerCase() === name)?.[1];
  const senders = find('max_wal_senders');
  const slots = find('max_replication_slots');
  const needSenders = members + 1;
  const needSlots = members - 1 + Object.keys(c.permanent_slots).length;
  if (senders !== undefined && (asInt(senders) ?? 0) < needSenders) return `postgresql.parameters.max_wal_senders: ${String(senders)} is too small for ${members} members (at least ${needSenders})`;
  if (slots !== undefined && (asInt(slots) ?? 0) < needSlots) return `postgresql.parameters.max_replication_slots: ${String(slots)} is too small for ${members} members and the permanent slots (at least ${needSlots})`;
  return null;
}

export function restConnectAddress(c: Pick<NodeConfig, 'restapi'>): string {
  return c.restapi.connect_address ?? c.restapi.listen;
}
/** The URL members publish for this node's REST API: https:// when it serves TLS. */
export function restApiUrl(c: NodeConfig): string {
  return `${c.restapi.certfile === undefined ? 'http' : 'https'}://${restConnectAddress(c)}`;
}
export function pgConnectAddress(c: Pick<NodeConfig, 'postgresql'>): string {
  return c.postgresql.connect_address ?? c.postgresql.listen;
}
export function splitHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
}
