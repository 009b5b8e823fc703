// The contract between the agent and the distributed configuration store. The etcd
// implementation lives in ./etcd.ts; every call carries a deadline (retry_timeout).
import type { DynamicConfig } from '../config/schema.ts';
import type { ClusterView, FailoverRequest, FailsafeRecord, Lsn, MemberInfo, SyncRecord, UnsafeMark } from '../ha/types.ts';

export interface HistoryEntry {
  timeline: number;
  /** WAL position (pg_lsn text, e.g. "0/3000060") where the new timeline starts. */
  lsn: string;
  reason: string;
  /** ISO 8601 wall-clock time of the promotion. */
  time: string;
  leader: string;
}

export interface KeepaliveResult {
  /** performance.now() taken just before the keepalive was sent. */
  sentAt: number;
  /** TTL (seconds) etcd reports for the lease after the keepalive. */
  ttl: number;
}

/** An etcd mod revision as read ("0": the key was absent). */
export type Revision = string;

/**
 * Everything the agent, the REST API and pghactl do with the cluster's keys; only src/dcs and the
 * code that constructs the etcd client (src/agent/main.ts, src/cli/context.ts) know it is etcd.
 *
 * Conditional writes: the keys several writers may touch (/sync, /failsafe, /failover, /status,
 * /config) are written only if still at the revision `expected` the caller read (from
 * ClusterView.revisions; "0": only if still absent), as Patroni passes `version=` and Stolon
 * compares its cluster data. A lost compare throws PGHA_DCS_CONFLICT and writes nothing; the agent
 * does nothing more that loop and decides again from a fresh read. A write whose answer was lost
 * and that is found to have landed (the key holds exactly the value written) counts as done.
 * A successful write returns the key's new revision ("0" after a delete).
 */
export interface Dcs {
  /** One consistent read of the whole cluster prefix. `fallback` is used when /config is absent. */
  readCluster(fallback: DynamicConfig): Promise<ClusterView>;
  /**
   * First contact: a TLS or authentication misconfiguration throws PGHA_DCS_TLS / PGHA_DCS_AUTH;
   * 'unavailable' when no etcd host answered for ordinary reasons.
   */
  checkAccess(): Promise<'ok' | 'unavailable'>;

  /** Renew this agent's lease (granting a fresh one if etcd forgot it). Throws on failure. */
  keepalive(): Promise<KeepaliveResult>;
  /** Create the leader key with our name and lease if nobody holds it. True when we hold it after the call. */
  acquireLeader(): Promise<boolean>;
  /** Keepalive plus proof the leader key still holds our name and lease. Throws PGHA_LEASE_LOST if not. */
  renewLeader(): Promise<KeepaliveResult>;
  /** Delete the leader key if it still holds our name. */
  releaseLeader(): Promise<void>;

  /** Put /members/<name> bound to our lease. */
  publishMember(info: MemberInfo): Promise<void>;
  deleteMember(): Promise<void>;

  /** Create /initialize = "claim:<name>" bound to our lease if absent. True when we won. */
  claimInitialize(): Promise<boolean>;
  /** Replace our claim by the system identifier (no lease: it outlives us). */
  setInitialize(systemId: string): Promise<void>;
  /** Give the claim up after a failed bootstrap. */
  abandonInitialize(): Promise<void>;

  /** Write /config if it does not exist yet (bootstrap.dcs). */
  writeConfigIfAbsent(config: DynamicConfig): Promise<void>;
  /** /config as stored (Patroni's format; undefined: absent) and its revision. Throws PGHA_DCS_BAD_VALUE if not JSON. */
  readStoredConfig(): Promise<{ value: unknown; revision: Revision }>;
  /** Replace /config by `value` (Patroni's format), conditional on `expected`. */
  writeStoredConfig(value: unknown, expected: Revision): Promise<Revision>;

  /** Leader only: /status: its WAL position and, when managed, its logical slots' confirmed positions. Conditional. */
  writeLeaderLsn(lsn: Lsn, slots: Record<string, Lsn> | undefined, expected: Revision): Promise<Revision>;
  /** Append one entry to /history by compare-and-set. */
  appendHistory(entry: HistoryEntry): Promise<void>;
  readHistory(): Promise<HistoryEntry[]>;
  /** /history as of the last readCluster; null before one or when invalid. */
  cachedHistory(): HistoryEntry[] | null;

  /** Leader only: store /sync. Conditional. */
  writeSync(record: SyncRecord, expected: Revision): Promise<Revision>;
  /** Leader only: store /failsafe (null: delete it). Conditional. */
  writeFailsafe(record: FailsafeRecord | null, expected: Revision): Promise<Revision>;
  /** Store a switchover or failover request in /failover. Conditional. */
  writeFailover(request: FailoverRequest, expected: Revision): Promise<Revision>;
  /** Delete the /failover request. Conditional: a request written since the read stays. */
  clearFailover(expected: Revision): Promise<void>;
  /** Record the stepped-down leader's last WAL position in the /failover request, if one is still there (by compare-and-set on its own read). */
  setShutdownLsn(lsn: Lsn): Promise<void>;

  /** Remove `member`'s /unsafe mark (a fresh clone is a faithful copy). True: there was one. */
  clearUnsafe(member: string): Promise<boolean>;
  /** Mark `member` unsafe (pghactl verify found it different from the leader). */
  markUnsafe(member: string, mark: UnsafeMark): Promise<void>;
  /** Schedule a restart of `member` at `at` (epoch ms) unless one is scheduled. False: one is. */
  scheduleRestart(member: string, at: number, requestedAt: number): Promise<boolean>;
  /** Cancel `member`'s scheduled restart. False when there was none. */
  cancelRestart(member: string): Promise<boolean>;
  /** Remove a due scheduled restart of `member` if still at `revision`. True: it is ours to run. */
  takeRestart(member: string, revision: string): Promise<boolean>;

  /** /restore (pghactl restore's record, src/backup/restore-plan.ts) as stored (undefined: absent) and its revision. */
  readRestoreRecord(): Promise<{ value: unknown; revision: Revision }>;
  /** Write /restore if it is still at `expected` ("0": still absent). False: it changed since; nothing written. */
  writeRestoreRecord(value: unknown, expected: Revision): Promise<boolean>;
  /** Delete /restore. */
  deleteRestoreRecord(): Promise<void>;

  /** pghactl remove: delete every key of the cluster; the number deleted. */
  deleteCluster(): Promise<number>;

  /** Call `onChange` whenever the leader key is put or deleted. Returns a function that stops watching. */
  watchLeader(onChange: (holder: string | null) => void): Promise<() => void>;

  /** Revoke nothing, stop watches, close connections. */
  close(): Promise<void>;
}
