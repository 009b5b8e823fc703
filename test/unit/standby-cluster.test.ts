// Standby clusters (standby_cluster): the pure rules (src/ha/standby.ts via decide()), the
// properties (never a writable member, never a promotion), the schema, the rendered
// primary_conninfo towards the source, the health checks, and the Patroni /config round trip.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decide, REWIND_AFTER_MS } from '../../src/ha/decide.ts';
import { SOURCE_UPSTREAM } from '../../src/ha/standby.ts';
import { dynamicConfigSchema, sourceHosts, standbyClusterSchema, type StandbyClusterConfig } from '../../src/config/schema.ts';
import type { Action, Observation, SourceState } from '../../src/ha/types.ts';
import { renderPghaConf } from '../../src/postgres/conf.ts';
import { parseSourceState, upstreamTarget } from '../../src/postgres/source.ts';
import { checkStatus, clusterBody, statusBody } from '../../src/api/health.ts';
import { fromPatroniConfig, toPatroniConfig } from '../../src/dcs/patroni-config.ts';
import { SYSID, agentSnapshot, clusterView, dyn, member, obs, observationArb } from '../support/observations.ts';

const SC: StandbyClusterConfig = standbyClusterSchema.parse({ host: '10.1.0.1,10.1.0.2', port: '5432,5433' });
const scDyn = (over = {}) => dyn({ standby_cluster: SC, ...over });
const src = (over: Partial<SourceState> = {}): SourceState => ({ reachable: true, error: null, systemId: SYSID, timeline: 1, lsn: 5000, writable: true, ...over });
const kinds = (o: Observation) => decide(o).actions.map((a) => a.kind === 'start' ? `start:${a.as}:${a.upstream}` : a.kind === 'follow' || a.kind === 'rewind' || a.kind === 'reclone' ? `${a.kind}:${'upstream' in a ? a.upstream : a.from}` : a.kind);
/** n2 is the observer; `leader`: who holds the key. */
const o = (x: { leader?: string | null; local?: Partial<Observation['local']>; source?: SourceState | null; cfg?: ReturnType<typeof dyn>; initialize?: string | null; memory?: Partial<Observation['memory']>; now?: number }) => ({
  ...obs({
    local: x.local ?? {}, memory: x.memory ?? {}, now: x.now ?? 10_000,
    cluster: clusterView({
      leader: x.leader === null ? null : { name: x.leader ?? 'n2', revision: '1', lease: '1' },
      members: [member('n1', { role: 'standby', state: 'streaming', upstream: 'n2', conn: '127.0.0.1:6001' }), member('n2', { role: 'standby', upstream: SOURCE_UPSTREAM, conn: '127.0.0.1:6002' })],
      config: x.cfg ?? scDyn(), initialize: x.initialize === undefined ? SYSID : x.initialize,
    }),
  }),
  source: x.source === undefined ? src() : x.source,
});

