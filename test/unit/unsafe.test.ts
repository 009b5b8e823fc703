// Rule U of src/ha/decide.ts: a member pghactl verify marked unsafe (/unsafe/<name>) is never
// promoted, never a switchover candidate or clone source, and nobody defers to it.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decide } from '../../src/ha/decide.ts';
import { candidateProblem, planHandover } from '../../src/ops/requests.ts';
import { buildListRows } from '../../src/cli/format.ts';
import type { Action, ClusterView } from '../../src/ha/types.ts';
import { clusterView, defaultTags, member, obs, request, WALL } from '../support/observations.ts';

const kinds = (a: Action[]) => a.map((x) => x.kind);
const mark = { at: WALL - 1000, reason: 'public.t: 1 chunk differs' };
const unsafe = (...names: string[]): Pick<ClusterView, 'unsafe'> => ({ unsafe: Object.fromEntries(names.map((n) => [n, mark])) });
const noLeader = (over: Partial<ClusterView> = {}) => clusterView({ leader: null, ...over });

const cases: Array<{ name: string; o: ReturnType<typeof obs>; expect: string[] }> = [
  { name: 'key free, best candidate but marked: not racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader(unsafe('n2')) }), expect: [] },
  { name: 'key free, same best candidate unmarked: races (control)', o: obs({ local: { lsn: 2000 }, cluster: noLeader() }), expect: ['acquire', 'promote'] },
  { name: 'key free, a marked peer is ahead: we race anyway', o: obs({ cluster: noLeader({ members: [member('n3', { lsn: 9000 })], ...unsafe('n3') }) }), expect: ['acquire', 'promote'] },
  { name: 'key free, the peer ahead is unmarked: we wait (control)', o: obs({ cluster: noLeader({ members: [member('n3', { lsn: 9000 })] }) }), expect: [] },
  { name: 'named switchover candidate but marked: not racing', o: obs({ local: { lsn: 5001 }, cluster: noLeader({ failover: request({ candidate: 'n2', shutdownLsn: 5000 }), ...unsafe('n2') }) }), expect: [] },
  { name: 'manual failover naming a marked member: not racing', o: obs({ cluster: noLeader({ failover: request({ kind: 'failover', leader: null, candidate: 'n2' }), ...unsafe('n2') }) }), expect: [] },
  { name: 'holding the key as a standby while marked: release', o: obs({ self: { name: 'n1' }, cluster: clusterView(unsafe('n1')) }), expect: ['release'] },
  { name: 'leader: switchover to a marked standby is dropped', o: obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView({ failover: request({ candidate: 'n3' }), ...unsafe('n3') }) }), expect: ['renew', 'clear_failover'] },
  { name: 'leader: unnamed switchover with every standby marked is dropped', o: obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView({ failover: request(), ...unsafe('n2', 'n3') }) }), expect: ['renew', 'clear_failover'] },
  { name: 'a marked standby keeps following the leader', o: obs({ cluster: clusterView(unsafe('n2')) }), expect: [] },
];

describe('decide with unsafe marks', () => {
  it.each(cases)('$name', ({ o, expect: want }) => {
    expect(kinds(decide(o).actions)).toEqual(want);
  });

  it('never clones from a marked clonefrom standby', () => {
    const o = obs({ local: { dataDir: 'empty', running: false }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running' }), member('n3', { tags: { ...defaultTags, clonefrom: true } })], ...unsafe('n3') }) });
    expect(decide(o).actions).toEqual([{ kind: 'clone', from: 'n1' }, { kind: 'start', as: 'standby', upstream: 'n1' }, { kind: 'clear_unsafe' }]);
  });

  // Whatever else is observed, a member whose own mark is in the view never acquires or promotes.
  test.prop([fc.integer({ min: 0, max: 10_000 }), fc.boolean(), fc.constantFrom('n1', 'n2'), fc.option(fc.constantFrom('n2', 'n3'), { nil: null })])(
    'a marked member never plans acquire or promote', (lsn, leaderFree, holder, candidate) => {
      const base = leaderFree ? noLeader(unsafe('n2')) : clusterView({ leader: { name: holder, revision: '1', lease: '1' }, ...unsafe('n2') });
      const cluster = { ...base, failover: candidate === null ? null : request({ candidate, shutdownLsn: 0 }) };
      const k = kinds(decide(obs({ local: { lsn }, cluster })).actions);
      expect(k).not.toContain('acquire');
      expect(k).not.toContain('promote');
    });
});

describe('operator requests and list with unsafe marks', () => {
  const view = clusterView(unsafe('n2'));
  it('refuses a marked switchover or failover candidate', () => {
    expect(candidateProblem(view, 'n2', true)).toMatch(/n2 is marked unsafe/);
    expect(() => planHandover(view, { kind: 'switchover', candidate: 'n2' }, WALL)).toThrow(/marked unsafe/);
    expect(() => planHandover({ ...view, leader: null }, { kind: 'failover', candidate: 'n2' }, WALL)).toThrow(/marked unsafe/);
  });
  it('an unnamed switchover picks an unmarked standby', () => {
    expect(planHandover({ ...view, members: [view.members[0]!, member('n2', { lsn: 9000 }), member('n3')] }, { kind: 'switchover' }, WALL).candidate).toBe('n3');
  });
  it('pghactl list shows the mark in the tags column', () => {
    expect(buildListRows(view).find((r) => r.member === 'n2')?.tags).toBe('UNSAFE(verify)');
    expect(buildListRows(view).find((r) => r.member === 'n3')?.tags).toBe('');
  });
});
