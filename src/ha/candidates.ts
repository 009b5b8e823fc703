// Who may take a free leader key. Pure: a candidate is judged only by what members published.
import type { DynamicConfig, Tags } from '../config/schema.ts';
import type { ClusterView, Lsn, MemberInfo } from './types.ts';
import { bytesBehind } from './view.ts';

export interface Candidate {
  name: string;
  lsn: Lsn;
  timeline: number;
  tags: Tags;
}

/** Tags that forbid promotion: nofailover, or failover_priority 0 (Patroni's meaning). */
export function mayEverPromote(tags: Tags): boolean {
  return !tags.nofailover && tags.failover_priority > 0;
}

/** pghactl verify found this member different from the leader: it must never be promoted. */
export function markedUnsafe(cluster: Pick<ClusterView, 'unsafe'> | null, name: string): boolean {
  return cluster?.unsafe?.[name] !== undefined;
}

/**
 * Failover lag (see view.ts for the other two uses of the lag rule): bytes this position is behind
 * the position the last leader published in /status, which outlives its member key; 0 when none
 * was published (that must not bar every candidate).
 */
export function lagBehind(lsn: Lsn, lastLeaderLsn: Lsn | null): number {
  return bytesBehind(lsn, lastLeaderLsn) ?? 0;
}

/** A standby that could be promoted: running, in recovery, allowed by tags, within the lag bound. */
export function asCandidate(m: MemberInfo, lastLeaderLsn: Lsn | null, cfg: DynamicConfig): Candidate | null {
  if (m.role !== 'standby') return null;
  if (m.state !== 'running' && m.state !== 'streaming') return null;
  if (!mayEverPromote(m.tags)) return null;
  if (m.lsn === null || m.timeline === null) return null;
  if (lagBehind(m.lsn, lastLeaderLsn) > cfg.maximum_lag_on_failover) return null;
  return { name: m.name, lsn: m.lsn, timeline: m.timeline, tags: m.tags };
}

/**
 * Total order of candidates: higher timeline, then further WAL position, then higher
 * failover_priority, then the smaller name. Negative when `a` is the better one.
 */
export function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.timeline !== b.timeline) return b.timeline - a.timeline;
  if (a.lsn !== b.lsn) return b.lsn - a.lsn;
  if (a.tags.failover_priority !== b.tags.failover_priority) {
    return b.tags.failover_priority - a.tags.failover_priority;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The best candidate among `candidates`, or null when there is none. */
export function bestCandidate(candidates: Candidate[]): Candidate | null {
  let best: Candidate | null = null;
  for (const c of candidates) if (best === null || compareCandidates(c, best) < 0) best = c;
  return best;
}
