// The health checks' rules, one table row per rule: (snapshot, check, query) -> status.
// Pure functions only; the HTTP layer is covered by api.test.ts.
import { describe, expect, it } from 'vitest';
import {
  clusterBody, healthResponse, isStale, parseLag, parseQuery, statusBody, type Check,
} from '../../src/api/health.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import type { MemberInfo } from '../../src/ha/types.ts';
import { clusterView, defaultTags, dyn, agentSnapshot, member } from '../support/observations.ts';

const NOW = 100_000;
const STALE_AFTER = 3000;
const MB = 1024 ** 2;

const snap = (over: Partial<AgentSnapshot> = {}, m: Partial<MemberInfo> = {}): AgentSnapshot => agentSnapshot(NOW - 100, over, m);
const asPrimary = { role: 'primary', state: 'running', upstream: null } as const;
const syncCluster = (syncLeader = 'n1', mode: 'on' | 'off' | 'quorum' = 'on') =>
  clusterView({ config: dyn({ synchronous_mode: mode }), sync: { leader: syncLeader, members: ['n2'] } });
const quorumCluster = (syncLeader = 'n1', members = ['n2', 'n3']) =>
  clusterView({ config: dyn({ synchronous_mode: 'quorum' }), sync: { leader: syncLeader, members, acks: 1 } });

const S = {
  primary: snap({ isLeader: true, lagBytes: null }, asPrimary),
  primaryNoKey: snap({ isLeader: false, lagBytes: null }, asPrimary),
  leaderStarting: snap({ isLeader: true, lagBytes: null }, { ...asPrimary, state: 'starting' }),
  replica: snap(),
  archive: snap({}, { state: 'running' }), // a standby in recovery without a WAL receiver
  lagging: snap({ lagBytes: 50 * MB }),
  atOneKb: snap({ lagBytes: 1024 }),
  twoMb: snap({ lagBytes: 2 * MB }),
  unknownLag: snap({ lagBytes: null }),
  noLb: snap({}, { tags: { ...defaultTags, noloadbalance: true } }),
  stopped: snap({}, { state: 'stopped', role: 'unknown' }),
  starting: snap({}, { state: 'starting' }),
  rewinding: snap({}, { state: 'rewinding' }),
  stale: snap({ observedAt: NOW - STALE_AFTER - 1 }),
  staleStopped: snap({ observedAt: NOW - STALE_AFTER - 1 }, { state: 'stopped', role: 'unknown' }),
  edge: snap({ observedAt: NOW - STALE_AFTER }), // exactly staleAfterMs old: still fresh
  noEtcd: snap({ cluster: null, lagBytes: null }),
  sync: snap({ cluster: syncCluster() }),
  syncOff: snap({ cluster: syncCluster('n1', 'off') }),
  syncOldLeader: snap({ cluster: syncCluster('n3') }),
  laggingSync: snap({ cluster: syncCluster(), lagBytes: 50 * MB }),
  quorum: snap({ cluster: quorumCluster() }),
  notQuorum: snap({ cluster: quorumCluster('n1', ['n3']) }),
  quorumOldLeader: snap({ cluster: quorumCluster('n3') }),
  quorumModeOff: snap({ cluster: clusterView({ config: dyn({ synchronous_mode: 'on' }), sync: { leader: 'n1', members: ['n2', 'n3'], acks: 1 } }) }),
  laggingQuorum: snap({ cluster: quorumCluster(), lagBytes: 50 * MB }),
  quorumPrimary: snap({ isLeader: true, lagBytes: null, cluster: quorumCluster() }, asPrimary),
  maxLag4: snap({ lagBytes: 2 * MB, cluster: clusterView({ config: dyn({ maximum_lag_on_failover: 4 * MB }) }) }),
  none: null,
} satisfies Record<string, AgentSnapshot | null>;
type Name = keyof typeof S;

function status(name: Name, check: Check, query: Record<string, unknown> = {}): number {
  return healthResponse(check, { snapshot: S[name], now: NOW, staleAfterMs: STALE_AFTER, scope: 'demo', query }).status;
}

