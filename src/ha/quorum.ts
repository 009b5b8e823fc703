// synchronous_mode quorum (pure): the leader keeps `ANY k (S)` and a /sync record that is never
// optimistic, and a free leader key goes only to a member that holds every acknowledged commit.
//
// A guarantee (S, k) reads: "every commit the leader acknowledged is on at least k members of S".
// Under `ANY k (S)` each acknowledged commit is on k members of S. Two facts make the rules:
//   - A group of |S| - k + 1 members of S meets every k-subset of S, so among any such group one
//     member holds each acknowledged commit; WAL is a prefix, so the most advanced member of the
//     group holds them all.
//   - A setting `ANY kp (Sp)` implies the record (S, k) when kp - |Sp \ S| >= k: of the kp members
//     that confirmed a commit, at most |Sp \ S| lie outside S.
// The record's guarantee must stay true at every instant, for commits acknowledged under every
// setting the leader ever ran with. See planQuorum for the order of the writes.
import type { DynamicConfig } from '../config/schema.ts';
import type { Action, ClusterView, Lsn, MemberInfo, Observation, SyncMethod, SyncRecord } from './types.ts';

export interface Guarantee {
  members: string[];
  /** 0: no guarantee beyond the leader itself (members is then empty). */
  acks: number;
}

export const NO_GUARANTEE: Guarantee = { members: [], acks: 0 };

/** Application name listed when strict mode has no standby left: no commit is acknowledged. */
export const NO_SYNC_STANDBY = 'pgha_no_sync_standby';

/** synchronous_standby_names for `FIRST|ANY count (names)`; [] blocks commits (strict, nobody left); null is ''. */
export function syncStandbyNames(names: string[] | null, count: number, method: SyncMethod = 'first'): string {
  if (names === null) return '';
  const list = names.length === 0 ? [NO_SYNC_STANDBY] : names;
  const word = method === 'any' ? 'ANY' : 'FIRST';
  return `${word} ${Math.min(count, list.length)} (${list.map((n) => `"${n.replace(/"/g, '""')}"`).join(', ')})`;
}

/** The guarantee a /sync record states (an `on`-mode record: every member holds every commit). */
export function guaranteeOf(r: SyncRecord | null): Guarantee {
  if (r === null) return NO_GUARANTEE;
  return normalize({ members: r.members, acks: r.acks ?? r.members.length });
}

/** An `on`-mode record: every member holds every acknowledged commit (a quorum record, acks below its size, does not say so). */
export function namesEveryCommit(r: SyncRecord): boolean {
  return (r.acks ?? r.members.length) >= r.members.length;
}

/** The /sync record of the current leader key holder; null when there is none or an earlier leader wrote it. */
export function currentSync(c: ClusterView): SyncRecord | null {
  return c.sync !== null && c.leader !== null && c.sync.leader === c.leader.name ? c.sync : null;
}

/**
 * The standbys the current leader's /sync record names, as `pghactl list` and the health checks
 * show them: synchronous standbys in `on` mode (only from a record whose every member holds every
 * commit), quorum standbys in `quorum` mode, none when synchronous_mode is off.
 */
export function recordedStandbys(c: ClusterView): string[] {
  const r = currentSync(c);
  if (r === null || c.config.synchronous_mode === 'off') return [];
  if (c.config.synchronous_mode === 'on') return namesEveryCommit(r) ? r.members : [];
  return guaranteeOf(r).members;
}

function normalize(g: Guarantee): Guarantee {
  const members = [...new Set(g.members)].sort();
  const acks = Math.min(Math.max(0, g.acks), members.length);
  return acks === 0 ? NO_GUARANTEE : { members, acks };
}

export const sameGuarantee = (a: Guarantee, b: Guarantee): boolean =>
  a.acks === b.acks && a.members.length === b.members.length && a.members.every((m, i) => m === b.members[i]);

/** Commits acknowledged under `setting` satisfy `record`. */
export function implies(setting: Guarantee, record: Guarantee): boolean {
  if (record.acks === 0) return true;
  return setting.acks - setting.members.filter((m) => !record.members.includes(m)).length >= record.acks;
}

/** The strongest simple guarantee implied by both a and b: S = Sa ∪ Sb, k = min(ka, kb). */
export function meet(a: Guarantee, b: Guarantee): Guarantee {
  return normalize({ members: [...a.members, ...b.members], acks: Math.min(a.acks, b.acks) });
}

/** Standbys of ours that may be listed in synchronous_standby_names: streaming from us, not tagged nosync. */
export function eligibleMembers(me: string, members: MemberInfo[], streamingHere: readonly string[] = []): MemberInfo[] {
  // A member cascading from another standby is not streaming from us (m.upstream), and a nostream
  // member streams from nobody: neither is ever a synchronous standby, as in Patroni.
  return members.filter((m) => m.name !== me && m.role === 'standby' && !m.tags.nosync && !m.tags.nostream && (
    (m.state === 'streaming' && m.upstream === me) ||
    // A Patroni member (mixed cluster, migration): Patroni 3.0.2 publishes neither its upstream
    // nor replication_state, so it counts when our own pg_stat_replication shows it streaming.
    (m.agent === 'patroni' && m.state === 'running' && streamingHere.includes(m.name))));
}

