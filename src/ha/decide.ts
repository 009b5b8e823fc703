// The HA decision: observed state in, a plan of actions out. Pure: no etcd, pg, clock or
// randomness; `now`, every fact and the agent's Memory (src/ha/memory.ts) arrive in the
// Observation. The agent loop (src/agent/loop.ts) observes, calls decide(), executes the steps in
// order, stopping at the first that fails, then folds the outcomes into its Memory (remember()).
// Every step is explicit: a clone, a rewind or a step-down is followed by its own `start`.
//
// The rules, in the order they are checked:
//   A. etcd unreadable: a primary that cannot prove its lease fences; nobody else acts. With
//      failsafe_mode, a primary that every member confirmed this loop extends its deadline.
//   U. the `<data_dir>.unfinished` marker: a bootstrap, clone or wipe of ours never finished (the
//      agent died in it). Empty the directory and start over, unless /initialize already holds
//      the system id of our bootstrap (it finished; only the marker was left): keep it, drop it.
//   B0. data_dir holds other files but no PostgreSQL data directory, and no marker: do nothing
//      (never initdb, clone or wipe there).
//   B. nobody initialised the cluster: an empty member bootstraps it; existing data is adopted
//      only by a running primary that leads it now, or when bootstrap.adopt_system_id names it.
//   C. initialisation in progress elsewhere, or our data belongs to another cluster: wait.
//   D. empty data directory: clone from the leader (or a `clonefrom` standby).
//   E. we hold the key: renew it first, then run as primary (start, promote or keep running).
//   F. another member holds the key: never run as primary; follow it, rewind or start as standby.
//   G. the key is free: a running primary takes it back; the best eligible standby races for it.
//      During a switchover or manual failover (the /failover request) only its candidate races,
//      and the leader that stepped down never does.
//      A member that promised a failsafe leader not to act (or, failsafe_mode on, is missing
//      from /failsafe, or its agent started less than a ttl ago) never races; nor does anyone
//      while /sync is unreadable in synchronous mode, or /config is invalid with no earlier
//      valid value known.
//   S. standby_cluster set (src/ha/standby.ts): the cluster replicates from another one. The first
//      member clones the source (bootstrap_standby); the key holder is the standby leader, which
//      follows the source (rewinding from it after the source's failover) and never promotes; a
//      member that takes the key follows the source instead of promoting; a running primary stops.
//      A source that is one of our members, or holds another system, is never followed.
// A paused cluster (maintenance mode) never promotes, demotes, restarts or fences on its own.
import { leaderMember as leaderOf, memberByName } from './view.ts';
import { patroniReleasedLsn } from './patroni-handover.ts';
import type { DynamicConfig } from '../config/schema.ts';
import { logicalManaged, physicalPermanentSlots } from './logical.ts';
import { asCandidate, bestCandidate, lagBehind, markedUnsafe, mayEverPromote, type Candidate } from './candidates.ts';
import { failsafeBlocksRace, failsafeConfirmed, failsafeRecordFor, holdActive, sameRecord, startBlocksRace, startWaitLeft } from './failsafe.ts';
import { MAX_REWINDS_WITHOUT_STREAMING, notStreamingSince, otherMembers, retainSlots, rewindsWithoutStreaming } from './memory.ts';
import { quorumWitnesses, syncRule } from './quorum.ts';
import { planSync } from './sync.ts';
import { decideAsStandbyLeader, decideStandbyBootstrap, sourceProblem, standbyClusterOf, takeOver } from './standby.ts';
import { chooseUpstream } from './upstream.ts';
import type { Action, ClusterView, FailoverRequest, LeaderKey, MemberInfo, Observation, Plan, PromoteReason } from './types.ts';

/** Failed starts after which a leader gives its key up so that a standby can take over. */
export const MAX_START_FAILURES = 3;
/**
 * How long a standby may fail to stream from the leader on an older timeline before it rewinds
 * (ms). 5 s: after a failover, a standby that can follow the new timeline reconnects within
 * about one wal_receiver retry (5 s by default); one that cannot will never stream.
 */
export const REWIND_AFTER_MS = 5_000;

