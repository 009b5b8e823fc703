// A switchover run by a Patroni leader, seen by the pgha member it names (mixed cluster during a
// migration): Patroni records no shutdown_lsn, so its final /status optime stands in once it has
// released the key and rewritten its member value as `demoted` (src/ha/patroni-handover.ts).
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/ha/decide.ts';
import { patroniReleasedLsn } from '../../src/ha/patroni-handover.ts';
import { eligibleStandbys } from '../../src/ha/quorum.ts';
import type { MemberInfo } from '../../src/ha/types.ts';
import { clusterView, member, obs, request } from '../support/observations.ts';

const patroniLeader = (role: string, over: Partial<MemberInfo> = {}) => member('n1', { role: role === 'master' ? 'primary' : 'unknown', state: 'stopped', upstream: null, agent: 'patroni', patroniRole: role, ...over });
const released = (role = 'demoted', over: Partial<MemberInfo> = {}) => clusterView({
  leader: null, lastLeaderLsn: 5000, failover: request({ leader: 'n1', candidate: 'n2' }),
  members: [patroniLeader(role, over), member('n2', { agent: 'pgha' }), member('n3', { agent: 'patroni', patroniRole: 'replica' })],
});
const kinds = (o: ReturnType<typeof obs>) => decide(o).actions.map((a) => a.kind);

describe('a pgha candidate after a Patroni leader\'s switchover', () => {
  it('takes over at once when it has WAL beyond the released leader\'s final optime', () => {
    expect(kinds(obs({ local: { lsn: 5001 }, cluster: released() }))).toEqual(['acquire', 'promote', 'clear_failover']);
    // Patroni rewrites its value as `replica` once it follows again: still released.
    expect(kinds(obs({ local: { lsn: 5001 }, cluster: released('replica') }))).toEqual(['acquire', 'promote', 'clear_failover']);
  });

  it('takes over at once even when its agent started less than a ttl ago (failsafe_mode): the leader stopped through etcd', () => {
    expect(kinds(obs({ self: { startedAt: 9_000 }, local: { lsn: 5001 }, cluster: released() }))).toEqual(['acquire', 'promote', 'clear_failover']);
    // Not while the old leader may still run: the free key alone proves nothing.
    expect(kinds(obs({ self: { startedAt: 9_000 }, local: { lsn: 9999 }, cluster: released('master'), now: 10_000 }))).toEqual([]);
  });

  it('waits while it lacks that WAL', () => {
    const p = decide(obs({ local: { lsn: 5000 }, cluster: released() }));
    expect(p.actions).toEqual([]);
    expect(p.reason).toContain('waiting for WAL beyond 5000');
  });

  it('does not take the optime while the old leader still calls itself the primary', () => {
    // The key can be free because its lease ran out, while Patroni still runs the primary: the
    // optime may be old, so the candidate waits for a shutdown_lsn as before.
    expect(kinds(obs({ local: { lsn: 9999 }, cluster: released('master') }))).toEqual([]);
  });

  it('applies to Patroni leaders only, to switchovers only, and only with the key free', () => {
    const c = released();
    expect(patroniReleasedLsn(c.failover!, c)).toBe(5000);
    const pghaLeader = { ...c, members: [member('n1', { agent: 'pgha', state: 'stopped' }), ...c.members.slice(1)] };
    expect(patroniReleasedLsn(c.failover!, pghaLeader)).toBeNull();
    expect(patroniReleasedLsn({ ...c.failover!, kind: 'failover' }, c)).toBeNull();
    expect(patroniReleasedLsn(c.failover!, { ...c, leader: { name: 'n1', revision: '1', lease: '1' } })).toBeNull();
    expect(patroniReleasedLsn({ ...c.failover!, shutdownLsn: 7000 }, c)).toBeNull();
    expect(patroniReleasedLsn(c.failover!, { ...c, lastLeaderLsn: null })).toBeNull();
  });
});

describe('a pgha leader with Patroni standbys in synchronous mode', () => {
  // Patroni 3.0.2 publishes neither replication_state nor its upstream: its standby's value reads
  // as `running` with no upstream. It is eligible once our pg_stat_replication shows it streaming.
  const patroniStandby = member('n2', { state: 'running', upstream: null, agent: 'patroni', patroniRole: 'replica' });
  it('names a Patroni standby that streams from it, and only then', () => {
    expect(eligibleStandbys('n1', [patroniStandby], ['n2'])).toEqual(['n2']);
    expect(eligibleStandbys('n1', [patroniStandby], [])).toEqual([]);
    // A pgha member still needs its own value to say it streams from us.
    expect(eligibleStandbys('n1', [member('n3', { state: 'running', upstream: null })], ['n3'])).toEqual([]);
    expect(eligibleStandbys('n1', [{ ...patroniStandby, tags: { ...patroniStandby.tags, nosync: true } }], ['n2'])).toEqual([]);
  });
});
