// The node configuration (one YAML file per node) and the cluster-wide dynamic configuration
// (written to etcd once at bootstrap, read from there afterwards). Key names follow Patroni's so
// that a Patroni user finds what they expect; pgha-only keys are marked in docs/configuration.md.
import { z } from 'zod';

/** "host:port" with a numeric port. */
export const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8008')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port > 0 && port < 65536;
  }, 'port must be between 1 and 65535');

const seconds = (min: number, max: number) => z.number().min(min).max(max);

const credentials = z.strictObject({
  username: z.string().min(1).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a plain role name: letters, digits, _'),
  password: z.string().min(1),
});

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
    failsafe_mode: z.boolean().default(false),
    // Synchronous replication managed by the leader: off | on (FIRST n) | quorum (ANY n).
    synchronous_mode: z.enum(['off', 'on', 'quorum']).default('off'),
    // Standbys that must confirm each commit (`on`: the first n listed; `quorum`: any n listed).
    synchronous_node_count: z.number().int().min(1).max(16).default(1),
    // With no synchronous standby left, commits wait (strict) instead of going asynchronous.
    synchronous_mode_strict: z.boolean().default(false),
    // Seconds the leader keeps the replication slot of a member whose key disappeared.
    member_slots_ttl: z.number().min(0).max(7 * 86400).default(1800),
    // Slots the leader keeps whatever the members (created again on a new leader after failover).
    // Only physical slots are built; logical slots on PostgreSQL 15 cannot move to a new primary.
    permanent_slots: z
      .record(
        z.string().regex(/^[a-z0-9_]{1,63}$/, 'a slot name: a-z, 0-9, _ (at most 63)'),
        z.strictObject({ type: z.literal('physical', { message: 'only physical permanent slots are built (logical slots cannot follow a failover on PostgreSQL 15)' }) }),
      )
      .default({}),
    postgresql: z
      .strictObject({
        use_pg_rewind: z.boolean().default(true),
        use_slots: z.boolean().default(true),
        parameters: parametersSchema.default({}),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
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
    // Higher wins a tie between equally advanced candidates; 0 means never promote (like nofailover).
    failover_priority: z.number().int().min(0).default(1),
  })
  .prefault({});

export type Tags = z.infer<typeof tagsSchema>;

export const nodeConfigSchema = z.strictObject({
  scope: z.string().min(1).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  name: z.string().min(1).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  namespace: z
    .string()
    .regex(/^\/[A-Za-z0-9_./-]*$/, 'an absolute key prefix such as /service')
    .default('/service'),
  log: z
    .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') })
    .prefault({}),
  restapi: z
    .strictObject({
      listen: hostPort.default('0.0.0.0:8008'),
      connect_address: hostPort.optional(),
      authentication: credentials.optional(),
    })
    .prefault({}),
  etcd: z
    .strictObject({
      hosts: z
        .union([z.array(hostPort).min(1), z.string()])
        .default(['127.0.0.1:2379'])
        .transform((h, ctx) => {
          const list = typeof h === 'string' ? h.split(',').map((s) => s.trim()).filter(Boolean) : h;
          for (const item of list) {
            if (!hostPort.safeParse(item).success) {
              ctx.addIssue({ code: 'custom', message: `"${item}" is not host:port` });
            }
          }
          return list;
        }),
      protocol: z.enum(['http', 'https']).default('http'),
      username: z.string().min(1).optional(),
      password: z.string().min(1).optional(),
      cacert: z.string().optional(),
      cert: z.string().optional(),
      key: z.string().optional(),
    })
    .prefault({})
    .refine((e) => (e.username === undefined) === (e.password === undefined), {
      message: 'username and password go together',
      path: ['password'],
    }),
  bootstrap: z
    .strictObject({
      dcs: dynamicConfigSchema.prefault({}),
      initdb: z.array(initdbOption).default([{ encoding: 'UTF8' }, 'data-checksums']),
      pg_hba: z.array(z.string().min(1)).optional(),
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
    data_dir: z.string().startsWith('/', 'an absolute path'),
    bin_dir: z.string().startsWith('/', 'an absolute path').default('/usr/lib/postgresql/15/bin'),
    // Directory of the Unix socket the agent uses to reach its own PostgreSQL.
    socket_dir: z.string().startsWith('/', 'an absolute path').default('/var/run/postgresql'),
    pgpass: z.string().startsWith('/', 'an absolute path').optional(),
    authentication: z.strictObject({
      superuser: credentials,
      replication: credentials,
      rewind: credentials.optional(),
    }),
    parameters: parametersSchema.default({}),
    // Seconds pg_ctl may take to start or stop the server before the agent gives up.
    pg_ctl_timeout: seconds(5, 3600).default(60),
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
});

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

export function restConnectAddress(c: NodeConfig): string {
  return c.restapi.connect_address ?? c.restapi.listen;
}
export function pgConnectAddress(c: NodeConfig): string {
  return c.postgresql.connect_address ?? c.postgresql.listen;
}
export function splitHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
}