type Row = [rule: string, snapshot: Name, check: Check, query: Record<string, unknown>, want: 200 | 400 | 503];
const rows: Row[] = [
  // /primary (/, /leader, /master, /read-write): the key AND a running primary
  ['primary: leader running as primary', 'primary', 'primary', {}, 200],
  ['primary: a primary without the key', 'primaryNoKey', 'primary', {}, 503],
  ['primary: the key while PostgreSQL starts', 'leaderStarting', 'primary', {}, 503],
  ['primary: a standby', 'replica', 'primary', {}, 503],
  ['primary: tag filters are ignored', 'primary', 'primary', { tag_dc: 'east' }, 200],
  ['primary: a bad ?lag is refused even here', 'primary', 'primary', { lag: 'bad' }, 400],
  // /replica: a running standby, no noloadbalance, within ?lag and ?replication_state
  ['replica: streaming standby', 'replica', 'replica', {}, 200],
  ['replica: standby in archive recovery', 'archive', 'replica', {}, 200],
  ['replica: the primary', 'primary', 'replica', {}, 503],
  ['replica: noloadbalance', 'noLb', 'replica', {}, 503],
  ['replica: stopped', 'stopped', 'replica', {}, 503],
  ['replica: starting', 'starting', 'replica', {}, 503],
  ['replica: rewinding', 'rewinding', 'replica', {}, 503],
  ['replica: lag beyond ?lag', 'lagging', 'replica', { lag: '1MB' }, 503],
  ['replica: lag within ?lag', 'lagging', 'replica', { lag: '100MB' }, 200],
  ['replica: lag equal to ?lag', 'atOneKb', 'replica', { lag: '1kB' }, 200],
  ['replica: lag one byte over ?lag', 'atOneKb', 'replica', { lag: '1023' }, 503],
  ['replica: no ?lag, any lag', 'lagging', 'replica', {}, 200],
  ['replica: unknown lag fails ?lag', 'unknownLag', 'replica', { lag: '1GB' }, 503],
  ['replica: unknown lag without ?lag', 'unknownLag', 'replica', {}, 200],
  ['replica: ?replication_state=streaming, streaming', 'replica', 'replica', { replication_state: 'streaming' }, 200],
  ['replica: ?replication_state=streaming, archive', 'archive', 'replica', { replication_state: 'streaming' }, 503],
  ['replica: ?replication_state=in archive recovery, archive', 'archive', 'replica', { replication_state: 'in archive recovery' }, 200],
  ['replica: ?replication_state=in archive recovery, streaming', 'replica', 'replica', { replication_state: 'in archive recovery' }, 503],
  ['replica: ?replication_state unknown value', 'replica', 'replica', { replication_state: 'catchup' }, 400],
  ['replica: ?tag_ matching (boolean as text)', 'replica', 'replica', { tag_nofailover: 'false' }, 200],
  ['replica: ?tag_ matching (number as text)', 'replica', 'replica', { tag_failover_priority: '1' }, 200],
  ['replica: ?tag_ different value', 'replica', 'replica', { tag_nofailover: 'true' }, 503],
  ['replica: ?tag_ the member lacks', 'replica', 'replica', { tag_dc: 'east' }, 503],
  ['replica: unknown parameters are ignored', 'replica', 'replica', { foo: 'bar' }, 200],
  ['replica: a repeated parameter', 'replica', 'replica', { lag: ['1MB', '2MB'] }, 400],
  ['replica: etcd never read', 'noEtcd', 'replica', {}, 200],
  // /read-only: the primary or a replica
  ['read-only: leader primary', 'primary', 'read-only', {}, 200],
  ['read-only: leader primary ignores ?lag', 'primary', 'read-only', { lag: '0' }, 200],
  ['read-only: replica', 'replica', 'read-only', {}, 200],
  ['read-only: primary without the key', 'primaryNoKey', 'read-only', {}, 503],
  ['read-only: noloadbalance standby', 'noLb', 'read-only', {}, 503],
  ['read-only: lagging replica with ?lag', 'lagging', 'read-only', { lag: '1MB' }, 503],
  ['read-only: tags apply to the primary too (Patroni)', 'primary', 'read-only', { tag_dc: 'east' }, 503],
  // /health: PostgreSQL running, any role
  ['health: primary', 'primary', 'health', {}, 200],
  ['health: primary without the key', 'primaryNoKey', 'health', {}, 200],
  ['health: replica', 'replica', 'health', {}, 200],
  ['health: archive standby', 'archive', 'health', {}, 200],
  ['health: noloadbalance standby', 'noLb', 'health', {}, 200],
  ['health: stopped', 'stopped', 'health', {}, 503],
  ['health: starting', 'starting', 'health', {}, 503],
  // /liveness: the loop is alive (snapshot age <= staleAfterMs), whatever PostgreSQL does
  ['liveness: fresh, PostgreSQL stopped', 'stopped', 'liveness', {}, 200],
  ['liveness: exactly staleAfterMs old', 'edge', 'liveness', {}, 200],
  ['liveness: older than staleAfterMs', 'staleStopped', 'liveness', {}, 503],
  ['liveness: before the first loop', 'none', 'liveness', {}, 503],
  // /readiness: leader primary, or streaming standby within ?lag or maximum_lag_on_failover
  ['readiness: leader primary', 'primary', 'readiness', {}, 200],
  ['readiness: primary without the key', 'primaryNoKey', 'readiness', {}, 503],
  ['readiness: streaming, no lag', 'replica', 'readiness', {}, 200],
  ['readiness: beyond maximum_lag_on_failover (1 MiB)', 'twoMb', 'readiness', {}, 503],
  ['readiness: within maximum_lag_on_failover from etcd (4 MiB)', 'maxLag4', 'readiness', {}, 200],
  ['readiness: ?lag overrides maximum_lag_on_failover', 'lagging', 'readiness', { lag: '100MB' }, 200],
  ['readiness: archive recovery is not ready', 'archive', 'readiness', {}, 503],
  ['readiness: unknown lag', 'unknownLag', 'readiness', {}, 503],
  ['readiness: etcd never read', 'noEtcd', 'readiness', {}, 503],
  ['readiness: noloadbalance does not matter', 'noLb', 'readiness', {}, 200],
  ['readiness: ?mode=write accepted', 'replica', 'readiness', { mode: 'write' }, 200],
  ['readiness: ?mode unknown value', 'replica', 'readiness', { mode: 'replay' }, 400],
  // /sync, /async, /read-only-sync
  ['sync: in the leader\'s /sync record', 'sync', 'sync', {}, 200],
  ['sync: async standby', 'replica', 'sync', {}, 503],
  ['sync: record kept while synchronous_mode is off', 'syncOff', 'sync', {}, 503],
  ['sync: record written by another leader', 'syncOldLeader', 'sync', {}, 503],
  ['sync: ?lag applies', 'laggingSync', 'sync', { lag: '1MB' }, 503],
  ['async: async standby', 'replica', 'async', {}, 200],
  ['async: sync standby', 'sync', 'async', {}, 503],
  ['async: ?lag applies', 'lagging', 'async', { lag: '1MB' }, 503],
  ['read-only-sync: leader primary', 'primary', 'read-only-sync', {}, 200],
  ['read-only-sync: sync standby', 'sync', 'read-only-sync', {}, 200],
  ['read-only-sync: async standby', 'replica', 'read-only-sync', {}, 503],
  ['sync: a quorum standby is not a sync standby (Patroni 4)', 'quorum', 'sync', {}, 503],
  ['read-only-sync: a quorum standby is not a sync standby', 'quorum', 'read-only-sync', {}, 503],
  ['async: a quorum standby is not asynchronous', 'quorum', 'async', {}, 503],
  ['async: a standby outside the quorum record', 'notQuorum', 'async', {}, 200],
  // /quorum, /read-only-quorum
  ['quorum: in the leader\'s quorum record', 'quorum', 'quorum', {}, 200],
  ['quorum: not in the record', 'notQuorum', 'quorum', {}, 503],
  ['quorum: record written by another leader', 'quorumOldLeader', 'quorum', {}, 503],
  ['quorum: synchronous_mode is not quorum', 'quorumModeOff', 'quorum', {}, 503],
  ['sync: a record left by quorum mode names no sync standby', 'quorumModeOff', 'sync', {}, 503],
  ['quorum: a sync standby (on mode) is not a quorum standby', 'sync', 'quorum', {}, 503],
  ['quorum: ?lag applies', 'laggingQuorum', 'quorum', { lag: '1MB' }, 503],
  ['quorum: the primary is not a quorum standby', 'quorumPrimary', 'quorum', {}, 503],
  ['read-only-quorum: leader primary', 'quorumPrimary', 'read-only-quorum', {}, 200],
  ['read-only-quorum: leader primary, synchronous_mode off', 'primary', 'read-only-quorum', {}, 200],
  ['read-only-quorum: quorum standby', 'quorum', 'read-only-quorum', {}, 200],
  ['read-only-quorum: standby outside the record', 'notQuorum', 'read-only-quorum', {}, 503],
];

