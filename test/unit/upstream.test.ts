// Cascading replication (replicatefrom) and archive-only standbys (nostream): whom a standby
// streams from, which slots each member keeps, what decide() does with it, and the topology
// pghactl draws from what members report.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseUpstream, slotMembers } from '../../src/ha/upstream.ts';
import { decide } from '../../src/ha/decide.ts';
import { eligibleStandbys } from '../../src/ha/quorum.ts';
import { buildTopology, renderTopology } from '../../src/cli/topology.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { Tags } from '../../src/config/schema.ts';
import type { ClusterView, MemberInfo } from '../../src/ha/types.ts';
import { clusterView, defaultTags, dyn, localPg, member, obs } from '../support/observations.ts';

const tags = (over: Partial<Tags> = {}): Tags => ({ ...defaultTags, ...over });
const leader = member('n1', { role: 'primary', state: 'running', upstream: null });
const view = (...ms: MemberInfo[]): ClusterView => clusterView({ members: [leader, ...ms] });

describe('chooseUpstream: whom a standby streams from', () => {
  const cases: Array<[string, Tags, MemberInfo[], string | null]> = [
    ['no tag: the leader', tags(), [member('n2'), member('n3')], 'n1'],
    ['replicatefrom a streaming standby of the leader', tags({ replicatefrom: 'n2' }), [member('n2'), member('n3')], 'n2'],
    ['replicatefrom the leader: the leader', tags({ replicatefrom: 'n1' }), [member('n2'), member('n3')], 'n1'],
    ['replicatefrom itself: ignored', tags({ replicatefrom: 'n3' }), [member('n2'), member('n3')], 'n1'],
    ['replicatefrom a member that is gone', tags({ replicatefrom: 'n9' }), [member('n2'), member('n3')], 'n1'],
    ['replicatefrom a stopped member', tags({ replicatefrom: 'n2' }), [member('n2', { state: 'stopped', role: 'unknown' }), member('n3')], 'n1'],
    ['replicatefrom a running but not streaming member', tags({ replicatefrom: 'n2' }), [member('n2', { state: 'running' }), member('n3')], 'n1'],
    ['replicatefrom a chain n3 <- n2 <- n4 <- n1', tags({ replicatefrom: 'n2' }), [member('n2', { upstream: 'n4' }), member('n4'), member('n3')], 'n2'],
    ['replicatefrom a member whose chain is broken', tags({ replicatefrom: 'n2' }), [member('n2', { upstream: 'n4' }), member('n4', { state: 'running' }), member('n3')], 'n1'],
    ['replicatefrom a member that streams from us (stale loop)', tags({ replicatefrom: 'n2' }), [member('n2', { upstream: 'n3' }), member('n3')], 'n1'],
    ['a loop of tags through us: the leader', tags({ replicatefrom: 'n2' }), [member('n2', { tags: tags({ replicatefrom: 'n3' }) }), member('n3')], 'n1'],
    ['a loop of tags not through us: the member, once it streams from the leader', tags({ replicatefrom: 'n2' }),
      [member('n2', { tags: tags({ replicatefrom: 'n4' }) }), member('n4', { tags: tags({ replicatefrom: 'n2' }) }), member('n3')], 'n2'],
    ['nostream: nobody', tags({ nostream: true }), [member('n2'), member('n3')], null],
  ];
  it.each(cases)('%s', (_why, t, ms, want) => {
    expect(chooseUpstream('n3', t, view(...ms)).upstream).toBe(want);
  });
  it('explains a fallback and an ignored self-reference', () => {
    expect(chooseUpstream('n3', tags({ replicatefrom: 'n3' }), view(member('n2'))).note).toMatch(/names this member itself: ignored/);
    expect(chooseUpstream('n3', tags({ replicatefrom: 'n2' }), view(member('n2', { state: 'running' }))).note).toMatch(/not streaming/);
  });
});

