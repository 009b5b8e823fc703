// Synchronous replication: the leader's plan for synchronous_standby_names and /sync, and who may
// promote. The record must never claim more than PostgreSQL guarantees. synchronous_mode on
// (FIRST n) first; then quorum (ANY k), checked on tables and on a simulation of commits,
// replication and leader loops, and who may promote.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decide } from '../../src/ha/decide.ts';
import { NO_GUARANTEE, guaranteeOf, implies, meet, planQuorum, syncStandbyNames, type Guarantee } from '../../src/ha/quorum.ts';
import { planSync } from '../../src/ha/sync.ts';
import type { Action, MemberInfo, Observation } from '../../src/ha/types.ts';
import { clusterView, defaultTags, dyn, member, obs } from '../support/observations.ts';

const on = dyn({ synchronous_mode: 'on' });
const leaderObs = (sync: string[] | null, confirmed: string[], over: Parameters<typeof clusterView>[0] = {}, cfg = on) =>
  obs({ self: { name: 'n1' }, local: { role: 'primary', syncStandbys: confirmed }, cluster: clusterView({ config: cfg, sync: sync === null ? null : { leader: 'n1', members: sync }, ...over }) });
const summary = (a: Action[]) => a.map((x) => (x.kind === 'write_sync' ? `write[${x.members.join(',')}]` : x.kind === 'set_sync_names' ? `names[${x.names?.join(',') ?? 'async'}]` : x.kind));

describe('planSync', () => {
  it('starts with an empty record, then adds a member once PostgreSQL reports it synchronous', () => {
    const first = leaderObs(null, []);
    expect(summary(planSync(first, on, first.cluster!))).toEqual(['write[]', 'names[n2]']);
    const second = leaderObs([], ['n2']);
    expect(summary(planSync(second, on, second.cluster!))).toEqual(['names[n2]', 'write[n2]']);
    const steady = leaderObs(['n2'], ['n2']);
    expect(summary(planSync(steady, on, steady.cluster!))).toEqual(['names[n2]']);
  });
  it('narrows the record before replacing a synchronous standby that stopped streaming', () => {
    const o = leaderObs(['n2'], ['n2'], { members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { state: 'stopped' }), member('n3')] });
    expect(summary(planSync(o, on, o.cluster!))).toEqual(['write[]', 'names[n3]']);
  });
  it('drops to asynchronous when nobody is left, or blocks commits in strict mode', () => {
    const alone = { members: [member('n1', { role: 'primary', state: 'running' })] };
    const o = leaderObs(['n2'], [], alone);
    expect(summary(planSync(o, on, o.cluster!))).toEqual(['write[]', 'names[async]']);
    const strict = dyn({ synchronous_mode: 'on', synchronous_mode_strict: true });
    const s = leaderObs(['n2'], [], alone, strict);
    expect(summary(planSync(s, strict, s.cluster!))).toEqual(['write[]', 'names[]']);
  });
  it('never picks a nosync standby', () => {
    const o = leaderObs(null, [], { members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { tags: { ...defaultTags, nosync: true } })] });
    expect(summary(planSync(o, on, o.cluster!))).toEqual(['write[]', 'names[async]']);
  });
  test.prop([fc.subarray(['n2', 'n3']), fc.subarray(['n2', 'n3']), fc.subarray(['n2', 'n3'])], { numRuns: 300 })(
    'every record written is the old record narrowed, or widened only with confirmed members',
    (record, confirmed, streaming) => {
      const members = [member('n1', { role: 'primary', state: 'running' }), ...['n2', 'n3'].map((n) => member(n, { state: streaming.includes(n) ? 'streaming' : 'running' }))];
      const o = leaderObs(record, confirmed, { members });
      for (const a of planSync(o, on, o.cluster!)) {
        if (a.kind !== 'write_sync') continue;
        for (const m of a.members) expect(record.includes(m) || confirmed.includes(m)).toBe(true);
      }
    },
  );
});