const checks: Check[] = ['primary', 'replica', 'read-only', 'health', 'liveness', 'readiness', 'sync', 'async', 'read-only-sync', 'quorum', 'read-only-quorum'];

describe('health checks', () => {
  it.each(rows)('%s', (_rule, name, check, query, want) => {
    expect(status(name, check, query)).toBe(want);
  });

  // Fail closed: whatever the member looks like, no snapshot or a stale one is a 503.
  it.each(checks)('%s answers 503 without a snapshot and with a stale one', (check) => {
    expect(status('none', check)).toBe(503);
    expect(status('stale', check)).toBe(503);
  });

  it('a stale leader is no longer primary', () => {
    const old = { ...S.primary, observedAt: NOW - STALE_AFTER - 1 };
    expect(healthResponse('primary', { snapshot: old, now: NOW, staleAfterMs: STALE_AFTER, scope: 'demo' }).status).toBe(503);
  });

  it('answers the /status JSON as body, stale or not', () => {
    const r = healthResponse('replica', { snapshot: S.stale, now: NOW, staleAfterMs: STALE_AFTER, scope: 'demo' });
    expect(r).toEqual({ status: 503, body: statusBody(S.stale, NOW, STALE_AFTER, 'demo') });
    expect(r.body).toMatchObject({ name: 'n2', stale: true, age_ms: STALE_AFTER + 1 });
  });
});