/** Our lease deadline has passed, or we never proved a lease (an agent that just started). */
export const leaseExpired = (o: Observation): boolean => o.self.leaseDeadline === null || o.now >= o.self.leaseDeadline;

/**
 * A /failover request older than this is ignored (ms). 30 s: a switchover completes in about a
 * second; a request whose candidate never took over must not block failover forever.
 */
export const REQUEST_TTL_MS = 30_000;
/**
 * Loop pace while a handover is in progress (ms): the candidate waits for the last WAL of the
 * leader that stepped down, which arrives within milliseconds; a full loop_wait would add to
 * the write outage.
 */
export const HANDOVER_POLL_MS = 20;

/** The request applies now: not stale, and its scheduled time (if any) has come. */
export function activeRequest(o: Observation, cluster: ClusterView): FailoverRequest | null {
  const r = cluster.failover;
  if (r === null) return null;
  const start = Math.max(r.requestedAt, r.scheduledAt ?? 0);
  if (o.wallNow < start || o.wallNow - start > REQUEST_TTL_MS) return null;
  return r;
}

const plan = (reason: string, ...actions: Action[]): Plan => ({ reason, actions });

/**
 * A member about to take the key (or, holding it as a standby, to promote) whose agent started
 * less than a ttl ago with failsafe_mode on: the plan that waits instead (src/ha/failsafe.ts
 * startBlocksRace), checked again as soon as the ttl has passed; null: go ahead.
 */
function waitAfterStart(o: Observation, cfg: DynamicConfig, req: FailoverRequest | null, ...keep: Action[]): Plan | null {
  const why = startBlocksRace(o, cfg, req);
  return why === null ? null : { ...plan(why, ...keep), retryAfterMs: startWaitLeft(o, cfg) };
}

/** The history reason of a promotion: the active request's kind, else an automatic failover. */
function promoteFor(req: FailoverRequest | null): Action {
  const reason: PromoteReason = req === null ? 'failover' : req.kind === 'switchover' ? 'switchover' : 'manual failover';
  return { kind: 'promote', reason };
}

export function decide(o: Observation): Plan {
  const { local, cluster } = o;
  const cfg = cluster?.config ?? o.fallbackConfig;
  const runningPrimary = local.running && local.role === 'primary';
  const expired = leaseExpired(o);
  const standbyCluster = standbyClusterOf(cfg);

  // A. Without etcd nothing can be proved: fence a primary whose lease may be gone.
  if (cluster === null) {
    // S. A standby cluster never has a writable member.
    if (runningPrimary && standbyCluster !== null && !cfg.pause) return plan('etcd unreachable and standby_cluster is set: stopping our primary', { kind: 'fence' });
    const round = o.failsafe ?? null;
    if (runningPrimary && !cfg.pause && cfg.failsafe_mode && round !== null && failsafeConfirmed(o)) {
      return plan(`etcd unreachable; failsafe: all ${round.asked.length} members confirmed us: staying primary`, { kind: 'failsafe_extend', sentAt: round.sentAt });
    }
    if (runningPrimary && expired && !cfg.pause) return plan('etcd unreachable and lease deadline passed: fencing', { kind: 'fence' });
    if (runningPrimary && round !== null) {
      const missing = round.asked.filter((n) => !round.confirmed.includes(n));
      return plan(`etcd unreachable; failsafe: not confirmed by ${missing.join(', ')}: PostgreSQL stops at the lease deadline`);
    }
    return plan('etcd unreachable: waiting');
  }

  // U. Our own unfinished work: checked before B0, since a half-made directory has no PG_VERSION.
  const unfinished = decideUnfinished(o, cluster);
  if (unfinished !== null) return unfinished;

  // B0. Files that are no PostgreSQL data directory: neither initdb nor pg_basebackup writes there.
  if (local.dataDir === 'foreign') {
    return plan('data_dir holds files but no PostgreSQL data directory (no PG_VERSION): refusing to bootstrap or clone into it (PGHA_DATA_DIR_UNSAFE)');
  }

  // B, C. Initialisation.
  if (cluster.initialize === null) {
    if (local.dataDir === 'initialized') return decideAdopt(o, runningPrimary && !expired);
    if (!mayEverPromote(o.self.tags)) return plan('cluster not initialised; this member may not bootstrap it (nofailover)');
    if (standbyCluster !== null) return decideStandbyBootstrap(o, standbyCluster);
    return plan('cluster not initialised: bootstrapping', { kind: 'bootstrap' });
  }
  if (cluster.initialize === '' || cluster.initialize.startsWith('claim:')) {
    return plan(`bootstrap in progress (${cluster.initialize || 'unclaimed'}): waiting`);
  }

  // D. An empty member clones.
  if (local.dataDir === 'empty') return decideClone(o, cluster);
  if (local.systemId !== null && local.systemId !== cluster.initialize) {
    return plan(`system identifier ${local.systemId} is not the cluster's ${cluster.initialize}: refusing to touch this data`);
  }

  const leader = cluster.leader;
  if (leader !== null && leader.name === o.self.name) return decideAsLeader(o, cfg, expired);
  if (leader !== null) return decideAsFollower(o, cfg, leader);
  return decideWithoutLeader(o, cfg, cluster);
}