describe('failover under synchronous mode', () => {
  const free = (sync: string[], cfg = on) => clusterView({ leader: null, config: cfg, sync: { leader: 'n1', members: sync }, members: [member('n2', { lsn: 500 }), member('n3', { lsn: 9000 })] });
  it('only a member of the record races, even if another standby is further ahead', () => {
    expect(decide(obs({ local: { lsn: 500 }, cluster: free(['n2']) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free(['n2']) })).actions).toEqual([]);
  });
  it('nobody races with an empty record in strict mode; asynchronous rules apply otherwise', () => {
    const strict = dyn({ synchronous_mode: 'on', synchronous_mode_strict: true });
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free([], strict) })).actions).toEqual([]);
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free([]) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
  });
});

// ---- synchronous_mode quorum ----
const quorum = dyn({ synchronous_mode: 'quorum' });
const primary = member('n1', { role: 'primary', state: 'running', upstream: null });
type Over = Partial<Observation['local']>;
const quorumLeader = (sync: Guarantee | null, local: Over = {}, members: MemberInfo[] = [primary, member('n2'), member('n3')], cfg = quorum) =>
  obs({ self: { name: 'n1' }, local: { role: 'primary', ...local }, cluster: clusterView({ config: cfg, members, sync: sync === null ? null : { leader: 'n1', ...sync } }) });
const qsummary = (a: Action[]) => a.map((x) => (x.kind === 'write_sync' ? `write ${x.acks ?? '-'} [${x.members.join(',')}]` : x.kind === 'set_sync_names' ? (x.names === null ? 'async' : `ANY ${x.count} [${x.names.join(',')}]`) : x.kind));
const plan = (o: Observation, cfg = quorum) => qsummary(planQuorum(o, cfg, o.cluster!));
const caughtUp = (names: string[], setting: string): Over => ({ syncSetting: setting, syncChangedAt: 500, replicas: names.map((name) => ({ name, flushLsn: 600 })) });

describe('planQuorum', () => {
  it('starts from the empty record and strengthens it once ANY k runs and k standbys caught up', () => {
    expect(plan(quorumLeader(null))).toEqual(['write 0 []', 'ANY 1 [n2,n3]']);
    expect(plan(quorumLeader(NO_GUARANTEE))).toEqual(['ANY 1 [n2,n3]']);
    expect(plan(quorumLeader(NO_GUARANTEE, { ...caughtUp(['n2'], 'ANY 1 ("n2", "n3")') }))).toEqual(['ANY 1 [n2,n3]', 'write 1 [n2,n3]']);
    // Not yet in effect, or nobody past the change: no strengthening.
    expect(plan(quorumLeader(NO_GUARANTEE, { ...caughtUp(['n2'], 'FIRST 1 ("n2")') }))).toEqual(['ANY 1 [n2,n3]']);
    expect(plan(quorumLeader(NO_GUARANTEE, { syncSetting: 'ANY 1 ("n2", "n3")', syncChangedAt: 700, replicas: [{ name: 'n2', flushLsn: 600 }] }))).toEqual(['ANY 1 [n2,n3]']);
    expect(plan(quorumLeader({ members: ['n2', 'n3'], acks: 1 }))).toEqual(['ANY 1 [n2,n3]']);
  });
  it('keeps the record while a listed standby leaves, then narrows it once the new setting is proved', () => {
    const members = [primary, member('n2'), member('n3', { state: 'stopped' })];
    expect(plan(quorumLeader({ members: ['n2', 'n3'], acks: 1 }, {}, members))).toEqual(['ANY 1 [n2]']);
    expect(plan(quorumLeader({ members: ['n2', 'n3'], acks: 1 }, caughtUp(['n2'], 'ANY 1 ("n2")'), members))).toEqual(['ANY 1 [n2]', 'write 1 [n2]']);
  });
  it('lowers k in the record before PostgreSQL waits for more, and raises it only after', () => {
    const two = dyn({ synchronous_mode: 'quorum', synchronous_node_count: 2 });
    const members = [primary, member('n2'), member('n3'), member('n4')];
    expect(plan(quorumLeader({ members: ['n2', 'n3'], acks: 2 }, {}, members, quorum))).toEqual(['write 1 [n2,n3,n4]', 'ANY 1 [n2,n3,n4]']);
    expect(plan(quorumLeader({ members: ['n2', 'n3', 'n4'], acks: 1 }, {}, members, two), two)).toEqual(['ANY 2 [n2,n3,n4]']);
    expect(plan(quorumLeader({ members: ['n2', 'n3', 'n4'], acks: 1 }, caughtUp(['n2', 'n4'], 'ANY 2 ("n2", "n3", "n4")'), members, two), two)).toEqual(['ANY 2 [n2,n3,n4]', 'write 2 [n2,n3,n4]']);
  });
  it('with nobody left: empties the record then goes asynchronous, or keeps it and blocks commits (strict)', () => {
    const alone = [primary];
    expect(plan(quorumLeader({ members: ['n2'], acks: 1 }, {}, alone))).toEqual(['write 0 []', 'async']);
    const strict = dyn({ synchronous_mode: 'quorum', synchronous_mode_strict: true });
    expect(plan(quorumLeader({ members: ['n2'], acks: 1 }, {}, alone, strict), strict)).toEqual(['ANY 1 []']);
  });
  it('never lists a nosync standby, and rewrites a record another leader left', () => {
    const members = [primary, member('n2', { tags: { ...defaultTags, nosync: true } }), member('n3')];
    expect(plan(quorumLeader(NO_GUARANTEE, {}, members))).toEqual(['ANY 1 [n3]']);
    const o = obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView({ config: quorum, sync: { leader: 'n9', members: ['n2'], acks: 1 } }) });
    expect(plan(o)).toEqual(['write 0 []', 'ANY 1 [n2,n3]']);
  });
  it('implies and meet', () => {
    expect(implies({ members: ['a', 'b', 'c'], acks: 2 }, { members: ['a', 'b'], acks: 1 })).toBe(true);
    expect(implies({ members: ['a', 'b', 'c'], acks: 1 }, { members: ['a', 'b'], acks: 1 })).toBe(false);
    expect(meet({ members: ['a', 'b'], acks: 2 }, { members: ['c'], acks: 1 })).toEqual({ members: ['a', 'b', 'c'], acks: 1 });
    expect(guaranteeOf({ leader: 'x', members: ['b', 'a'] })).toEqual({ members: ['a', 'b'], acks: 2 });
  });
});