describe('decide: standby cluster rows (rule S)', () => {
  const standby = { running: true, accepting: true, role: 'standby' as const, upstream: SOURCE_UPSTREAM, streaming: true };
  it.each<[string, Parameters<typeof o>[0], string[]]>([
    ['standby leader streaming from the source: renews, publishes, keeps slots; never promotes', { local: standby }, ['renew', 'publish_leader_lsn', 'ensure_slots']],
    ['standby leader following a member: points at the source', { local: { ...standby, upstream: 'n1' } }, ['renew', 'follow:@source', 'publish_leader_lsn', 'ensure_slots']],
    ['key holder running as primary (demote-cluster): rewinds from the source, starts as its standby', { local: { running: true, accepting: true, role: 'primary' } }, ['renew', 'rewind:@source', 'start:standby:@source']],
    ['key holder running as primary, source unreachable: stops writes, rewinds nothing', { local: { running: true, accepting: true, role: 'primary' }, source: src({ reachable: false, systemId: null, error: 'timeout' }) }, ['renew', 'fence']],
    ['key holder down, standby data: starts as a standby of the source', { local: { running: false, controlState: 'standby' } }, ['renew', 'start:standby:@source']],
    ['key holder down, former primary: rewinds from the source', { local: { running: false, controlState: 'primary-clean' } }, ['renew', 'rewind:@source', 'start:standby:@source']],
    ['key free, best standby: takes the key and follows the source instead of promoting', { leader: null, local: { ...standby, upstream: 'n9', lsn: 5000, timeline: 1 } }, ['acquire', 'follow:@source']],
    ['key free, running primary in a standby cluster: fenced, never takes the key', { leader: null, local: { running: true, accepting: true, role: 'primary' } }, ['fence']],
    ['follower of the standby leader: as usual', { leader: 'n1', local: { ...standby, upstream: 'n1' } }, []],
    ['empty, not initialised, source reachable: bootstraps from the source', { initialize: null, local: { dataDir: 'empty', systemId: null } }, ['bootstrap_standby']],
    ['empty, not initialised, source unreachable: waits', { initialize: null, local: { dataDir: 'empty', systemId: null }, source: src({ reachable: false, systemId: null }) }, []],
    ['source holds another system: the standby leader follows nothing, wipes nothing', { local: { ...standby, upstream: 'n1' }, source: src({ systemId: '42' }) }, ['renew']],
    ['source with another system and a former primary: no rewind, no reclone', { local: { running: false, controlState: 'primary-clean' }, source: src({ systemId: '42' }), memory: { rewindUnusable: true } }, ['renew']],
    ['source is one of our members: refused', { local: standby, cfg: scDyn({ standby_cluster: standbyClusterSchema.parse({ host: '127.0.0.1', port: 6001 }) }) }, ['renew']],
  ])('%s', (_name, x, want) => {
    expect(kinds(o(x))).toEqual(want);
  });

  it('rewinds the standby leader when the source moved to a newer timeline and it stopped streaming', () => {
    const x = o({ local: { running: true, accepting: true, role: 'standby', upstream: SOURCE_UPSTREAM, streaming: false, timeline: 1 }, source: src({ timeline: 2 }), memory: { notStreamingSince: 0 }, now: REWIND_AFTER_MS + 1 });
    expect(kinds(x)).toEqual(['renew', 'rewind:@source', 'start:standby:@source']);
  });

  it('says why in the plan reason (logged, and in GET /status last_plan)', () => {
    expect(decide(o({ local: { running: true, accepting: true, role: 'standby', upstream: SOURCE_UPSTREAM }, source: src({ systemId: '42' }) })).reason).toMatch(/system identifier 42.*PGHA_STANDBY_SOURCE_INVALID/);
    expect(decide(o({ local: { running: true, accepting: true, role: 'standby', upstream: SOURCE_UPSTREAM }, cfg: scDyn({ standby_cluster: standbyClusterSchema.parse({ host: '127.0.0.1', port: 6002 }) }) })).reason).toMatch(/member n2 of this cluster/);
  });

  it('without standby_cluster the standby leader promotes (promote-cluster)', () => {
    expect(kinds(o({ cfg: dyn(), local: { running: true, accepting: true, role: 'standby', upstream: SOURCE_UPSTREAM, streaming: true } }))).toEqual(['renew', 'promote']);
  });
});

// Every generated observation, with standby_cluster set in etcd's and the fallback config.
const standbyObsArb = fc.tuple(observationArb, fc.option(fc.record({
  reachable: fc.boolean(), error: fc.constant(null), systemId: fc.constantFrom(SYSID, SYSID, '42', null),
  timeline: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }), lsn: fc.option(fc.integer({ min: 0, max: 5_000_000 }), { nil: null }), writable: fc.boolean(),
}), { nil: null }), fc.boolean()).map(([x, source, fromSource]): Observation => ({
  ...x, source,
  local: fromSource ? { ...x.local, upstream: SOURCE_UPSTREAM } : x.local,
  cluster: x.cluster === null ? null : { ...x.cluster, config: { ...x.cluster.config, standby_cluster: SC } },
  fallbackConfig: { ...x.fallbackConfig, standby_cluster: SC },
}));
const has = (a: Action[], k: Action['kind']) => a.some((x) => x.kind === k);