describe('slotMembers: who keeps a physical slot for whom', () => {
  const v = view(member('n2'), member('n3', { tags: tags({ replicatefrom: 'n2' }), upstream: 'n2' }), member('n4', { tags: tags({ nostream: true }), upstream: null, state: 'running' }));
  it('the leader keeps none for a cascading or nostream member; the intermediate keeps one for its downstream', () => {
    expect(slotMembers('n1', v)).toEqual(['n2']);
    expect(slotMembers('n2', v)).toEqual(['n3']);
    expect(slotMembers('n3', v)).toEqual([]);
  });
  it('while the intermediate is down, the leader keeps one for the member falling back to it', () => {
    const down = view(member('n2', { state: 'stopped', role: 'unknown', upstream: null }), member('n3', { tags: tags({ replicatefrom: 'n2' }), upstream: 'n2', state: 'running' }));
    expect(slotMembers('n1', down)).toEqual(['n2', 'n3']);
  });
  it('both keep one while a member moves (published upstream one, chosen the other)', () => {
    const moving = view(member('n2'), member('n3', { tags: tags({ replicatefrom: 'n2' }), upstream: 'n1' }));
    expect(slotMembers('n1', moving)).toEqual(['n2', 'n3']);
    expect(slotMembers('n2', moving)).toEqual(['n3']);
  });
});

describe('decide: the follower branch follows the chosen upstream', () => {
  const cascading = { name: 'n3', tags: tags({ replicatefrom: 'n2' }) };
  it('moves to the replicatefrom member once it streams, and back to the leader when it stops', () => {
    const p = decide(obs({ self: cascading, local: { upstream: 'n1' } }));
    expect(p.actions).toContainEqual({ kind: 'follow', upstream: 'n2' });
    const gone = clusterView({ members: [leader, member('n2', { state: 'stopped', role: 'unknown' }), member('n3', { tags: cascading.tags, upstream: 'n2' })] });
    expect(decide(obs({ self: cascading, local: { upstream: 'n2', streaming: false }, cluster: gone })).actions).toContainEqual({ kind: 'follow', upstream: 'n1' });
  });
  it('starts a stopped cascading member on its replicatefrom member', () => {
    const p = decide(obs({ self: cascading, local: { running: false, accepting: false, role: null, upstream: 'n2' } }));
    expect(p.actions).toEqual([{ kind: 'start', as: 'standby', upstream: 'n2' }]);
  });
  it('an intermediate standby keeps slots for its downstreams, and drops them after member_slots_ttl', () => {
    const v = clusterView({ members: [leader, member('n2'), member('n3', { tags: cascading.tags, upstream: 'n2' })] });
    expect(decide(obs({ self: { name: 'n2' }, cluster: v })).actions).toContainEqual({ kind: 'ensure_slots', members: ['n3'], permanent: [] });
    const moved = clusterView({ members: [leader, member('n2'), member('n3')] });
    const ttl = dyn().member_slots_ttl * 1000;
    expect(decide(obs({ self: { name: 'n2' }, cluster: moved, memory: { slotsSeen: { n3: 10_000 - ttl + 1 } } })).actions)
      .toContainEqual({ kind: 'ensure_slots', members: ['n3'], permanent: [] });
    expect(decide(obs({ self: { name: 'n2' }, cluster: moved, memory: { slotsSeen: { n3: 10_000 - ttl - 1 } } })).actions)
      .toContainEqual({ kind: 'ensure_slots', members: [], permanent: [] });
    expect(decide(obs({ self: { name: 'n2' }, cluster: moved })).actions.some((a) => a.kind === 'ensure_slots')).toBe(false);
  });
  it('the leader keeps no slot for a member cascading from a standby', () => {
    const v = clusterView({ members: [leader, member('n2'), member('n3', { tags: cascading.tags, upstream: 'n2' })] });
    const p = decide(obs({ self: { name: 'n1' }, local: localPg({ role: 'primary', controlState: 'primary-clean', upstream: null, streaming: false }), cluster: v }));
    expect(p.actions).toContainEqual({ kind: 'ensure_slots', members: ['n2'], permanent: [] });
  });
  it('nostream: starts and stays with no upstream', () => {
    const self = { name: 'n3', tags: tags({ nostream: true }) };
    expect(decide(obs({ self, local: { running: false, accepting: false, role: null, upstream: null } })).actions).toEqual([{ kind: 'start', as: 'standby', upstream: null }]);
    expect(decide(obs({ self, local: { upstream: 'n1' } })).actions).toContainEqual({ kind: 'follow', upstream: null });
    expect(decide(obs({ self, local: { upstream: null, streaming: false } })).actions).toEqual([]);
  });
  it('a cascading member is a failover candidate, its lag judged against the leader', () => {
    const free = clusterView({ leader: null, lastLeaderLsn: 1000, members: [member('n2', { lsn: 900 }), member('n3', { tags: cascading.tags, upstream: 'n2', lsn: 1000 })] });
    expect(decide(obs({ self: cascading, cluster: free, local: { upstream: 'n2', lsn: 1000 } })).actions).toContainEqual({ kind: 'acquire' });
    const behind = { ...free, config: dyn({ maximum_lag_on_failover: 50 }) };
    expect(decide(obs({ self: cascading, cluster: behind, local: { upstream: 'n2', lsn: 900 } })).actions).not.toContainEqual({ kind: 'acquire' });
  });
});

