// Operator requests, validated against a cluster view before anything is written.
import { describe, expect, it } from 'vitest';
import { candidateProblem, planHandover } from '../../src/ops/requests.ts';
import { mergePatch, parseAssignment, setPath } from '../../src/ops/store.ts';
import { buildDsn } from '../../src/cli/info.ts';
import { clusterView, defaultTags, dyn, member, request, WALL } from '../support/observations.ts';

const view = clusterView({
  members: [
    member('n1', { role: 'primary', state: 'running', conn: '10.0.0.1:5432' }),
    member('n2', { conn: '10.0.0.2:5432' }),
    member('n3', { conn: '10.0.0.3:5432', tags: { ...defaultTags, nofailover: true } }),
  ],
});

const refusal = (f: () => unknown): string => {
  try { f(); } catch (err) { return (err as Error).message; }
  return '(not refused)';
};

describe('switchover and failover requests', () => {
  it('builds a switchover from the current leader', () => {
    expect(planHandover(view, { kind: 'switchover', candidate: 'n2' }, WALL)).toEqual({ kind: 'switchover', leader: 'n1', candidate: 'n2', scheduledAt: null, requestedAt: WALL, shutdownLsn: null });
  });
  it.each([
    ['a nofailover candidate', { kind: 'switchover' as const, candidate: 'n3' }, view, /n3 is tagged nofailover/],
    ['an unknown candidate', { kind: 'switchover' as const, candidate: 'zz' }, view, /zz is not a member/],
    ['the leader itself', { kind: 'switchover' as const, candidate: 'n1' }, view, /already the leader/],
    ['a wrong --leader', { kind: 'switchover' as const, leader: 'n2' }, view, /n2 is not the leader/],
    ['a lagging candidate', { kind: 'switchover' as const, candidate: 'n2' }, { ...view, lastLeaderLsn: 50_000_000 }, /n2 is \d+\.\d MB behind the leader \(maximum_lag_on_failover 1\.0 MB\)/],
    ['a stopped candidate', { kind: 'switchover' as const, candidate: 'n2' }, { ...view, members: [view.members[0]!, member('n2', { state: 'stopped' })] }, /not a running standby/],
    ['a paused cluster', { kind: 'switchover' as const }, { ...view, config: dyn({ pause: true }) }, /paused/],
    ['a pending request', { kind: 'switchover' as const }, { ...view, failover: request() }, /already pending/],
    ['no leader', { kind: 'switchover' as const }, { ...view, leader: null }, /no healthy leader/],
    ['a past schedule', { kind: 'switchover' as const, scheduledAt: WALL - 1 }, view, /in the past/],
    ['a failover with a healthy leader', { kind: 'failover' as const, candidate: 'n2' }, view, /healthy leader: use switchover, or failover --force/],
    ['a failover without candidate', { kind: 'failover' as const }, view, /needs --candidate/],
    ['a failover to nofailover', { kind: 'failover' as const, candidate: 'n3', force: true }, view, /nofailover/],
    ['a failover in synchronous mode with /sync unreadable', { kind: 'failover' as const, candidate: 'n2', force: true }, { ...view, config: dyn({ synchronous_mode: 'on' }), syncUnreadable: true }, /\/sync in etcd is unreadable/],
  ])('refuses %s', (_, input, v, reason) => {
    expect(refusal(() => planHandover(v, input, WALL))).toMatch(reason);
  });
  it('allows a forced failover and one without a leader, even to a lagging member', () => {
    expect(planHandover(view, { kind: 'failover', candidate: 'n2', force: true }, WALL).kind).toBe('failover');
    const leaderless = { ...view, leader: null, lastLeaderLsn: 50_000_000 };
    expect(planHandover(leaderless, { kind: 'failover', candidate: 'n2' }, WALL)).toMatchObject({ leader: null, candidate: 'n2' });
    expect(candidateProblem(leaderless, 'n2', false)).toBeNull();
  });
});

describe('config edits', () => {
  it('parses key=value as YAML scalars', () => {
    expect(parseAssignment('ttl=5')).toEqual({ path: ['ttl'], value: 5 });
    expect(parseAssignment('postgresql.use_slots=false')).toEqual({ path: ['postgresql', 'use_slots'], value: false });
    expect(parseAssignment('work_mem=7MB')).toEqual({ path: ['work_mem'], value: '7MB' });
    expect(() => parseAssignment('novalue')).toThrow(/key=value/);
  });
  it('sets, deletes and merges without touching the input', () => {
    const base = { a: 1, postgresql: { parameters: { x: 1 } } };
    expect(setPath(base, ['postgresql', 'parameters', 'y'], 2)).toEqual({ a: 1, postgresql: { parameters: { x: 1, y: 2 } } });
    expect(mergePatch(base, { postgresql: { parameters: { x: null } }, a: 3 })).toEqual({ a: 3, postgresql: { parameters: {} } });
    expect(base).toEqual({ a: 1, postgresql: { parameters: { x: 1 } } });
  });
});

describe('dsn', () => {
  it('lists every member for the primary so it survives a failover without a proxy', () => {
    expect(buildDsn(view, 'primary', 'app', 'db')).toBe('host=10.0.0.1,10.0.0.2,10.0.0.3 port=5432,5432,5432 dbname=db user=app target_session_attrs=read-write');
  });
  it('lists the standbys for replica', () => {
    expect(buildDsn(view, 'replica', 'app', 'db')).toBe('host=10.0.0.2,10.0.0.3 port=5432,5432 dbname=db user=app target_session_attrs=standby');
  });
});