/**
 * The marker says pgha found the data directory empty, started writing into it, and died before
 * the result was complete: whatever it holds is pgha's own and unusable. Only a bootstrap whose
 * system id /initialize already holds is complete (the agent died between the registration and
 * the marker's removal). A clone's pg_control can carry the cluster's system id long before the
 * copy is consistent, so a clone (or a wipe) is always redone. An empty directory needs nothing:
 * the bootstrap or clone it gets next writes the marker again.
 */
function decideUnfinished(o: Observation, cluster: ClusterView): Plan | null {
  const step = o.local.unfinished ?? null;
  if (step === null || o.local.dataDir === 'empty') return null;
  const id = o.local.systemId;
  if (step === 'bootstrap' && id !== null && cluster.initialize === id) {
    const rest = decide({ ...o, local: { ...o.local, unfinished: null } });
    return { ...rest, reason: `our bootstrap finished (/initialize holds our system identifier ${id}); dropping its marker; ${rest.reason}`, actions: [{ kind: 'settle_data' }, ...rest.actions] };
  }
  const what = step === 'bootstrap' ? 'bootstrap (initdb or restore)' : step === 'clone' ? 'clone' : 'wipe';
  return plan(`data_dir holds our unfinished ${what} (${o.local.dataDir === 'foreign' ? 'no PG_VERSION' : `system identifier ${id ?? 'unknown'}`}, marker <data_dir>.unfinished): emptying it to start over`,
    { kind: 'wipe_unfinished', step });
}

/**
 * Existing data, and etcd holds no /initialize key: either etcd lost its data, or this member's
 * scope (or namespace, or etcd) is not the one its data belongs to. Only two cases register the
 * data as the cluster: this agent leads it right now (a running primary with a live lease, which
 * only a leader key of this scope gave it), or the operator named the data's system identifier
 * in bootstrap.adopt_system_id. Anything else, a standby's data above all, waits: adopting it
 * would let it promote as a second primary beside its real cluster.
 */
function decideAdopt(o: Observation, leading: boolean): Plan {
  const id = o.local.systemId;
  if (leading) return plan('cluster has no initialize key, and we lead it as a running primary: registering our data', { kind: 'adopt_cluster' });
  if (id !== null && id === o.self.adoptSystemId) return plan(`cluster has no initialize key: adopting our data (system identifier ${id}, bootstrap.adopt_system_id)`, { kind: 'adopt_cluster' });
  return plan(`cluster has no initialize key and our data (system identifier ${id ?? 'unknown'}) is not adopted without bootstrap.adopt_system_id: ` +
    'check scope, namespace and etcd.hosts; to make this data the cluster, set bootstrap.adopt_system_id to its identifier on this member only');
}

