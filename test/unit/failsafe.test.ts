// Failsafe mode in the HA decision: table cases, the answer to POST /failsafe, and properties
// showing that a leader kept alive by confirmations and a member that confirmed it are never
// both allowed to act as primary.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decide } from '../../src/ha/decide.ts';
import { answerFailsafeCall, failsafeRecordFor, failsafeToAsk } from '../../src/ha/failsafe.ts';
import { initialMemory, remember } from '../../src/ha/memory.ts';
import { FAILSAFE_ROUND_RESERVE_MS, etcdBudget, failsafeDeadline, leaseDeadline } from '../../src/ha/lease.ts';
import { withinBudget } from '../../src/agent/failsafe.ts';
import { dynamicConfigSchema } from '../../src/config/schema.ts';
import type { Action, FailsafeRecord, Observation } from '../../src/ha/types.ts';
import { clusterView, dyn, member, obs, observationArb } from '../support/observations.ts';

const kinds = (a: Action[]) => a.map((x) => x.kind);
const FS = dyn({ failsafe_mode: true });
const record: FailsafeRecord = { leader: 'n1', members: { n1: 'http://a:1', n2: 'http://b:1', n3: 'http://c:1' } };
/** The leader n1, running as primary, etcd unreachable, deadline 12 000, now 10 000. */
const cutOff = (over: Partial<Observation> = {}, cfg = FS): Observation => ({
  ...obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: null }), fallbackConfig: cfg, ...over,
});
const round = (confirmed: string[], sentAt = 9_900) => ({ sentAt, asked: ['n2', 'n3'], confirmed });

describe('decide with failsafe_mode', () => {
  const cases: Array<{ name: string; o: Observation; expect: string[] }> = [
    { name: 'etcd down, all confirmed: extend', o: cutOff({ failsafe: round(['n2', 'n3']) }), expect: ['failsafe_extend'] },
    { name: 'etcd down, one missing, live deadline: wait for the fence', o: cutOff({ failsafe: round(['n2']) }), expect: [] },
    { name: 'etcd down, one missing, deadline passed: fence', o: cutOff({ now: 12_500, failsafe: round(['n2']) }), expect: ['fence'] },
    { name: 'etcd down, nobody answered, deadline passed: fence', o: cutOff({ now: 12_500, failsafe: round([]) }), expect: ['fence'] },
    { name: 'etcd down, all confirmed, but failsafe_mode off: no extension', o: cutOff({ failsafe: round(['n2', 'n3']) }, dyn({ failsafe_mode: false })), expect: [] },
    { name: 'etcd down, round sent after the deadline: fence', o: cutOff({ now: 12_500, failsafe: round(['n2', 'n3'], 12_100) }), expect: ['fence'] },
    { name: 'etcd down, all confirmed, paused: nothing', o: cutOff({ failsafe: round(['n2', 'n3']) }, dyn({ failsafe_mode: true, pause: true })), expect: [] },
    { name: 'etcd down, standby with a round: nothing', o: { ...cutOff({ failsafe: round(['n2', 'n3']) }), local: obs().local }, expect: [] },
    {
      name: 'key free, we confirmed n1 less than a TTL ago: not racing',
      o: obs({ self: { failsafeHold: { leader: 'n1', until: 11_000 } }, local: { lsn: 5000 }, cluster: clusterView({ leader: null, config: FS }) }), expect: [],
    },
    {
      name: 'key free, our promise has ended: race',
      o: obs({ self: { failsafeHold: { leader: 'n1', until: 9_000 } }, local: { lsn: 5000 }, cluster: clusterView({ leader: null, config: FS }) }), expect: ['acquire', 'promote'],
    },
    {
      name: 'key free, /failsafe does not list us: not racing',
      o: obs({ local: { lsn: 5000 }, cluster: clusterView({ leader: null, config: FS, failsafe: { leader: 'n1', members: { n1: 'http://a:1', n3: 'http://c:1' } } }) }), expect: [],
    },
    {
      name: 'key free, /failsafe lists us: race',
      o: obs({ local: { lsn: 5000 }, cluster: clusterView({ leader: null, config: FS, failsafe: record }) }), expect: ['acquire', 'promote'],
    },
    {
      name: 'we hold the key as a standby but confirmed another leader: renew only',
      o: obs({ self: { name: 'n2', failsafeHold: { leader: 'n1', until: 11_000 } }, cluster: clusterView({ leader: { name: 'n2', revision: '1', lease: '1' }, config: FS }) }), expect: ['renew'],
    },
  ];
  it.each(cases)('$name', ({ o, expect: want }) => {
    expect(kinds(decide(o).actions)).toEqual(want);
  });

  it('the leader writes /failsafe when its members change, and deletes it when the mode is off', () => {
    const cluster = clusterView({ config: FS });
    const leader = obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster });
    const write = decide(leader).actions.find((a) => a.kind === 'write_failsafe');
    expect(write).toEqual({ kind: 'write_failsafe', record: failsafeRecordFor('n1', cluster), expected: cluster.revisions.failsafe });
    const current = obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: { ...cluster, failsafe: failsafeRecordFor('n1', cluster) } });
    expect(kinds(decide(current).actions)).not.toContain('write_failsafe');
    const off = obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: clusterView({ config: dyn({ failsafe_mode: false }), failsafe: record }) });
    expect(decide(off).actions.find((a) => a.kind === 'write_failsafe')).toEqual({ kind: 'write_failsafe', record: null, expected: '0' });
    const joined = { ...cluster, members: [...cluster.members, member('n4')], failsafe: failsafeRecordFor('n1', cluster) };
    expect(kinds(decide(obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: joined })).actions)).toContain('write_failsafe');
  });
});