/** The names of eligibleMembers, sorted. */
export function eligibleStandbys(me: string, members: MemberInfo[], streamingHere: readonly string[] = []): string[] {
  return eligibleMembers(me, members, streamingHere).map((m) => m.name).sort();
}

/** Standbys that have flushed every WAL byte written before synchronous_standby_names last changed. */
export function caughtUp(o: Observation): string[] {
  const since = o.local.syncChangedAt;
  if (since === null) return [];
  return o.local.replicas.filter((r) => r.flushLsn !== null && r.flushLsn >= since).map((r) => r.name);
}

/**
 * The leader's actions for quorum mode, in order. With R the record, D the desired setting
 * `ANY k (S)` (k = min(synchronous_node_count, |S|)) and P the setting PostgreSQL runs:
 *   1. Record first: R1 = meet(R, D). R1 is weaker than R (true now, as R is) and implied by D,
 *      so it stays true once D applies. This is the "narrow before" half: dropping a member or
 *      raising k weakens nothing that R1 claims.
 *   2. Then PostgreSQL: set D. Commits acknowledged from now on satisfy R1 (and D).
 *   3. Strengthen afterwards, and only with proof: write R2 = D once PostgreSQL reports D in
 *      effect (P = D) and at least k members of S have flushed past the position read when the
 *      setting last changed. Older commits lie before that position, so they are on those k
 *      members; newer ones were acknowledged under D. This is the "widen after" half.
 * No standby left: strict mode lists a name nobody has, so no commit is acknowledged and R is
 * kept as it is (it stays true and still says who may promote); non-strict mode writes the empty
 * record before going asynchronous.
 */
export function planQuorum(o: Observation, cfg: DynamicConfig, cluster: ClusterView): Action[] {
  const me = o.self.name;
  const mine = cluster.sync !== null && cluster.sync.leader === me;
  // A record written by another leader speaks of its commits, which we hold: start from nothing.
  const record = mine ? guaranteeOf(cluster.sync) : NO_GUARANTEE;
  const eligible = eligibleStandbys(me, cluster.members, o.local.replicas.map((r) => r.name));
  const k = Math.min(cfg.synchronous_node_count, eligible.length);
  const desired: Guarantee | 'block' = eligible.length > 0 ? { members: eligible, acks: k } : cfg.synchronous_mode_strict ? 'block' : NO_GUARANTEE;
  const names = desired === 'block' ? [] : eligible.length > 0 ? eligible : null;
  const actions: Action[] = [];
  const write = (g: Guarantee): Action => ({ kind: 'write_sync', members: g.members, acks: g.acks });
  const recordShape = cluster.sync !== null && mine && cluster.sync.acks !== undefined;
  // 1. The record first, weakened to what both the old record and the new setting imply.
  const r1 = desired === 'block' ? record : meet(record, desired);
  if (!recordShape || !sameGuarantee(r1, record)) actions.push(write(r1));
  // 2. The setting.
  actions.push({ kind: 'set_sync_names', names, count: cfg.synchronous_node_count, method: 'any' });
  // 3. Strengthen only once PostgreSQL runs D and k listed members hold everything older.
  if (desired !== 'block' && desired.acks > 0 && !sameGuarantee(r1, desired)) {
    const running = o.local.syncSetting === syncStandbyNames(names, cfg.synchronous_node_count, 'any');
    const holders = caughtUp(o).filter((n) => desired.members.includes(n));
    if (running && holders.length >= desired.acks) actions.push(write(desired));
  }
  return actions;
}

/** Who may take a free key under a /sync record: members of S, seen in groups of `need`. */
export interface SyncRule {
  members: string[];
  /** How many members of S (the racer included) must be seen at or behind the racer: |S| - k + 1. */
  need: number;
}

/**
 * The failover rule for a /sync record. null: synchronous rules do not restrict the race (mode
 * off, or an empty record in non-strict mode: the leader went asynchronous). An empty record in
 * strict mode allows nobody.
 */
export function syncRule(cfg: DynamicConfig, cluster: ClusterView): SyncRule | null {
  if (cfg.synchronous_mode === 'off') return null;
  const g = guaranteeOf(cluster.sync);
  if (g.acks === 0) return cfg.synchronous_mode_strict ? { members: [], need: 1 } : null;
  return { members: g.members, need: g.members.length - g.acks + 1 };
}

/**
 * Members of S whose published position is final and at or behind `lsn` on `timeline`. Final: a
 * standby that is not streaming receives no more WAL, so what it published is what it holds (a
 * streaming member may still be receiving). A member key lives on its agent's lease, so the key
 * of a frozen agent is gone by the time the leader key (same TTL) expires.
 */
export function quorumWitnesses(rule: SyncRule, self: string, lsn: Lsn, timeline: number, members: MemberInfo[]): string[] {
  const others = members.filter((m) => m.name !== self && rule.members.includes(m.name) && m.role === 'standby'
    && m.state === 'running' && m.lsn !== null && m.timeline === timeline && m.lsn <= lsn).map((m) => m.name);
  return rule.members.includes(self) ? [self, ...others] : [];
}