// ---- Simulation: the record's guarantee holds after every step ----
const STANDBYS = ['n2', 'n3', 'n4', 'n5'];
type Setting = { names: string[] | null; count: number }; // names null: async; []: block
type Event =
  | { t: 'write' } // the leader writes (and flushes) one commit
  | { t: 'replicate'; who: string[] } // these standbys, if streaming, flush everything
  | { t: 'stream'; who: string[] } // exactly these standbys stream from the leader
  | { t: 'config'; count: number; strict: boolean }
  | { t: 'loop' }; // the leader runs planQuorum and performs its actions in order
const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { arbitrary: fc.constant<Event>({ t: 'write' }), weight: 4 },
  { arbitrary: fc.subarray(STANDBYS).map((who): Event => ({ t: 'replicate', who })), weight: 3 },
  { arbitrary: fc.subarray(STANDBYS).map((who): Event => ({ t: 'stream', who })), weight: 1 },
  { arbitrary: fc.record({ count: fc.integer({ min: 1, max: 4 }), strict: fc.boolean() }).map((c): Event => ({ t: 'config', ...c })), weight: 1 },
  { arbitrary: fc.constant<Event>({ t: 'loop' }), weight: 4 },
);

type Planner = typeof planQuorum;
function simulate(events: Event[], planner: Planner = planQuorum): { members: string[]; acks?: number } | null {
  let lsn = 0; // the leader's flushed WAL end; commit i sits at position i
  let acked = 0; // commits 1..acked are acknowledged (PostgreSQL releases waiters in order)
  const flush = new Map(STANDBYS.map((n) => [n, 0]));
  let streaming = new Set(STANDBYS);
  let cfg = quorum;
  let setting: Setting = { names: null, count: 0 };
  let changedAt: number | null = null;
  let record: { members: string[]; acks?: number } | null = null;
  const release = () => {
    // PostgreSQL acknowledges a commit once its setting is met (a waiting commit, after a reload, under the new one).
    for (let x = acked + 1; x <= lsn; x++) {
      const ok = setting.names === null || (setting.names.length > 0 && setting.names.filter((n) => (flush.get(n) ?? 0) >= x).length >= Math.min(setting.count, setting.names.length));
      if (!ok) break;
      acked = x;
    }
  };
  const check = (step: string) => {
    const g = guaranteeOf(record === null ? null : { leader: 'n1', ...record });
    const holders = g.members.filter((m) => (flush.get(m) ?? 0) >= acked).length;
    if (acked > 0 && holders < g.acks) throw new Error(`${step}: record ${JSON.stringify(record)} but commit ${acked} is on ${holders}`);
  };
  for (const e of events) {
    if (e.t === 'write') {
      lsn++;
    } else if (e.t === 'replicate') {
      for (const n of e.who) if (streaming.has(n)) flush.set(n, lsn);
    } else if (e.t === 'stream') {
      streaming = new Set(e.who);
    } else if (e.t === 'config') {
      cfg = dyn({ synchronous_mode: 'quorum', synchronous_node_count: e.count, synchronous_mode_strict: e.strict });
    } else {
      const members = [primary, ...STANDBYS.map((n) => member(n, { state: streaming.has(n) ? 'streaming' : 'running', lsn: flush.get(n) ?? 0 }))];
      const o = obs({
        self: { name: 'n1' },
        local: {
          role: 'primary', lsn, syncChangedAt: changedAt,
          syncSetting: syncStandbyNames(setting.names, setting.count, 'any'),
          replicas: STANDBYS.filter((n) => streaming.has(n)).map((name) => ({ name, flushLsn: flush.get(name) ?? 0 })),
        },
        cluster: clusterView({ config: cfg, members, sync: record === null ? null : { leader: 'n1', ...record } }),
      });
      for (const a of planner(o, cfg, o.cluster!)) {
        if (a.kind === 'write_sync') record = { members: a.members, ...(a.acks === undefined ? {} : { acks: a.acks }) };
        if (a.kind === 'set_sync_names') {
          const next = { names: a.names, count: a.count };
          if (syncStandbyNames(next.names, next.count, 'any') !== syncStandbyNames(setting.names, setting.count, 'any') || changedAt === null) changedAt = lsn;
          setting = next;
        }
        release();
        check(`after ${a.kind}`);
      }
    }
    release();
    check(e.t);
  }
  return record;
}