function decideClone(o: Observation, cluster: ClusterView): Plan {
  const leader = leaderOf(cluster);
  // A standby cluster's leader is a running standby (the standby leader).
  const ready = cluster.config.standby_cluster == null
    ? leader?.role === 'primary' && leader.state === 'running'
    : leader?.role === 'standby' && (leader.state === 'running' || leader.state === 'streaming');
  if (leader === undefined || !ready) {
    return plan('empty data directory: waiting for a running leader to clone from');
  }
  const source = cluster.members.find((m) => m.tags.clonefrom && m.role === 'standby' && m.state === 'streaming' && !markedUnsafe(cluster, m.name)) ?? leader;
  // A fresh copy is what `pghactl verify` wanted: the unsafe mark goes once it runs (a clone from a
  // standby copies whatever that standby holds, but a marked one is never a source).
  // A nostream member starts with no upstream: it replays the archive only.
  return plan(`empty data directory: cloning from ${source.name}`, { kind: 'clone', from: source.name },
    { kind: 'start', as: 'standby', upstream: o.self.tags.nostream ? null : source.name }, { kind: 'clear_unsafe' });
}

// E. We hold the leader key.
function decideAsLeader(o: Observation, cfg: DynamicConfig, leaseExpired: boolean): Plan {
  const { local } = o;
  const renew: Action = { kind: 'renew', fenceOnFailure: local.running && local.role === 'primary' && leaseExpired && !cfg.pause };
  const sc = standbyClusterOf(cfg);
  if (sc !== null) {
    const handover = local.running && local.role === 'standby' && !cfg.pause ? decideHandover(o, renew) : null;
    if (handover !== null) return handover;
    const members = slotMembersNow(o, cfg);
    const slots: Action[] = cfg.postgresql.use_slots ? [{ kind: 'ensure_slots', members, permanent: [] }] : [];
    return decideAsStandbyLeader(o, cfg, sc, renew, [{ kind: 'publish_leader_lsn', last: o.memory.published }, ...slots]);
  }
  if (local.running && local.role === 'primary') {
    const handover = cfg.pause ? null : decideHandover(o, renew);
    if (handover !== null) return handover;
    const members = slotMembersNow(o, cfg);
    const slots: Action[] = cfg.postgresql.use_slots ? [{ kind: 'ensure_slots', members, permanent: physicalPermanentSlots(cfg) }] : [];
    const sync = o.cluster === null ? [] : planSync(o, cfg, o.cluster);
    // Last: its work runs in the background and never holds the loop (src/slots/manager.ts).
    const logical: Action[] = logicalManaged(cfg, o.cluster) ? [{ kind: 'sync_logical', as: 'leader' }] : [];
    return plan('leader: running as primary', renew, { kind: 'publish_leader_lsn', last: o.memory.published }, ...slots, ...sync, ...failsafeRecord(o, cfg), ...logical);
  }
  if (local.running && local.role === 'standby') {
    if (cfg.pause) return plan('leader key held by a standby, but paused: not promoting', renew);
    const hold = holdActive(o);
    if (hold !== null) return plan(`holding the leader key, but we confirmed ${hold.leader} in failsafe mode: not promoting yet`, renew);
    if (!mayEverPromote(o.self.tags)) return plan('holding the key with nofailover: releasing it', { kind: 'release' });
    if (markedUnsafe(o.cluster, o.self.name)) return plan('holding the key, but marked unsafe by pghactl verify: releasing it', { kind: 'release' });
    const req = o.cluster === null ? null : activeRequest(o, o.cluster);
    return waitAfterStart(o, cfg, req, renew) ?? plan('holding the leader key: promoting', renew, promoteFor(req));
  }
  if (local.running) return plan('leader: PostgreSQL is starting, waiting', renew);
  if (cfg.pause) return plan('leader: PostgreSQL is down, but paused: not restarting', renew);
  if (o.memory.startFailures >= MAX_START_FAILURES) {
    return plan(`leader: PostgreSQL failed to start ${o.memory.startFailures} times: releasing the key`, { kind: 'release' });
  }
  if (local.controlState === 'standby') return plan('leader: starting the standby data to promote it', renew, { kind: 'start', as: 'standby', upstream: null });
  return plan('leader: PostgreSQL is down: restarting it in place', renew, { kind: 'start', as: 'primary', upstream: null });
}