describe('answer to POST /failsafe', () => {
  const base = { caller: 'n1', self: 'n2', failsafeMode: true, actsAsLeader: false, lastLeader: 'n1', hold: null, now: 1000, ttlMs: 3000, recordLeader: 'n1' };
  it('confirms the leader it last saw and promises one TTL', () => {
    expect(answerFailsafeCall(base)).toEqual({ ok: true, hold: { leader: 'n1', until: 4000 } });
    expect(answerFailsafeCall({ ...base, lastLeader: null }).ok).toBe(true);
    expect(answerFailsafeCall({ ...base, callerTtlMs: 2000 })).toEqual({ ok: true, hold: { leader: 'n1', until: 4000 } });
    expect(answerFailsafeCall({ ...base, callerTtlMs: 3000 }).ok).toBe(true);
  });
  it.each([
    ['failsafe_mode off', { failsafeMode: false }],
    ['it is the leader or becoming one', { actsAsLeader: true }],
    ['etcd showed another leader', { lastLeader: 'n3' }],
    ['it confirmed another leader', { hold: { leader: 'n3', until: 2000 } }],
    ['the caller is itself', { caller: 'n2' }],
    // Issue 10 finding 7: the REST password alone must not buy an hour of standbys standing still.
    ['the caller asks for a promise longer than its own ttl', { callerTtlMs: 3_600_000 }],
    ['/failsafe in etcd names another leader', { recordLeader: 'n3' }],
    ['etcd showed no /failsafe record', { recordLeader: null }],
  ])('refuses when %s', (_, over) => {
    expect(answerFailsafeCall({ ...base, ...over }).ok).toBe(false);
  });
});

describe('failsafe and an etcd leader election at the defaults', () => {
  it('is on by default, and the defaults leave room for a round between a failed renewal and the fence', () => {
    const d = dynamicConfigSchema.parse({});
    expect(d.failsafe_mode).toBe(true);
    // Last acknowledged keepalive sent at 0: the next is sent within loop_wait and fails after at
    // most retry_timeout (no etcd leader answers); the round follows at once and must be answered
    // before the deadline. At the defaults: 1.25 s against 1.5 s, 250 ms for the members' answers.
    const deadline = leaseDeadline(0, d.ttl, d);
    const roundSent = (d.loop_wait + d.retry_timeout) * 1000;
    expect(deadline - roundSent).toBeGreaterThanOrEqual(250);
    // The round moves the deadline to one ttl after it was sent, less fence_margin: past the 1 to
    // 2.5 s etcd needs to elect a leader at its default timing, and the next round comes a loop later.
    expect(failsafeDeadline(deadline, roundSent, d)).toBe(roundSent + (d.ttl - d.fence_margin) * 1000);
  });
});

