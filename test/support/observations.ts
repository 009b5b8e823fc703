// Builders for HA observations, used by the table tests and the fast-check properties.
import { fc } from '@fast-check/vitest';
import { dynamicConfigSchema, type DynamicConfig, type Tags } from '../../src/config/schema.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import { initialMemory, type Memory } from '../../src/ha/memory.ts';
import type { ClusterView, FailoverRequest, LocalPostgres, MemberInfo, Observation } from '../../src/ha/types.ts';
import { absentRevisions } from '../../src/ha/view.ts';

export const SYSID = '7300000000000000001';
/** Wall-clock time of the generated observations (epoch ms). */
export const WALL = 1_800_000_000_000;
export const defaultTags: Tags = { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, nostream: false, failover_priority: 1 };
export const dyn = (over: Partial<DynamicConfig> = {}): DynamicConfig => ({ ...dynamicConfigSchema.parse({}), ...over });

export function localPg(over: Partial<LocalPostgres> = {}): LocalPostgres {
  return {
    dataDir: 'initialized', systemId: SYSID, controlState: 'standby', running: true, accepting: true,
    role: 'standby', timeline: 1, lsn: 1000, streaming: true, upstream: 'n1', pendingRestart: false, syncStandbys: [],
    syncSetting: '', replicas: [], syncChangedAt: null, ...over,
  };
}

export function member(name: string, over: Partial<MemberInfo> = {}): MemberInfo {
  return {
    name, role: 'standby', state: 'streaming', timeline: 1, lsn: 1000, apiUrl: `http://127.0.0.1:80/${name}`,
    conn: '127.0.0.1:5432', tags: defaultTags, upstream: 'n1', pendingRestart: false, ...over,
  };
}

/** The REST API's view of standby n2 following n1, observed at `observedAt` (monotonic ms). */
export function agentSnapshot(observedAt: number, over: Partial<AgentSnapshot> = {}, m: Partial<MemberInfo> = {}): AgentSnapshot {
  return {
    member: member('n2', m), isLeader: false, cluster: clusterView(), paused: false, lagBytes: 0,
    observedAt, lastPlan: 'following n1', systemId: SYSID, version: '0.1.0', ...over,
  };
}

export function clusterView(over: Partial<ClusterView> = {}): ClusterView {
  return {
    leader: { name: 'n1', revision: '10', lease: '1' },
    members: [member('n1', { role: 'primary', state: 'running', upstream: null }), member('n2'), member('n3')],
    initialize: SYSID, config: dyn(), lastLeaderLsn: 1000, failover: null, sync: null, revisions: absentRevisions(), ...over,
  };
}

export function obs(over: { self?: Partial<Observation['self']>; memory?: Partial<Memory>; local?: Partial<LocalPostgres>; cluster?: ClusterView | null; now?: number; wallNow?: number } = {}): Observation {
  return {
    now: over.now ?? 10_000,
    wallNow: over.wallNow ?? WALL,
    memory: { ...initialMemory, ...over.memory },
    // Started long ago: the wait after a start (failsafe_mode) is over unless a case sets it.
    self: { name: 'n2', tags: defaultTags, leaseDeadline: 12_000, startedAt: -3_600_000, ...over.self },
    local: localPg(over.local),
    cluster: over.cluster === undefined ? clusterView() : over.cluster,
    fallbackConfig: dyn(),
  };
}

// ---- arbitraries ----
const names = ['n1', 'n2', 'n3'] as const;
const tagsArb: fc.Arbitrary<Tags> = fc.record({
  nofailover: fc.boolean(), noloadbalance: fc.boolean(), clonefrom: fc.boolean(), nosync: fc.boolean(), nostream: fc.constant(false),
  failover_priority: fc.integer({ min: 0, max: 3 }),
});
const lsnArb = fc.integer({ min: 0, max: 5_000_000 });
const memberArb = (name: string): fc.Arbitrary<MemberInfo> =>
  fc.record({
    name: fc.constant(name),
    role: fc.constantFrom('primary', 'standby', 'unknown'),
    state: fc.constantFrom('running', 'streaming', 'starting', 'stopped', 'crashed', 'rewinding', 'cloning', 'fenced'),
    timeline: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
    lsn: fc.option(lsnArb, { nil: null }),
    apiUrl: fc.constant(`http://x/${name}`), conn: fc.constant('h:1'), tags: tagsArb,
    upstream: fc.option(fc.constantFrom(...names), { nil: null }), pendingRestart: fc.boolean(),
  });

export const localArb: fc.Arbitrary<LocalPostgres> = fc.record({
  dataDir: fc.constantFrom('empty', 'initialized', 'initialized'),
  systemId: fc.constantFrom(SYSID, SYSID, SYSID, '999'),
  controlState: fc.constantFrom('primary-clean', 'primary-crashed', 'standby', 'unknown'),
  running: fc.boolean(), accepting: fc.boolean(),
  role: fc.constantFrom('primary', 'standby', null),
  timeline: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
  lsn: fc.option(lsnArb, { nil: null }),
  streaming: fc.boolean(),
  upstream: fc.option(fc.constantFrom(...names), { nil: null }),
  pendingRestart: fc.boolean(),
  syncStandbys: fc.subarray([...names]),
  syncSetting: fc.constant(''),
  replicas: fc.constant([]),
  syncChangedAt: fc.constant(null),
});

