// What the REST API serves: the HA loop's cached view, never a live query per probe.
import type { LogicalSnapshot } from '../slots/types.ts';
import type { ClusterView, MemberInfo, PostgresStats, SourceState } from '../ha/types.ts';
import type { ArchiveHealth } from '../backup/health.ts';

export interface AgentSnapshot {
  /** What this member last published about itself. */
  member: MemberInfo;
  /** This member held the leader key at the end of the loop that produced the snapshot. */
  isLeader: boolean;
  /** The last successful DCS read (null if etcd has not been read yet). */
  cluster: ClusterView | null;
  /** Maintenance mode (dynamic config `pause`). */
  paused: boolean;
  /** Standby: bytes behind the leader's last published position; null when unknown or primary. */
  lagBytes: number | null;
  /** performance.now() when the loop that produced this snapshot finished. */
  observedAt: number;
  /** Reason line of the last plan, e.g. "following node1". */
  lastPlan: string;
  /** Database system identifier. */
  systemId: string | null;
  /** Agent version (package.json). */
  version: string;
  /** The health query's monitoring columns (GET /metrics); null when it failed. */
  postgres?: PostgresStats | null;
  /** Date.now() of the last successful etcd read; null: none yet. */
  dcsLastSeen?: number | null;
  /** Leader: the last loop kept the lease on failsafe confirmations; standby: a failsafe promise runs. */
  failsafeActive?: boolean;
  /** The logical slots as last read (src/slots/manager.ts); null or absent: none managed. */
  logical?: LogicalSnapshot | null;
  /** WAL archiving to pgBackRest (backup: configured); null: not read yet. */
  archive?: ArchiveHealth | null;
  /** standby_cluster: the source as this member last read it (null: not read here). */
  source?: SourceState | null;
}

export interface ApiDeps {
  /** Latest snapshot, or null before the first loop has finished. */
  snapshot(): AgentSnapshot | null;
  /** A snapshot older than this (ms) is stale: health endpoints answer 503. */
  staleAfterMs(): number;
  /** Monotonic clock (performance.now in production, injected in tests). */
  now(): number;
}