describe('etcd calls of a leader that a failsafe round could save', () => {
  it('get only until the round is due, and only a running primary with failsafe_mode and a deadline is bounded', () => {
    expect(etcdBudget(10_000, 9_000, true, true)).toBe(1_000 - FAILSAFE_ROUND_RESERVE_MS);
    expect(etcdBudget(10_000, 9_900, true, true)).toBeLessThan(0); // ask the members now
    expect(etcdBudget(null, 9_000, true, true)).toBeNull();
    expect(etcdBudget(10_000, 9_000, false, true)).toBeNull();
    expect(etcdBudget(10_000, 9_000, true, false)).toBeNull();
    // At the defaults a keepalive sent loop_wait after the last renewal keeps its whole retry_timeout.
    const d = dynamicConfigSchema.parse({});
    expect(etcdBudget(leaseDeadline(0, d.ttl, d), d.loop_wait * 1000, true, true)).toBe(d.retry_timeout * 1000);
  });

  it('gives up on a call that outlasts its budget with PGHA_DCS_TIMEOUT, and passes through one that does not', async () => {
    const slow = new Promise<string>((r) => setTimeout(() => r('late'), 200));
    await expect(withinBudget(slow, 20, 'read')).rejects.toMatchObject({ code: 'PGHA_DCS_TIMEOUT' });
    await expect(withinBudget(Promise.resolve('ok'), 20, 'read')).resolves.toBe('ok');
    await expect(withinBudget(Promise.resolve('ok'), null, 'read')).resolves.toBe('ok');
    await expect(withinBudget(new Promise<string>((r) => setTimeout(() => r('x'), 50)), -5, 'read')).rejects.toMatchObject({ code: 'PGHA_DCS_TIMEOUT' });
  });
});

describe('failsafe (properties)', () => {
  test.prop([fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: null }), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 2, max: 30 }), fc.double({ min: 0.3, max: 1.9, noNaN: true })])(
    'an extension only moves a live deadline later, and never past one ttl after the round, less fence_margin',
    (current, sentAt, ttl, margin) => {
      const d = failsafeDeadline(current, sentAt, { ttl, fence_margin: margin });
      if (current === null) expect(d).toBeNull();
      if (d !== null) {
        expect(d).toBeGreaterThan(current ?? Infinity);
        expect(d).toBeLessThanOrEqual(sentAt + ttl * 1000 - margin * 1000 + 1e-6); // floating point only
      }
    },
  );

  const TTL = 3000;
  const MARGIN = 750;
  // A leader cut off from etcd gets a round sent at `sentAt`; each member receives it `latency`
  // later. Whatever else a member observes, while the leader may still run as primary under the
  // extended deadline, a member that confirmed never acquires the key or promotes.
  test.prop([observationArb, fc.integer({ min: 0, max: 50_000 }), fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: TTL })], { numRuns: 3000 })(
    'a confirmed leader and a member that confirmed it are never both allowed to act as primary',
    (o, sentAt, latency, offset) => {
      const leader = cutOff({ now: sentAt + 50, self: { ...cutOff().self, leaseDeadline: sentAt + 1000 }, failsafe: { sentAt, asked: ['n2', 'n3'], confirmed: ['n2', 'n3'] } });
      const ext = decide(leader).actions.find((a) => a.kind === 'failsafe_extend');
      expect(ext).toBeDefined();
      const extendedDeadline = sentAt + TTL - MARGIN; // what Actor.failsafeExtend arms
      const received = sentAt + latency;
      // A member running as primary refuses (actsAsLeader), and without the key it can only
      // become one by acquiring it, which is what is checked below.
      fc.pre(!(o.local.running && o.local.role === 'primary'));
      const answer = answerFailsafeCall({ caller: 'n1', self: 'n2', failsafeMode: true, actsAsLeader: false, lastLeader: null, hold: null, now: received, ttlMs: TTL, callerTtlMs: TTL, recordLeader: 'n1' });
      if (!answer.ok) return;
      // The member at any time at which the leader may still be primary.
      const now = received + Math.min(offset, Math.max(0, extendedDeadline - received));
      if (now >= extendedDeadline) return;
      const member: Observation = { ...o, now, self: { ...o.self, name: 'n2', failsafeHold: answer.hold } };
      const { actions } = decide(member);
      expect(kinds(actions)).not.toContain('acquire');
      if (member.cluster?.leader?.name !== 'n2') expect(kinds(actions)).not.toContain('promote');
      expect(answer.hold.until).toBeGreaterThan(extendedDeadline);
    },
  );

  test.prop([observationArb], { numRuns: 3000 })('no extension unless every member asked confirmed, before the deadline', (o) => {
    const ext = decide(o).actions.find((a) => a.kind === 'failsafe_extend');
    if (ext === undefined) return;
    const r = o.failsafe;
    expect(r).toBeTruthy();
    expect(o.cluster).toBeNull();
    expect(o.fallbackConfig.failsafe_mode).toBe(true);
    expect(r?.asked.every((n) => r.confirmed.includes(n))).toBe(true);
    expect(o.self.leaseDeadline !== null && (r?.sentAt ?? Infinity) < o.self.leaseDeadline && o.now < o.self.leaseDeadline).toBe(true);
  });

  test.prop([observationArb], { numRuns: 3000 })('a missing confirmation past the deadline fences a running primary', (o) => {
    const t: Observation = {
      ...o, cluster: null, fallbackConfig: { ...o.fallbackConfig, pause: false, failsafe_mode: true },
      local: { ...o.local, running: true, role: 'primary' }, self: { ...o.self, leaseDeadline: o.now },
      failsafe: { sentAt: o.now - 100, asked: ['n2', 'n3'], confirmed: ['n3'] },
    };
    expect(kinds(decide(t).actions)).toEqual(['fence']);
  });
});