describe('?lag= sizes', () => {
  it.each([
    ['1048576', 1048576], ['0', 0], ['10MB', 10 * MB], ['1kB', 1024], ['1KB', 1024], ['1kb', 1024],
    ['10mb', 10 * MB], ['2 GB', 2 * 1024 ** 3], ['1TB', 1024 ** 4], ['512B', 512], ['1.5MB', 1.5 * MB], [' 64MB ', 64 * MB],
    ['bad', null], ['', null], ['10XB', null], ['MB', null], ['-1', null], ['1e3', null], ['0x10', null],
    ['1 2MB', null], ['99999999999999TB', null],
  ])('parseLag(%j) = %j', (text, want) => {
    expect(parseLag(text)).toBe(want);
  });

  it.each(['bad', 'xyz', '10XB', '-5MB'])('?lag=%s answers 400 with the reason', (lag) => {
    const r = healthResponse('replica', { snapshot: S.replica, now: NOW, staleAfterMs: STALE_AFTER, scope: 'demo', query: { lag } });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: 'PGHA_API_BAD_REQUEST', message: expect.stringContaining(`lag: "${lag}"`) });
  });

  it('parses the whole query: criteria, tags in order, unknown keys ignored', () => {
    expect(parseQuery({ lag: '1kB', replication_state: 'streaming', tag_a: 'x', other: '1', tag_b: 'y', mode: 'apply' }))
      .toEqual({ ok: true, criteria: { maxLag: 1024, replicationState: 'streaming', tags: [['a', 'x'], ['b', 'y']] } });
    expect(parseQuery({ tag_dc: ['a', 'b'] })).toEqual({ ok: false, message: 'tag_dc: expected one value' });
  });
});