describe('quorum record (simulation)', () => {
  test.prop([fc.array(eventArb, { minLength: 1, maxLength: 80 })], { numRuns: 1500 })(
    'at every step, every acknowledged commit is on at least acks members of the record',
    (events) => { simulate(events); },
  );
  it('does strengthen: ANY 1 of four, once the setting runs and a standby caught up', () => {
    const loop: Event = { t: 'loop' };
    expect(simulate([{ t: 'write' }, loop, { t: 'write' }, { t: 'replicate', who: STANDBYS }, loop])).toEqual({ members: STANDBYS, acks: 1 });
    const three: Event = { t: 'config', count: 3, strict: false };
    expect(simulate([three, { t: 'write' }, loop, { t: 'replicate', who: ['n2', 'n3'] }, loop])).toEqual({ members: [], acks: 0 });
    expect(simulate([three, { t: 'write' }, loop, { t: 'replicate', who: ['n2', 'n3', 'n5'] }, loop])).toEqual({ members: STANDBYS, acks: 3 });
  });
  it('catches an optimistic order: the record set to the new setting before PostgreSQL runs it', () => {
    const eager: Planner = (o, cfg, c) => {
      const set = planQuorum(o, cfg, c).filter((a) => a.kind === 'set_sync_names');
      const names = set[0]?.kind === 'set_sync_names' ? set[0].names : null;
      const g = names === null || names.length === 0 ? NO_GUARANTEE : { members: names, acks: Math.min(cfg.synchronous_node_count, names.length) };
      return [{ kind: 'write_sync', members: g.members, acks: g.acks }, ...set];
    };
    expect(() => fc.assert(fc.property(fc.array(eventArb, { minLength: 1, maxLength: 80 }), (ev) => { simulate(ev, eager); }), { numRuns: 3000 })).toThrow(/Property failed/);
  });
});

