// The contract between the agent and the distributed configuration store. The etcd
// implementation lives in ./etcd.ts; every call carries a deadline (retry_timeout).
import type { DynamicConfig } from '../config/schema.ts';
import type { ClusterView, FailsafeRecord, Lsn, MemberInfo } from '../ha/types.ts';

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

export interface Dcs {
  /** One consistent read of the whole cluster prefix. `fallback` is used when /config is absent. */
  readCluster(fallback: DynamicConfig): Promise<ClusterView>;

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
  /** Leader only: /status: the leader's WAL position and, when managed, its logical slots' confirmed positions. */
  writeLeaderLsn(lsn: Lsn, slots?: Record<string, Lsn>): Promise<void>;
  /** Append one entry to /history by compare-and-set. */
  appendHistory(entry: HistoryEntry): Promise<void>;
  readHistory(): Promise<HistoryEntry[]>;

  /** Leader only: store /sync. */
  writeSync(leader: string, members: string[], acks?: number): Promise<void>;
  /** Leader only: store /failsafe (null: delete it). */
  writeFailsafe(record: FailsafeRecord | null): Promise<void>;
  /** Delete the /failover request. */
  clearFailover(): Promise<void>;
  /** Remove `member`'s /unsafe mark (a fresh clone is a faithful copy). True: there was one. */
  clearUnsafe(member: string): Promise<boolean>;
  /** Remove a due scheduled restart of `member` if still at `revision`. True: it is ours to run. */
  takeRestart(member: string, revision: string): Promise<boolean>;
  /** Record the stepped-down leader's last WAL position in the /failover request. */
  setShutdownLsn(lsn: Lsn): Promise<void>;

  /** Call `onChange` whenever the leader key is put or deleted. Returns a function that stops watching. */
  watchLeader(onChange: (holder: string | null) => void): Promise<() => void>;

  /** Revoke nothing, stop watches, close connections. */
  close(): Promise<void>;
}
