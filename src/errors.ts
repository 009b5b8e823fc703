// Errors with stable codes. Every code below is documented in docs/errors.md; a unit test keeps
// the two in step. Callers classify by behaviour (retryable, lease lost), never by message text.

export const ERROR_CODES = {
  PGHA_CONFIG_READ: 'the configuration file, or a certificate or key file it names, cannot be read',
  PGHA_CONFIG_PARSE: 'the configuration file is not valid YAML',
  PGHA_CONFIG_INVALID: 'a configuration field has a bad value (the message names the file and the field)',
  PGHA_CONFIG_UNSAFE: 'the timing settings break the split-brain guard',
  PGHA_DCS_TIMEOUT: 'an etcd call missed its deadline',
  PGHA_DCS_UNAVAILABLE: 'etcd cannot be reached',
  PGHA_DCS_TLS: 'TLS towards etcd is misconfigured: wrong CA, expired or refused certificate, or plain HTTP behind https (the message names the setting and the file)',
  PGHA_DCS_AUTH: 'etcd refused etcd.username/etcd.password, or its authentication is off while they are set, or on while they are not',
  PGHA_DCS_CONFLICT: 'a compare-and-set on etcd lost a race',
  PGHA_DCS_BAD_VALUE: 'a key in etcd holds a value that does not match its schema',
  PGHA_LEASE_LOST: 'this member no longer holds the leader key',
  PGHA_PG_COMMAND: 'a PostgreSQL binary (initdb, pg_ctl, pg_basebackup, pg_rewind) failed',
  PGHA_PG_QUERY: 'a query against the local PostgreSQL failed or timed out',
  PGHA_PG_NOT_RUNNING: 'the local PostgreSQL is not running',
  PGHA_PG_REWIND_FAILED: 'pg_rewind failed; the member falls back to a fresh clone',
  PGHA_BOOTSTRAP: 'the cluster cannot be bootstrapped',
  PGHA_API_BAD_REQUEST: 'a REST request body or query failed validation',
  PGHA_API_UNAUTHORIZED: 'a mutating REST request had no valid credentials',
  PGHA_API_FORBIDDEN: 'a mutating REST request came from outside restapi.allowlist, or without the client certificate verify_client asks for',
  PGHA_API_LOCKED: 'too many failed authentications from this address: refused for a while (429)',
  PGHA_FAILSAFE_REFUSED: 'a member refused to confirm a leader in failsafe mode, or a promise to one blocks an action',
  PGHA_CALLBACK_FAILED: 'a callback script (postgresql.callbacks, pre_promote, before_stop) could not be started, exited non-zero or timed out',
  PGHA_PROMOTE_VETOED: 'the pre_promote script refused (non-zero exit, timeout or failure to run) this promotion',
  PGHA_WATCHDOG_UNAVAILABLE: 'watchdog.mode is required but the watchdog device cannot be used',
  PGHA_DATA_DIR_UNSAFE: 'data_dir is a system path, or holds files that are no PostgreSQL data directory: pgha neither writes into it nor deletes them',
  PGHA_SLOT_NAME_CLASH: 'a permanent slot in a configuration edit has the name of a member\'s replication slot; nothing was stored',
  PGHA_LOGICAL_PLUGIN_UNKNOWN: 'a logical permanent slot names an output plugin the leader does not have; nothing was stored',
  PGHA_LOGICAL_DATABASE_UNKNOWN: 'a logical permanent slot or publication names a database the leader does not have; nothing was stored',
  PGHA_LOGICAL_UNCHECKED: 'logical slots or publications could not be checked on the leader (no leader, unreachable, or wal_level not yet logical); nothing was stored',
  PGHA_NAME_COLLISION: 'this member\'s name maps to the replication slot of another member\'s name',
  PGHA_API_WRONG_MEMBER: 'a member-scoped REST request named another member than the agent that received it',
  PGHA_FENCER_LOST: 'the fencing process died and could not be restarted: the agent stopped PostgreSQL and exits',
  PGHA_POOLER_FAILED: 'a PgBouncer admin call (PAUSE, RESUME, RECONNECT) failed, was refused or missed its bound',
  PGHA_LEADER_COPY_FAILED: 'the copy of the leader key in etcd v2 (for vip-manager) could not be written or deleted',
  PGHA_BACKUP_COMMAND: 'a pgbackrest command (stanza-create, check, backup, expire, info) failed or timed out',
  PGHA_BACKUP_NOT_CONFIGURED: 'a backup operation was asked of a member without a backup: section',
  PGHA_BACKUP_BUSY: 'a backup is already running on this member',
  PGHA_BOOTSTRAP_SOURCE: 'bootstrap.method pgbackrest: the source stanza, its backups or the target cannot be restored, or this cluster\'s stanza already exists',
  PGHA_RESTORE_TARGET_INVALID: 'a restore target is in the future, before the oldest backup, or an LSN beyond the leader\'s current position',
  PGHA_RESTORE_NO_BACKUP: 'a restore was asked but the repository holds no backup',
  PGHA_RESTORE_IN_PROGRESS: 'a restore is already recorded in etcd (/restore): finish it (--resume) or drop it (--abort) first',
  PGHA_RESTORE_HANDOVER_PENDING: 'a restore was asked while a switchover or failover request is pending',
  PGHA_RESTORE_STATE: 'a restore step was asked of an agent in the wrong state (cluster not paused, no /restore record, another member or restore)',
  PGHA_RESTORE_FAILED: 'a step of a whole-cluster restore failed; the state stays in /restore for --resume or --abort',
  PGHA_VERIFY_ABORTED: 'pghactl verify stopped: the leader changed, a switchover or reinit started, or the other side stopped replaying',
  PGHA_STANDBY_SOURCE_INVALID: 'standby_cluster points at this cluster itself, at a cluster with another system identifier, or is missing: nothing is followed, rewound or wiped',
  PGHA_STANDBY_SOURCE_UNREACHABLE: 'the source cluster of a standby cluster (standby_cluster) cannot be reached',
  PGHA_STANDBY_SOURCE_WRITABLE: 'promote-cluster: the source cluster is still reachable and writable; --force makes two writable sites',
  PGHA_STANDBY_STATE: 'promote-cluster or demote-cluster asked of a cluster in the wrong state (not a standby cluster, already one, no leader)',
  PGHA_CLI_USAGE: 'pghactl was called with bad arguments',
  PGHA_CLI_REFUSED: 'pghactl refused an operation, with the reason',
  PGHA_CLI_NOT_DONE: 'an operation pghactl requested did not take effect (or not within its deadline)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PgHaError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PgHaError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

export function isPgHaError(err: unknown, code?: ErrorCode): err is PgHaError {
  return err instanceof PgHaError && (code === undefined || err.code === code);
}

/** A short, secret-free description of any thrown value, for logs. */
export function describeError(err: unknown): { code?: string; message: string } {
  if (err instanceof PgHaError) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: err.message } : { message: err.message };
  }
  return { message: String(err) };
}