// ---- Failover: a promoted member holds every acknowledged commit ----
describe('failover under quorum mode', () => {
  const free = (sync: { members: string[]; acks: number }, members: MemberInfo[], cfg = quorum) =>
    clusterView({ leader: null, config: cfg, sync: { leader: 'n1', ...sync }, lastLeaderLsn: null, members });
  const standby = (n: string, lsn: number, state: MemberInfo['state'] = 'running') => member(n, { lsn, state });
  it('ANY 1 of three: the most advanced of all three takes over; with one unseen, nobody', () => {
    const ms = [standby('n2', 900), standby('n3', 800), standby('n4', 700)];
    const sync = { members: ['n2', 'n3', 'n4'], acks: 1 };
    expect(decide(obs({ local: { lsn: 900, streaming: false }, cluster: free(sync, ms) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 800, streaming: false }, cluster: free(sync, ms) })).actions).toEqual([]);
    expect(decide(obs({ local: { lsn: 900, streaming: false }, cluster: free(sync, ms.slice(0, 2)) })).reason).toMatch(/quorum: 2 of the 3/);
  });
  it('ANY 2 of three: any two suffice, and a streaming (not final) position does not count', () => {
    const sync = { members: ['n2', 'n3', 'n4'], acks: 2 };
    expect(decide(obs({ local: { lsn: 900, streaming: false }, cluster: free(sync, [standby('n2', 900), standby('n3', 800)]) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
    expect(decide(obs({ local: { lsn: 900, streaming: false }, cluster: free(sync, [standby('n2', 900), standby('n3', 800, 'streaming')]) })).actions).toEqual([]);
  });
  it('a member outside the record never races; an empty record allows nobody in strict mode', () => {
    const ms = [standby('n2', 900), standby('n3', 9000)];
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free({ members: ['n2'], acks: 1 }, ms) })).actions).toEqual([]);
    const strict = dyn({ synchronous_mode: 'quorum', synchronous_mode_strict: true });
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free({ members: [], acks: 0 }, ms, strict) })).actions).toEqual([]);
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free({ members: [], acks: 0 }, ms) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
  });

  // S ⊆ n2..n5 with k; commit x acknowledged, so at least k members of S hold it (actual ≥ x).
  // A streaming member may have published a position below what it holds.
  const scenario = fc.record({
    s: fc.subarray(STANDBYS, { minLength: 1 }),
    k: fc.integer({ min: 1, max: 4 }),
    x: fc.integer({ min: 1, max: 1000 }),
    actual: fc.tuple(...STANDBYS.map(() => fc.integer({ min: 0, max: 1200 }))),
    holders: fc.subarray(STANDBYS),
    published: fc.tuple(...STANDBYS.map(() => fc.integer({ min: 0, max: 1200 }))),
    states: fc.tuple(...STANDBYS.map(() => fc.constantFrom<MemberInfo['state']>('running', 'running', 'streaming', 'stopped'))),
    visible: fc.subarray(STANDBYS),
    self: fc.constantFrom(...STANDBYS),
    strict: fc.boolean(),
  });
  test.prop([scenario], { numRuns: 4000 })('never promotes a member that could miss an acknowledged commit', (sc) => {
    const k = Math.min(sc.k, sc.s.length);
    const forced = sc.holders.filter((n) => sc.s.includes(n));
    const extra = sc.s.filter((n) => !forced.includes(n)).slice(0, Math.max(0, k - forced.length));
    const holds = new Set([...forced, ...extra]); // at least k members of S hold commit x
    const actual = new Map(STANDBYS.map((n, i) => [n, holds.has(n) ? Math.max(sc.x, sc.actual[i] ?? 0) : Math.min(sc.x - 1, sc.actual[i] ?? 0)]));
    const state = new Map(STANDBYS.map((n, i) => [n, sc.states[i] ?? 'running']));
    // A final (running) position is what the member holds; a streaming one may be behind; a stopped one anything.
    const pub = (n: string, i: number) => (state.get(n) === 'running' ? actual.get(n)! : Math.min(actual.get(n)!, sc.published[i] ?? 0));
    const members = STANDBYS.map((n, i) => member(n, { lsn: pub(n, i), state: state.get(n)! })).filter((m) => m.name === sc.self || sc.visible.includes(m.name));
    const cfg = dyn({ synchronous_mode: 'quorum', synchronous_mode_strict: sc.strict, maximum_lag_on_failover: 1 << 30 });
    const o = obs({ self: { name: sc.self }, local: { lsn: actual.get(sc.self)!, streaming: false }, cluster: free({ members: sc.s, acks: k }, members, cfg) });
    if (decide(o).actions.some((a) => a.kind === 'promote')) expect(actual.get(sc.self)!).toBeGreaterThanOrEqual(sc.x);
  });
});