describe('synchronous standbys', () => {
  it('never a cascading or a nostream member', () => {
    const ms = [member('n2'), member('n3', { tags: tags({ replicatefrom: 'n2' }), upstream: 'n2' }), member('n4', { tags: tags({ nostream: true }), upstream: null, state: 'running' })];
    expect(eligibleStandbys('n1', ms, ['n2', 'n3', 'n4'])).toEqual(['n2']);
  });
});

describe('configuration', () => {
  const base = { scope: 'demo', name: 'node3', etcd: { hosts: '127.0.0.1:2379' }, restapi: { listen: '127.0.0.1:8008' },
    postgresql: { listen: '127.0.0.1:5432', data_dir: '/var/lib/pgha/data', authentication: { superuser: { username: 'postgres', password: 'x' }, replication: { username: 'replicator', password: 'y' } } } };
  it('refuses nostream without an archive, naming the field and the file', () => {
    let err: unknown = null;
    try { parseConfig(JSON.stringify({ ...base, tags: { nostream: true } }), '/etc/pgha/pgha.yml'); } catch (e) { err = e; }
    expect((err as { code?: string }).code).toBe('PGHA_CONFIG_INVALID');
    expect((err as Error).message).toMatch(/\/etc\/pgha\/pgha\.yml: tags\.nostream: .*backup/);
  });
  it('accepts replicatefrom as a member name only', () => {
    expect(parseConfig(JSON.stringify({ ...base, tags: { replicatefrom: 'node2' } }), 'f').tags.replicatefrom).toBe('node2');
    expect(() => parseConfig(JSON.stringify({ ...base, tags: { replicatefrom: 'node 2; x' } }), 'f')).toThrow(/tags\.replicatefrom/);
  });
});

// ---- properties -------------------------------------------------------------------------
const NAMES = ['n1', 'n2', 'n3', 'n4', 'n5'] as const;
const stateArb = fc.constantFrom<MemberInfo['state']>('streaming', 'streaming', 'running', 'stopped');
const memberArb = (name: string) => fc.record({
  state: stateArb,
  upstream: fc.option(fc.constantFrom(...NAMES), { nil: null }),
  replicatefrom: fc.option(fc.constantFrom(...NAMES), { nil: undefined }),
  nostream: fc.constantFrom(false, false, false, true),
}).map(({ state, upstream, replicatefrom, nostream }): MemberInfo => member(name, {
  state, role: state === 'stopped' ? 'unknown' : 'standby', upstream,
  tags: tags({ nostream, ...(replicatefrom === undefined ? {} : { replicatefrom }) }),
}));
const viewArb = fc.tuple(...NAMES.slice(1).map(memberArb)).map((ms) => view(...ms));

/** Following the chosen upstreams from `name` reaches the leader. */
function reachesLeader(v: ClusterView, start: string): boolean {
  const seen = new Set<string>();
  let cur: string | null = start;
  while (cur !== null && cur !== 'n1') {
    if (seen.has(cur)) return false;
    seen.add(cur);
    const m = v.members.find((x) => x.name === cur);
    if (m === undefined) return false;
    cur = chooseUpstream(m.name, m.tags, v).upstream;
  }
  return cur === 'n1';
}