describe('decide: standby cluster (properties)', () => {
  test.prop([standbyObsArb], { numRuns: 3000 })('never promotes, never starts as primary, never runs initdb', (x) => {
    const { actions } = decide(x);
    expect(has(actions, 'promote')).toBe(false);
    expect(has(actions, 'bootstrap')).toBe(false);
    expect(actions.some((a) => a.kind === 'start' && a.as === 'primary')).toBe(false);
  });

  // A running primary of the cluster's own data, in a standby cluster that is not paused.
  const primaryArb = standbyObsArb.map((x): Observation => ({
    ...x, local: { ...x.local, running: true, accepting: true, role: 'primary', dataDir: 'initialized', systemId: SYSID },
    cluster: x.cluster === null ? null : { ...x.cluster, initialize: SYSID, config: { ...x.cluster.config, pause: false } },
    fallbackConfig: { ...x.fallbackConfig, pause: false },
  }));
  test.prop([primaryArb], { numRuns: 3000 })('a running primary is stopped (fenced or rewound), unless paused', (x) => {
    const { actions } = decide(x);
    expect(has(actions, 'fence') || has(actions, 'rewind') || has(actions, 'reclone')).toBe(true);
  });

  test.prop([standbyObsArb], { numRuns: 3000 })('touches data from the source only when the source answered with our system', (x) => {
    const { actions } = decide(x);
    const fromSource = actions.some((a) => (a.kind === 'rewind' || a.kind === 'reclone') && a.from === SOURCE_UPSTREAM) || has(actions, 'bootstrap_standby');
    if (!fromSource) return;
    expect(x.source?.reachable).toBe(true);
    if (has(actions, 'bootstrap_standby')) return;
    expect(x.source?.systemId).toBe(x.local.systemId);
  });
});

describe('standby_cluster configuration', () => {
  it('takes Patroni\'s keys; port as a number, a numeric string or one per host', () => {
    expect(sourceHosts(standbyClusterSchema.parse({ host: 'a', port: '5000' }))).toEqual([{ host: 'a', port: 5000 }]);
    expect(sourceHosts(standbyClusterSchema.parse({ host: 'a,b' }))).toEqual([{ host: 'a', port: 5432 }, { host: 'b', port: 5432 }]);
    expect(sourceHosts(SC)).toEqual([{ host: '10.1.0.1', port: 5432 }, { host: '10.1.0.2', port: 5433 }]);
    expect(dynamicConfigSchema.parse({ standby_cluster: { host: 'a', primary_slot_name: 'site_b', restore_command: 'cp /a/%f %p', recovery_min_apply_delay: '5min' } }).standby_cluster?.primary_slot_name).toBe('site_b');
  });

  it.each([
    [{ host: 'a,b', port: '1,2,3' }, /3 ports for 2 hosts/],
    [{ host: 'a b' }, /host/],
    [{ host: 'a', create_replica_methods: ['wal_e'] }, /basebackup/],
    [{ host: 'a', nonsense: 1 }, /nonsense/],
  ])('refuses %j', (v, msg) => {
    const r = standbyClusterSchema.safeParse(v);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(msg);
  });

  it('a multi-host source is reached with target_session_attrs=read-write and the standby_cluster slot', () => {
    const t = upstreamTarget({ name: SOURCE_UPSTREAM, conn: '10.1.0.1:5432', source: { ...SC, primary_slot_name: 'site_b', recovery_min_apply_delay: '5min' } });
    expect(t).toMatchObject({ host: '10.1.0.1,10.1.0.2', port: '5432,5433', extra: [['target_session_attrs', 'read-write']] });
    const conf = renderPghaConf({
      port: 5432, listenHost: '*', socketDir: '/tmp', parameters: [],
      standby: { host: t.host, port: t.port, extra: t.extra, recovery: { recovery_min_apply_delay: '5min' }, user: 'rep', passfile: '/p', applicationName: 'n1', slot: 'site_b', upstreamName: SOURCE_UPSTREAM },
    });
    expect(conf).toContain("primary_conninfo = 'host=''10.1.0.1,10.1.0.2'' port=''5432,5433'' user=rep passfile=/p application_name=n1 target_session_attrs=read-write ");
    expect(conf).toContain('# pgha-upstream: @source');
    expect(conf).toContain("primary_slot_name = 'site_b'");
    expect(conf).toContain("recovery_min_apply_delay = '5min'");
  });

  it('one host (the source\'s HAProxy) is used as given', () => {
    expect(upstreamTarget({ name: SOURCE_UPSTREAM, conn: 'h:5000', source: standbyClusterSchema.parse({ host: 'h', port: 5000 }) })).toMatchObject({ host: 'h', port: 5000, extra: [] });
  });

  it('parses the source query row', () => {
    expect(parseSourceState('7300|f|3|0/3000060\n')).toEqual({ reachable: true, error: null, systemId: '7300', writable: true, timeline: 3, lsn: 0x3000060 });
    expect(parseSourceState('7300|t|2|').writable).toBe(false);
    expect(() => parseSourceState('psql: error')).toThrow();
  });

  it('a Patroni /config keeps its standby_cluster through pgha, and promote-cluster removes it', () => {
    const stored = { ttl: 30, standby_cluster: { host: 'site-a', port: 5000, primary_slot_name: 'site_b' } };
    const cfg = dynamicConfigSchema.parse(fromPatroniConfig(stored));
    expect(cfg.standby_cluster).toMatchObject({ host: 'site-a', port: 5000, primary_slot_name: 'site_b' });
    expect(toPatroniConfig(cfg, stored)['standby_cluster']).toMatchObject({ host: 'site-a', port: 5000 });
    expect('standby_cluster' in toPatroniConfig({ ...cfg, standby_cluster: undefined }, stored)).toBe(false);
  });
});