/** Leader: keep /failsafe naming every member (failsafe_mode on), or remove it (off). */
function failsafeRecord(o: Observation, cfg: DynamicConfig): Action[] {
  const cluster = o.cluster;
  if (cluster === null) return [];
  const want = cfg.failsafe_mode ? failsafeRecordFor(o.self.name, cluster) : null;
  return sameRecord(cluster.failsafe, want) ? [] : [{ kind: 'write_failsafe', record: want, expected: cluster.revisions.failsafe }];
}

/** A leader with a pending request: step down to a healthy candidate, or drop the request. */
function decideHandover(o: Observation, renew: Action): Plan | null {
  const cluster = o.cluster;
  if (cluster === null || cluster.failover === null) return null;
  const r = cluster.failover;
  if (r.leader !== null && r.leader !== o.self.name) return plan(`dropping a request addressed to former leader ${r.leader}`, renew, { kind: 'clear_failover' });
  if (r.scheduledAt !== null && o.wallNow < r.scheduledAt) return null; // scheduled for later
  if (activeRequest(o, cluster) === null) return plan('dropping a stale switchover request', renew, { kind: 'clear_failover' });
  const cfg = cluster.config;
  const eligible = cluster.members
    .filter((m) => m.name !== o.self.name && (r.candidate === null || m.name === r.candidate) && !markedUnsafe(cluster, m.name))
    .map((m) => asCandidate(m, cluster.lastLeaderLsn, cfg))
    .filter((c): c is Candidate => c !== null);
  if (eligible.length === 0) return plan(`switchover impossible: ${r.candidate ?? 'no standby'} is not a healthy eligible candidate`, renew, { kind: 'clear_failover' });
  // The new leader is not known yet: the old one restarts as a standby of nobody, and follows the
  // winner once it holds the key.
  return plan(`${r.kind}: stepping down for ${r.candidate ?? 'the best standby'}`, renew, { kind: 'step_down' }, { kind: 'start', as: 'standby', upstream: null });
}

// F. Another member holds the key: we never run as primary.
function decideAsFollower(o: Observation, cfg: DynamicConfig, leader: LeaderKey): Plan {
  const { local } = o;
  const leaderMember: MemberInfo | undefined = memberByName(o.cluster, leader.name);
  if (local.running && local.role === 'primary') {
    if (cfg.pause) return plan(`paused: ${leader.name} holds the key but we run as primary; not demoting`);
    return plan(`${leader.name} holds the leader key: stopping our primary at once`, { kind: 'fence' });
  }
  // Whom to stream from: the leader, a replicatefrom member, or nobody (nostream): src/ha/upstream.ts.
  const choice = chooseUpstream(o.self.name, o.self.tags, o.cluster);
  const want = choice.upstream;
  const source = want === null ? 'the archive' : want;
  const why = choice.note === null ? '' : ` (${choice.note})`;
  if (local.running && local.role === 'standby') {
    const slots = downstreamSlots(o, cfg);
    if (local.upstream !== want) return plan(`following ${source}${want === leader.name ? `, leader ${leader.name}` : ''}${why}`, { kind: 'follow', upstream: want }, ...slots);
    if (needsRewind(o, cfg, leaderMember)) return rewindPlan(o, leader.name, `not streaming from ${source} on an older timeline than leader ${leader.name}`);
    // Copies of the leader's logical slots are taken only from the leader we stream from.
    if (local.streaming && want === leader.name && logicalManaged(cfg, o.cluster)) {
      return plan(`following ${leader.name}`, ...slots, { kind: 'sync_logical', as: 'standby', leader: leader.name, mayRestart: !cfg.pause });
    }
    return plan(`following ${source}${why}`, ...slots);
  }
  if (local.running) return plan('PostgreSQL is starting: waiting');
  if (cfg.pause) return plan('PostgreSQL is down, but paused: not starting it');
  if (leaderMember === undefined) return plan(`waiting for leader ${leader.name} to publish its address`);
  // The last rewind left data that cannot be used: pg_rewind failed (not for want of the leader),
  // or the rewound directory did not start as a standby (its minimum recovery point lies on a
  // timeline the leader's history lacks: chaos seed 2). Clone afresh.
  if (o.memory.rewindUnusable) return recloneFrom(leader.name, 'the rewound data directory cannot be used');
  // A former primary, or data whose state could not be read, is rewound: pg_rewind is a no-op
  // when nothing diverged, while starting diverged data as a standby would fail. So is a standby
  // that keeps failing to start (its data may lie on a timeline the leader's history lacks).
  if (o.memory.startFailures >= MAX_START_FAILURES && cfg.postgresql.use_pg_rewind) {
    return rewindPlan(o, leader.name, `PostgreSQL failed to start ${o.memory.startFailures} times as a standby`);
  }
  if (local.controlState !== 'standby' && cfg.postgresql.use_pg_rewind) {
    return rewindPlan(o, leader.name, `former primary (${local.controlState})`);
  }
  return plan(`starting as a standby of ${source}${why}`, { kind: 'start', as: 'standby', upstream: want });
}