describe('writes of /failsafe that may still land', () => {
  const two: FailsafeRecord = { leader: 'n1', members: { n1: 'http://a:1', n2: 'http://b:1' } };
  const withN3 = { n1: 'http://a:1', n2: 'http://b:1', n3: 'http://c:1' };

  it('the leader asks every member of the record read and of its pending writes', () => {
    expect(failsafeToAsk(two, [])).toEqual(two);
    expect(failsafeToAsk(two, [{ record: { leader: 'n1', members: withN3 }, expected: '5' }])).toEqual({ leader: 'n1', members: withN3 });
    expect(failsafeToAsk(two, [{ record: { leader: 'n1', members: { n2: 'http://other:1' } }, expected: '5' }])).toEqual(two); // the URL read wins
    expect(failsafeToAsk(null, [{ record: { leader: 'n1', members: withN3 }, expected: '5' }])).toBeNull();
  });

  it('remembers a write, done or failed, while /failsafe still has the revision it expected', () => {
    const leaderObs = (rev: string) => obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: clusterView({ config: FS, failsafe: two, revisions: { ...clusterView().revisions, failsafe: rev } }) });
    const write = { kind: 'write_failsafe' as const, record: { leader: 'n1', members: withN3 }, expected: '5' };
    const failed = remember(initialMemory, leaderObs('5'), [{ action: write, ok: false, error: 'PGHA_DCS_TIMEOUT: slow', retryable: true }]);
    expect(failed.failsafeWrites).toEqual([{ record: { leader: 'n1', members: withN3 }, expected: '5' }]);
    // Failing again at the same revision keeps one entry, not one per loop.
    expect(remember(failed, leaderObs('5'), [{ action: write, ok: false, error: 'PGHA_DCS_TIMEOUT: slow', retryable: true }]).failsafeWrites).toHaveLength(1);
    // etcd unreachable next loop: nothing read, nothing forgotten.
    const blind = remember(failed, { ...leaderObs('5'), cluster: null }, []);
    expect(blind.failsafeWrites).toEqual(failed.failsafeWrites);
    // Read again at the same revision: the write may still land.
    expect(remember(blind, leaderObs('5'), []).failsafeWrites).toHaveLength(1);
    // /failsafe moved on: the write landed (the read shows it) or never will.
    expect(remember(blind, leaderObs('6'), []).failsafeWrites).toEqual([]);
    // A delete (record null) adds no member.
    expect(remember(initialMemory, leaderObs('5'), [{ action: { ...write, record: null }, ok: true }]).failsafeWrites).toEqual([]);
  });
});