export const dynArb: fc.Arbitrary<DynamicConfig> = fc.record({
  pause: fc.boolean(),
  sync: fc.constantFrom('off', 'off', 'on', 'quorum'),
  strict: fc.boolean(),
  maximum_lag_on_failover: fc.constantFrom(0, 1000, 1048576),
  use_pg_rewind: fc.boolean(), use_slots: fc.boolean(), failsafe_mode: fc.boolean(),
}).map((r) => dyn({ pause: r.pause, failsafe_mode: r.failsafe_mode, synchronous_mode: r.sync as 'off' | 'on' | 'quorum', synchronous_mode_strict: r.strict, maximum_lag_on_failover: r.maximum_lag_on_failover, postgresql: { use_pg_rewind: r.use_pg_rewind, use_slots: r.use_slots, parameters: {} } }));

export const clusterArb: fc.Arbitrary<ClusterView> = fc.record({
  leader: fc.option(fc.record({ name: fc.constantFrom(...names), revision: fc.constant('5'), lease: fc.constant('7') }), { nil: null }),
  members: fc.tuple(memberArb('n1'), memberArb('n2'), memberArb('n3')).chain((ms) => fc.subarray(ms)),
  initialize: fc.constantFrom(SYSID, SYSID, SYSID, null, '', 'claim:n3'),
  config: dynArb,
  lastLeaderLsn: fc.option(lsnArb, { nil: null }),
  revisions: fc.constant(null).map(() => absentRevisions()),
  failover: fc.option(fc.record({
    kind: fc.constantFrom('switchover', 'failover'),
    leader: fc.option(fc.constantFrom(...names), { nil: null }),
    candidate: fc.option(fc.constantFrom(...names), { nil: null }),
    scheduledAt: fc.option(fc.integer({ min: WALL - 60_000, max: WALL + 60_000 }), { nil: null }),
    requestedAt: fc.integer({ min: WALL - 60_000, max: WALL }),
    shutdownLsn: fc.option(lsnArb, { nil: null }),
  }), { nil: null, freq: 3 }),
  sync: fc.option(fc.record({
    leader: fc.constantFrom(...names), members: fc.subarray([...names]), acks: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
  }), { nil: null }),
  failsafe: fc.option(fc.record({
    leader: fc.constantFrom(...names),
    members: fc.subarray([...names]).map((ns) => Object.fromEntries(ns.map((n) => [n, `http://x/${n}`]))),
  }), { nil: null }),
});

export const memoryArb: fc.Arbitrary<Memory> = fc.record({
  startFailures: fc.integer({ min: 0, max: 5 }),
  rewindsWithoutStreaming: fc.integer({ min: 0, max: 4 }),
  rewindUnusable: fc.boolean(),
  notStreamingSince: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: null }),
  streamedTimeline: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
  slotsSeen: fc.dictionary(fc.constantFrom('n1', 'n2', 'n3', 'gone'), fc.integer({ min: 0, max: 100_000 })),
  syncChangedAt: fc.option(lsnArb, { nil: null }),
  published: fc.option(fc.record({ lsn: lsnArb, slots: fc.constant('null') }), { nil: null }),
  vetoedUntil: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: null }),
  askMembersFirst: fc.boolean(),
  failsafeWrites: fc.array(fc.record({
    record: fc.record({ leader: fc.constantFrom(...names), members: fc.subarray([...names]).map((ns) => Object.fromEntries(ns.map((n) => [n, `http://x/${n}`]))) }),
    expected: fc.constantFrom('0', '5', '102'),
  }), { maxLength: 2 }),
});

// How long the agent has been up: a quarter of the observations come from an agent that started
// less than 4 s ago (the ttl of dynArb is 2 s), the rest from one up for an hour.
const uptimeArb = fc.oneof(fc.integer({ min: 0, max: 4000 }), fc.constant(3_600_000), fc.constant(3_600_000));

export const observationArb: fc.Arbitrary<Observation> = fc.tuple(fc.record({
  now: fc.integer({ min: 0, max: 100_000 }),
  memory: memoryArb,
  wallNow: fc.constant(WALL),
  self: fc.record({
    name: fc.constantFrom(...names), tags: tagsArb,
    leaseDeadline: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: null }),
    failsafeHold: fc.option(fc.record({ leader: fc.constantFrom(...names), until: fc.integer({ min: 0, max: 100_000 }) }), { nil: null }),
  }),
  local: localArb,
  cluster: fc.option(clusterArb, { nil: null, freq: 8 }),
  fallbackConfig: dynArb,
  failsafe: fc.option(fc.record({
    sentAt: fc.integer({ min: 0, max: 100_000 }),
    asked: fc.subarray([...names]),
    confirmed: fc.subarray([...names]),
  }), { nil: null }),
}), uptimeArb).map(([o, up]) => ({ ...o, self: { ...o.self, startedAt: o.now - up } }));

export function request(over: Partial<FailoverRequest> = {}): FailoverRequest {
  return { kind: 'switchover', leader: 'n1', candidate: null, scheduledAt: null, requestedAt: WALL - 1000, shutdownLsn: null, ...over };
}