/**
 * The members this one keeps a physical slot for: the ones that stream from it now and the ones
 * that did within member_slots_ttl (a member away for a while keeps its WAL). remember() keeps the
 * same set in Memory.slotsSeen once ensure_slots has run.
 */
function slotMembersNow(o: Observation, cfg: DynamicConfig): string[] {
  return Object.keys(retainSlots(o.memory.slotsSeen, otherMembers(o), o.now, cfg.member_slots_ttl * 1000));
}

/**
 * A standby that others stream from (replicatefrom) keeps a physical slot for each of them, seen
 * now or within member_slots_ttl, like the leader. A standby nobody cascades from, now or within
 * the ttl, touches no slot.
 */
function downstreamSlots(o: Observation, cfg: DynamicConfig): Action[] {
  if (!cfg.postgresql.use_slots) return [];
  const members = slotMembersNow(o, cfg);
  if (members.length === 0 && Object.keys(o.memory.slotsSeen).length === 0) return [];
  return [{ kind: 'ensure_slots', members, permanent: [] }];
}

/**
 * Rewind from the leader, then start as its standby. pg_rewind can find "no rewind required" for
 * a standby that replayed past the new timeline's fork (its control file does not show how far it
 * got), and the standby then never streams: the third rewind with no streaming since is a fresh
 * clone instead (chaos seed 7).
 */
function rewindPlan(o: Observation, from: string, why: string): Plan {
  const n = rewindsWithoutStreaming(o);
  if (n + 1 >= MAX_REWINDS_WITHOUT_STREAMING) return recloneFrom(from, `${why}; rewound ${n} times without streaming since`);
  return plan(`${why}: rewinding from ${from}`, { kind: 'rewind', from }, { kind: 'start', as: 'standby', upstream: from });
}

function recloneFrom(from: string, why: string): Plan {
  return plan(`${why}: cloning afresh from ${from}`, { kind: 'reclone', from }, { kind: 'start', as: 'standby', upstream: from });
}

function needsRewind(o: Observation, cfg: DynamicConfig, leader: MemberInfo | undefined): boolean {
  if (!cfg.postgresql.use_pg_rewind || cfg.pause || o.local.streaming) return false;
  const since = notStreamingSince(o);
  if (since === null || o.now - since < REWIND_AFTER_MS) return false;
  // The timeline PostgreSQL replays, not the one its WAL receiver once reached: a standby that got
  // the new timeline's history but cannot follow it (it replayed past the fork) must be rewound
  // (chaos seed 7, asynchronous mode).
  const local = o.local.replayTimeline ?? o.local.timeline;
  return leader?.timeline != null && local !== null && leader.timeline > local;
}

