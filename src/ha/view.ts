// Queries on the cluster view (pure): a member by name, the leader's member, and lag.
//
// Lag has one arithmetic rule, bytesBehind(), and three uses that differ in what they measure
// against and in what an unknown position means, so each keeps its own named function:
//   - memberLag() (here): what GET /cluster and pghactl list show for a standby, behind the
//     furthest leader position known (leaderPosition: /status or the leader's own member key).
//   - lagBehind() (candidates.ts): failover eligibility against maximum_lag_on_failover, behind
//     the position the last leader published in /status, which outlives its member key; unknown
//     counts as 0 (nothing published yet must not bar every candidate).
//   - lagBytes() (src/agent/member.ts): this agent's own lag for GET /replica?lag= and
//     /metrics, behind /status as Patroni measures it; null when unknown (the check fails).
import type { ClusterView, KeyRevisions, Lsn, MemberInfo } from './types.ts';

/** Revisions of a view in which none of the conditionally written keys exists (a fresh object: writes move it on). */
export function absentRevisions(): KeyRevisions {
  return { sync: '0', failsafe: '0', failover: '0', status: '0' };
}

/** The member named `name`; undefined when it has not published itself (or there is no view or name). */
export function memberByName(view: Pick<ClusterView, 'members'> | null | undefined, name: string | null | undefined): MemberInfo | undefined {
  return view == null || name == null ? undefined : view.members.find((m) => m.name === name);
}

/** The member that holds the leader key; undefined when nobody holds it, it has not published itself, or there is no view. */
export function leaderMember(view: Pick<ClusterView, 'leader' | 'members'> | null | undefined): MemberInfo | undefined {
  return memberByName(view, view?.leader?.name);
}

/** The lag rule: bytes `lsn` lies behind `reference`, never negative; null when either is unknown. */
export function bytesBehind(lsn: Lsn | null, reference: Lsn | null): number | null {
  return lsn === null || reference === null ? null : Math.max(0, reference - lsn);
}

/** The leader's WAL position: the furthest of what it published (/status) and its member key (as primary). */
export function leaderPosition(view: Pick<ClusterView, 'leader' | 'members' | 'lastLeaderLsn'>): Lsn | null {
  const m = leaderMember(view);
  const own = m?.role === 'primary' ? m.lsn : null;
  const known = [view.lastLeaderLsn, own].filter((x): x is Lsn => x !== null);
  return known.length === 0 ? null : Math.max(...known);
}

/** A standby's lag as GET /cluster and pghactl list show it; null for other roles and when unknown. */
export function memberLag(view: Pick<ClusterView, 'leader' | 'members' | 'lastLeaderLsn'>, m: MemberInfo): number | null {
  return m.role === 'standby' ? bytesBehind(m.lsn, leaderPosition(view)) : null;
}
