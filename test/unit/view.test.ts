// Queries on the cluster view (src/ha/view.ts) and the three uses of the one lag rule.
import { describe, expect, it } from 'vitest';
import { lagBytes } from '../../src/agent/member.ts';
import { clusterBody } from '../../src/api/health.ts';
import { buildListRows } from '../../src/cli/format.ts';
import { lagBehind } from '../../src/ha/candidates.ts';
import { absentRevisions, bytesBehind, leaderMember, leaderPosition, memberByName, memberLag } from '../../src/ha/view.ts';
import { agentSnapshot, clusterView, localPg, member } from '../support/observations.ts';

const MB = 1024 * 1024;
const asPrimary = { role: 'primary', state: 'running', upstream: null } as const;

describe('members of the view', () => {
  const v = clusterView();

  it('finds a member by name, and nothing for an unknown name, no name or no view', () => {
    expect(memberByName(v, 'n2')?.name).toBe('n2');
    expect(memberByName(v, 'n9')).toBeUndefined();
    expect(memberByName(v, null)).toBeUndefined();
    expect(memberByName(null, 'n2')).toBeUndefined();
  });

  it('finds the leader key holder\'s member, not any primary', () => {
    expect(leaderMember(v)?.name).toBe('n1');
    expect(leaderMember(clusterView({ leader: { name: 'n3', revision: '1', lease: '1' } }))?.name).toBe('n3');
    expect(leaderMember(clusterView({ leader: null }))).toBeUndefined();
    expect(leaderMember(clusterView({ members: [member('n2')] }))).toBeUndefined(); // n1 holds the key but has not published
    expect(leaderMember(undefined)).toBeUndefined();
  });

  it('starts with every conditionally written key absent, in a fresh object each time', () => {
    const a = absentRevisions();
    expect(a).toEqual({ sync: '0', failsafe: '0', failover: '0', status: '0' });
    a.sync = '9';
    expect(absentRevisions().sync).toBe('0');
  });
});

describe('the lag rule', () => {
  it.each([
    ['behind', 1000, 5000, 4000],
    ['level', 5000, 5000, 0],
    ['ahead of a stale reference: never negative', 6000, 5000, 0],
    ['unknown position', null, 5000, null],
    ['unknown reference', 1000, null, null],
  ] as const)('bytesBehind: %s', (_, lsn, ref, want) => {
    expect(bytesBehind(lsn, ref)).toBe(want);
  });

  it.each([
    ['published further than the leader key', { lastLeaderLsn: 7000 }, 7000],
    ['published only (the key expired)', { lastLeaderLsn: 700, leader: null }, 700],
    ['leader key only', { lastLeaderLsn: null }, 1000],
    ['leader key further', { lastLeaderLsn: 10 }, 1000],
    ['no leader, nothing published', { lastLeaderLsn: null, leader: null }, null],
  ] as const)('leader position: %s', (_, over, want) => {
    expect(leaderPosition(clusterView(over))).toBe(want);
  });

  it('a key holder that is no primary does not count as the leader position', () => {
    const c = clusterView({ lastLeaderLsn: 10, members: [member('n1', { lsn: 9000 }), member('n2', { lsn: 5 })] });
    expect(leaderPosition(c)).toBe(10);
  });

  it('displayed lag (GET /cluster, pghactl list): standbys only, behind the furthest leader position', () => {
    const c = clusterView({
      lastLeaderLsn: 5000,
      members: [member('n1', { ...asPrimary, lsn: 9000 }), member('n2', { lsn: 4000 }), member('n3', { lsn: null }), member('n4', { role: 'unknown', state: 'stopped', lsn: 100 })],
    });
    expect(c.members.map((m) => memberLag(c, m))).toEqual([null, 5000, null, null]);
    // GET /cluster and pghactl list show the same figure.
    expect(clusterBody(agentSnapshot(0, { cluster: c }), 0, 3000, 'demo').members.map((m) => m.lag)).toEqual([null, 5000, null, null]);
    const rows = buildListRows(c);
    expect(rows.map((r) => (r.lag_mb === null ? null : r.lag_mb * MB))).toEqual([null, 5000, null, null]);
  });

  it('failover lag: behind /status only, and nothing published bars nobody', () => {
    expect(lagBehind(1000, 5000)).toBe(4000);
    expect(lagBehind(6000, 5000)).toBe(0);
    expect(lagBehind(1000, null)).toBe(0);
  });

  it('own lag (GET /replica?lag=, /metrics): a standby behind /status; unknown otherwise', () => {
    expect(lagBytes(localPg({ role: 'standby', lsn: 1000 }), 5000)).toBe(4000);
    expect(lagBytes(localPg({ role: 'standby', lsn: 1000 }), null)).toBeNull();
    expect(lagBytes(localPg({ role: 'primary', lsn: 1000 }), 5000)).toBeNull();
    expect(lagBytes(localPg({ role: 'standby', lsn: null }), 5000)).toBeNull();
  });
});