// G. The key is free.
function decideWithoutLeader(o: Observation, cfg: DynamicConfig, cluster: ClusterView): Plan {
  const { local } = o;
  if (cfg.pause) return plan('leader key is free, but paused: not taking it');
  if (local.running && local.role === 'primary') {
    if (cfg.standby_cluster != null) return plan('running as primary in a standby cluster without the key: fencing', { kind: 'fence' });
    // Our lease may be gone, so someone else may take the key at any moment: stop writes now.
    if (leaseExpired(o)) return plan('running as primary without the key or a live lease: fencing', { kind: 'fence' });
    const req = activeRequest(o, cluster);
    if (req !== null && (req.leader === o.self.name || (req.candidate !== null && req.candidate !== o.self.name))) {
      return plan(`running as primary without the key during a ${req.kind} to ${req.candidate ?? 'another member'}: fencing`, { kind: 'fence' });
    }
    // The key was deleted while our lease lives; a primary is the most advanced member of its
    // timeline, so it takes the key back. The acquire arms the deadline from this loop's
    // acknowledged keepalive, so a renewal that fails right after it is like any leader's: the
    // deadline (or a failsafe round) decides, not an immediate fence. (Fencing at once turned a
    // take-back just before etcd lost its quorum into a failover: chaos seed 2, fault 4.)
    return plan('running as primary without the key: taking it', { kind: 'acquire' }, { kind: 'renew', fenceOnFailure: false });
  }
  if (!local.running) {
    // Without the key we only ever start as a standby; once up it reports its position and can race.
    return plan('leader key is free and PostgreSQL is down: starting as a standby', { kind: 'start', as: 'standby', upstream: null });
  }
  if (local.role !== 'standby' || local.lsn === null || local.timeline === null) return plan('PostgreSQL is starting: waiting');
  const blocked = failsafeBlocksRace(o, cfg, cluster);
  if (blocked !== null) return plan(blocked);
  // An unreadable record is not "no record": it may name who holds every acknowledged commit.
  if (cluster.syncUnreadable === true && cfg.synchronous_mode !== 'off') return plan('leader key is free; /sync in etcd is unreadable: not racing');
  // Without any valid /config we may not know the cluster is paused or synchronous.
  if (cluster.configInvalid != null && !cluster.configInvalid.kept) return plan('leader key is free; /config in etcd is invalid and no earlier value is known: not racing');
  const req = activeRequest(o, cluster);
  if (req !== null && req.leader === o.self.name) return plan(`stepped down for a ${req.kind}: not racing`);
  if (req !== null && req.candidate !== null) return decideAsCandidate(o, req, req.candidate);
  if (!mayEverPromote(o.self.tags)) return plan('leader key is free; this member may not promote (nofailover)');
  if (markedUnsafe(cluster, o.self.name)) return plan('leader key is free; this member is marked unsafe by pghactl verify (its data differs): not racing');
  const rule = syncRule(cfg, cluster);
  const allowed = rule?.members ?? null;
  if (allowed !== null && !allowed.includes(o.self.name)) {
    return plan(`leader key is free; synchronous mode: only ${allowed.join(', ') || 'nobody (no synchronous standby, strict)'} may promote`);
  }
  // Quorum: we must be the most advanced of |S| - k + 1 members of S, so that we hold every commit.
  if (rule !== null && rule.need > 1) {
    const seen = quorumWitnesses(rule, o.self.name, local.lsn, local.timeline, cluster.members);
    if (seen.length < rule.need) {
      return plan(`leader key is free; quorum: ${seen.length} of the ${rule.need} members needed (${rule.members.join(', ')}) are seen at or behind us: not racing`);
    }
  }
  const lag = lagBehind(local.lsn, cluster.lastLeaderLsn);
  if (lag > cfg.maximum_lag_on_failover) {
    return plan(`leader key is free; we are ${lag} bytes behind (maximum_lag_on_failover ${cfg.maximum_lag_on_failover}): not racing`);
  }
  const me: Candidate = { name: o.self.name, lsn: local.lsn, timeline: local.timeline, tags: o.self.tags };
  const others = cluster.members
    .filter((m) => m.name !== o.self.name && m.name !== req?.leader && (allowed === null || allowed.includes(m.name)) && !markedUnsafe(cluster, m.name))
    .map((m) => asCandidate(m, cluster.lastLeaderLsn, cfg))
    .filter((c): c is Candidate => c !== null);
  const best = bestCandidate([me, ...others]);
  if (best !== null && best.name !== me.name) return plan(`leader key is free; ${best.name} is the better candidate`);
  const problem = cfg.standby_cluster == null ? null : sourceProblem(o, cfg.standby_cluster, cluster);
  if (problem !== null) return plan(`leader key is free; ${problem}: not racing`);
  if (cfg.standby_cluster != null) return plan('leader key is free and we are the best candidate: taking it as the standby leader', { kind: 'acquire' }, takeOver(cfg, promoteFor(req)));
  const wait = waitAfterStart(o, cfg, req);
  if (wait !== null) return wait;
  return plan('leader key is free and we are the best candidate: taking it and promoting', ...advanceLogical(cluster), { kind: 'acquire' }, promoteFor(req));
}