describe('GET /status body', () => {
  const body = (s: AgentSnapshot | null) => statusBody(s, NOW, STALE_AFTER, 'demo');

  it('describes a leader primary', () => {
    expect(body(S.primary)).toEqual({
      name: 'n2', scope: 'demo', role: 'primary', state: 'running', leader: 'n1', timeline: 1, xlog: { location: 1000 },
      replication_state: null, lag: null, upstream: null, tags: defaultTags, pending_restart: false, sync_standby: false,
      quorum_standby: false, pause: false, cluster_unlocked: false, database_system_identifier: '7300000000000000001', last_plan: 'following n1',
      age_ms: 100, stale: false, patroni: { version: '0.1.0', scope: 'demo', name: 'n2' },
    });
  });

  it.each([
    ['replica', { role: 'replica', replication_state: 'streaming', lag: 0, upstream: 'n1' }],
    ['archive', { role: 'replica', replication_state: 'in archive recovery' }],
    ['stopped', { role: 'unknown', state: 'stopped', replication_state: null }],
    ['sync', { sync_standby: true, quorum_standby: false }],
    ['quorum', { sync_standby: false, quorum_standby: true }],
    ['stale', { stale: true, age_ms: STALE_AFTER + 1 }],
    ['noEtcd', { leader: null, cluster_unlocked: false, lag: null }],
  ] as Array<[Name, Record<string, unknown>]>)('%s', (name, want) => {
    expect(body(S[name])).toMatchObject(want);
  });

  // A Patroni leader reads GET /patroni in a mixed cluster (ha.py _MemberStatus.from_api_response):
  // an `xlog.location` means "not in recovery", so a standby must give received/replayed instead.
  it('gives WAL positions in Patroni\'s shape', () => {
    expect(body(S.replica).xlog).toEqual({ received_location: 1000, replayed_location: 1000 });
    expect(body(S.primary).xlog).toEqual({ location: 1000 });
    expect(body(S.stopped)).not.toHaveProperty('xlog');
  });

  it('reports an unlocked cluster and maintenance mode', () => {
    expect(body(snap({ paused: true, cluster: clusterView({ leader: null }) }))).toMatchObject({ cluster_unlocked: true, pause: true, leader: null });
  });

  it('says little, and stale, before the first loop', () => {
    expect(body(null)).toMatchObject({ name: null, scope: 'demo', role: 'unknown', state: 'unknown', stale: true, age_ms: null });
  });
});

describe('GET /cluster body', () => {
  const roles = (s: AgentSnapshot) => clusterBody(s, NOW, STALE_AFTER, 'demo').members.map((m) => `${m.name}:${m.role}`);

  it('names the leader, replicas, synchronous standbys, primaries without the key and unknowns', () => {
    expect(roles(S.replica)).toEqual(['n1:leader', 'n2:replica', 'n3:replica']);
    expect(roles(S.sync)).toEqual(['n1:leader', 'n2:sync_standby', 'n3:replica']);
    expect(roles(S.notQuorum)).toEqual(['n1:leader', 'n2:replica', 'n3:quorum_standby']);
    const split = clusterView({ members: [member('n1', asPrimary), member('n2', asPrimary), member('n3', { role: 'unknown', state: 'stopped' })] });
    expect(roles(snap({ cluster: split }))).toEqual(['n1:leader', 'n2:primary', 'n3:unknown']);
  });

  it('gives host, port, api_url and lag against the furthest known leader position', () => {
    const c = clusterView({
      lastLeaderLsn: 5000,
      members: [member('n1', { ...asPrimary, lsn: 9000 }), member('n2', { lsn: 4000, conn: 'db2.example:5433' }), member('n3', { lsn: null })],
    });
    const b = clusterBody(snap({ cluster: c }), NOW, STALE_AFTER, 'demo');
    expect(b.members[1]).toMatchObject({ host: 'db2.example', port: 5433, api_url: 'http://127.0.0.1:80/n2', lag: 5000 });
    expect(b.members.map((m) => m.lag)).toEqual([null, 5000, null]);
    expect(b).toMatchObject({ scope: 'demo', leader: 'n1', pause: false, stale: false, age_ms: 100 });
  });

  it.each([
    ['scheduled switchover', { kind: 'switchover', scheduledAt: Date.UTC(2030, 0, 2, 3, 4) }, { at: '2030-01-02T03:04:00.000Z', from: 'n1', to: 'n3' }],
    ['immediate switchover', { kind: 'switchover', scheduledAt: null }, null],
    ['failover', { kind: 'failover', scheduledAt: null }, null],
  ] as const)('scheduled_switchover: %s', (_, f, want) => {
    const failover = { leader: 'n1', candidate: 'n3', requestedAt: 0, shutdownLsn: null, ...f };
    expect(clusterBody(snap({ cluster: clusterView({ failover }) }), NOW, STALE_AFTER, 'demo').scheduled_switchover).toEqual(want);
  });

  it('is empty before etcd was read, and flags a stale view', () => {
    expect(clusterBody(null, NOW, STALE_AFTER, 'demo')).toEqual({ scope: 'demo', leader: null, pause: null, members: [], scheduled_switchover: null, age_ms: null, stale: true });
    expect(clusterBody(S.stale, NOW, STALE_AFTER, 'demo')).toMatchObject({ stale: true, members: expect.any(Array) });
  });
});

it('isStale: null, fresh, boundary, old', () => {
  expect([null, S.replica, S.edge, S.stale].map((s) => isStale(s, NOW, STALE_AFTER))).toEqual([true, false, false, true]);
});