describe('properties', () => {
  it('a chosen upstream is the leader, or a streaming standby whose published chain ends at the leader; never itself', () => {
    fc.assert(fc.property(viewArb, (v) => {
      for (const m of v.members.filter((x) => x.name !== 'n1')) {
        const up = chooseUpstream(m.name, m.tags, v).upstream;
        expect(up).not.toBe(m.name);
        if (m.tags.nostream) expect(up).toBeNull();
        if (up === 'n1' || m.tags.nostream) continue;
        const u = v.members.find((x) => x.name === up);
        expect(u?.role).toBe('standby');
        expect(u?.state).toBe('streaming');
        let cur = u?.upstream ?? null;
        const seen = new Set([m.name, up]);
        while (cur !== 'n1') {
          expect(cur).not.toBeNull();
          expect(seen.has(cur as string)).toBe(false);
          seen.add(cur as string);
          cur = v.members.find((x) => x.name === cur)?.upstream ?? null;
        }
      }
    }), { numRuns: 500 });
  });
  it('once everyone follows its choice, every standby gets WAL from the leader through its chain (no loop)', () => {
    fc.assert(fc.property(viewArb, (v0) => {
      // Settle: each round, every member publishes the upstream it chose and streams (as after one loop each).
      let v = v0;
      for (let round = 0; round < NAMES.length + 1; round++) {
        const prev = v;
        v = { ...v, members: v.members.map((m) => {
          if (m.name === 'n1') return m;
          const up = chooseUpstream(m.name, m.tags, prev).upstream;
          return { ...m, role: 'standby' as const, state: up === null ? 'running' as const : 'streaming' as const, upstream: up };
        }) };
      }
      for (const m of v.members.filter((x) => x.name !== 'n1' && !x.tags.nostream)) expect(reachesLeader(v, m.name)).toBe(true);
    }), { numRuns: 500 });
  });
  it('every member that streams from X has a slot on X', () => {
    fc.assert(fc.property(viewArb, (v) => {
      for (const m of v.members.filter((x) => x.name !== 'n1' && !x.tags.nostream)) {
        const up = chooseUpstream(m.name, m.tags, v).upstream;
        if (up !== null) expect(slotMembers(up, v)).toContain(m.name);
      }
    }), { numRuns: 500 });
  });
});

describe('pghactl topology', () => {
  const v = clusterView({
    members: [
      member('n1', { role: 'primary', state: 'running', upstream: null, conn: '127.0.0.1:5441' }),
      member('n2', { upstream: 'n1', conn: '127.0.0.1:5442', receivingFrom: '127.0.0.1:5441' }),
      // Configured for n2, but its WAL receiver streams from the leader: drawn under the leader.
      member('n3', { upstream: 'n2', conn: '127.0.0.1:5443', receivingFrom: '127.0.0.1:5442', tags: tags({ replicatefrom: 'n2' }) }),
      member('n4', { upstream: 'n2', conn: '127.0.0.1:5444', receivingFrom: '127.0.0.1:5441' }),
      member('n5', { upstream: null, state: 'running', conn: '127.0.0.1:5445', tags: tags({ nostream: true }) }),
    ],
  });
  it('draws the observed tree, not the configured one', () => {
    const t = buildTopology('demo', v);
    expect(t.members.map((r) => `${r.depth}:${r.member}:${r.upstream ?? '-'}`)).toEqual(['0:n1:-', '1:n2:n1', '2:n3:n2', '1:n4:n1', '0:n5:-']);
    const text = renderTopology(t, 'table', false);
    expect(text).toMatch(/│ n1 +│/);
    expect(text).toMatch(/│ \+ n2 +│/);
    expect(text).toMatch(/│   \+ n3 +│ 127\.0\.0\.1:5443 │ Replica +│ streaming/);
    expect(text).toContain('replicatefrom=n2');
    expect(text).toContain('nostream');
    const json = JSON.parse(renderTopology(t, 'json', false)) as { members: Array<{ member: string; configured_upstream: string | null; receiving_from: string | null }> };
    expect(json.members.find((r) => r.member === 'n4')).toMatchObject({ configured_upstream: 'n2', receiving_from: '127.0.0.1:5441' });
  });
  it('draws a standby_cluster source as the root line when /config has one', () => {
    const sc = { ...v, config: { ...v.config, standby_cluster: { host: '10.0.0.9', port: 5432 } } as ClusterView['config'] };
    const t = buildTopology('demo', sc);
    expect(t.standby_cluster).toEqual({ host: '10.0.0.9', port: 5432 });
    expect(t.members[0]).toMatchObject({ member: 'n1', depth: 1 });
    expect(renderTopology(t, 'table', false)).toMatch(/│ 10\.0\.0\.9:5432 +│ +│ Source/);
  });
});