/**
 * Before a standby takes the key to promote: advance its logical slot copies to the positions
 * the leader last published (after a switchover, the old leader's final ones). Clamped by
 * PostgreSQL to the WAL this standby replayed, so it never moves past what it holds.
 */
function advanceLogical(cluster: ClusterView | null): Action[] {
  return cluster !== null && logicalManaged(cluster.config, cluster) ? [{ kind: 'advance_logical' }] : [];
}

/** A named candidate takes the key once it holds the stepped-down leader's last WAL; others wait. */
function decideAsCandidate(o: Observation, req: FailoverRequest, candidate: string): Plan {
  if (candidate !== o.self.name) return plan(`${req.kind} to ${candidate} in progress: not racing`);
  // A nofailover member never promotes, even when named. Lag is not re-checked: a switchover
  // candidate was checked when it was requested and waits for the old leader's last WAL below;
  // a manual failover is the operator's explicit choice.
  if (!mayEverPromote(o.self.tags)) return plan(`named in a ${req.kind} but tagged nofailover: not racing`);
  if (markedUnsafe(o.cluster, o.self.name)) return plan(`named in a ${req.kind} but marked unsafe by pghactl verify: not racing`);
  // Without the old leader's last WAL position to wait for, synchronous mode decides who is safe.
  const rule = o.cluster === null ? null : syncRule(o.cluster.config, o.cluster);
  if (req.shutdownLsn === null && rule !== null && !rule.members.includes(o.self.name)) {
    return plan(`named in a ${req.kind} but not a synchronous standby: not racing`);
  }
  if (req.shutdownLsn === null && rule !== null && rule.need > 1 && o.cluster !== null) {
    const seen = o.local.lsn === null || o.local.timeline === null ? [] : quorumWitnesses(rule, o.self.name, o.local.lsn, o.local.timeline, o.cluster.members);
    if (seen.length < rule.need) return plan(`named in a ${req.kind}, but quorum: only ${seen.length} of ${rule.need} members seen at or behind us: not racing`);
  }
  // Mixed Patroni/pgha cluster (migration): a Patroni leader's switchover records no shutdown_lsn;
  // its final /status optime stands in once it has released the key (src/ha/patroni-handover.ts).
  const shutdownLsn = req.shutdownLsn ?? patroniReleasedLsn(req, o.cluster);
  if (shutdownLsn !== null && (o.local.lsn ?? 0) <= shutdownLsn) {
    return { ...plan(`${req.kind}: waiting for WAL beyond ${shutdownLsn}`), retryAfterMs: HANDOVER_POLL_MS };
  }
  if (req.kind === 'switchover' && req.leader !== null && shutdownLsn === null) {
    // The key is free but the old leader has not recorded its last WAL position yet.
    return { ...plan(`${req.kind}: waiting for ${req.leader} to record its last WAL position`), retryAfterMs: HANDOVER_POLL_MS };
  }
  const cfg = o.cluster?.config ?? o.fallbackConfig;
  if (cfg.standby_cluster != null) return plan(`${req.kind}: taking over as the named candidate (standby leader)`, { kind: 'acquire' }, takeOver(cfg, promoteFor(req)), { kind: 'clear_failover' });
  const wait = waitAfterStart(o, cfg, req);
  if (wait !== null) return wait;
  return plan(`${req.kind}: taking over as the named candidate`, ...advanceLogical(o.cluster), { kind: 'acquire' }, promoteFor(req), { kind: 'clear_failover' });
}