describe('health checks on a standby cluster', () => {
  const NOW = 100_000;
  const cluster = clusterView({ leader: { name: 'n2', revision: '1', lease: '1' }, config: scDyn() });
  const leader = agentSnapshot(NOW - 10, { isLeader: true, cluster, source: src() }, { role: 'standby', state: 'streaming', upstream: SOURCE_UPSTREAM });
  const follower = agentSnapshot(NOW - 10, { isLeader: false, cluster }, { role: 'standby', state: 'streaming', upstream: 'n2' });
  const st = (check: Parameters<typeof checkStatus>[0], s: typeof leader) => checkStatus(check, s, NOW, 3000);

  it('the standby leader: /standby-leader 200, /primary 503, /replica 503 (Patroni\'s role standby_leader), /read-only 200', () => {
    expect([st('standby-leader', leader), st('primary', leader), st('replica', leader), st('read-only', leader)]).toEqual([200, 503, 503, 200]);
    expect([st('standby-leader', follower), st('primary', follower), st('replica', follower)]).toEqual([503, 503, 200]);
  });

  it('/status and /cluster name the role and the source', () => {
    const b = statusBody(leader, NOW, 3000, 'site-b');
    expect(b.role).toBe('standby_leader');
    expect(b.standby_cluster).toEqual({ source: '10.1.0.1:5432,10.1.0.2:5433', source_state: src() });
    const c = clusterBody(leader, NOW, 3000, 'site-b');
    expect(c.standby_cluster).toEqual({ source: '10.1.0.1:5432,10.1.0.2:5433' });
    expect(c.members.find((m) => m.name === 'n2')?.role).toBe('standby_leader');
  });

  it('a normal cluster: no standby_cluster field, /standby-leader 503', () => {
    const p = agentSnapshot(NOW - 10, { isLeader: true }, { role: 'primary', state: 'running', upstream: null });
    expect(st('standby-leader', p)).toBe(503);
    expect(statusBody(p, NOW, 3000, 's').standby_cluster).toBeUndefined();
  });
});
