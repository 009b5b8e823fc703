// remember(): the agent's memory between loops, as a pure function of the last memory, the
// observation and the outcomes of the steps that ran. One row per rule, then properties.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decide } from '../../src/ha/decide.ts';
import { failsafeDeadline, leaseDeadline } from '../../src/ha/lease.ts';
import { initialMemory, perceive, remember, retainSlots, tagsFor, type Memory } from '../../src/ha/memory.ts';
import type { Action, Observation, Outcome } from '../../src/ha/types.ts';
import { clusterView, defaultTags, dyn, localPg, member, memoryArb, obs, observationArb } from '../support/observations.ts';

const ok = (action: Action, facts: Partial<Extract<Outcome, { ok: true }>> = {}): Outcome => ({ action, ok: true, ...facts });
const failed = (action: Action, retryable = false, over: { vetoedAt?: number } = {}): Outcome => ({ action, ok: false, error: 'x', retryable, ...over });
const start: Action = { kind: 'start', as: 'standby', upstream: 'n1' };
const rewind: Action = { kind: 'rewind', from: 'n1' };
const reclone: Action = { kind: 'reclone', from: 'n1' };
const down = { running: false, role: null, streaming: false } as const;

interface Row {
  name: string;
  memory?: Partial<Memory>;
  o?: Parameters<typeof obs>[0];
  outcomes?: Outcome[];
  expect: Partial<Memory>;
}

const rows: Row[] = [
  { name: 'nothing happened: nothing changes', expect: { ...initialMemory, streamedTimeline: 1 } },
  { name: 'a failed start counts', memory: { startFailures: 1 }, o: { local: down }, outcomes: [failed(start)], expect: { startFailures: 2 } },
  { name: 'a start resets the count', memory: { startFailures: 2 }, o: { local: down }, outcomes: [ok(start)], expect: { startFailures: 0 } },
  { name: 'an operator restart that failed counts too', memory: { startFailures: 0 }, outcomes: [failed({ kind: 'start', as: 'primary', upstream: null })], expect: { startFailures: 1 } },
  { name: 'a rewind counts, while not streaming', o: { local: down }, memory: { rewindsWithoutStreaming: 1 }, outcomes: [ok(rewind), ok(start)], expect: { rewindsWithoutStreaming: 2, rewindUnusable: false } },
  { name: 'streaming resets the rewinds', o: { local: { streaming: true } }, memory: { rewindsWithoutStreaming: 2 }, expect: { rewindsWithoutStreaming: 0 } },
  { name: 'a failed start right after a rewind: the data is unusable', o: { local: down }, outcomes: [ok(rewind), failed(start)], expect: { rewindUnusable: true, startFailures: 1, rewindsWithoutStreaming: 1 } },
  { name: 'a failed start without a rewind: only counted', o: { local: down }, outcomes: [failed(start)], expect: { rewindUnusable: false, startFailures: 1 } },
  { name: 'pg_rewind failed: the data is unusable', o: { local: down }, outcomes: [failed(rewind)], expect: { rewindUnusable: true, rewindsWithoutStreaming: 1 } },
  { name: 'the leader was unreachable for pg_rewind: keep the data', o: { local: down }, outcomes: [failed(rewind, true)], expect: { rewindUnusable: false, rewindsWithoutStreaming: 1 } },
  { name: 'a fresh clone clears the unusable mark', o: { local: down }, memory: { rewindUnusable: true }, outcomes: [ok(reclone), failed(start)], expect: { rewindUnusable: false, startFailures: 1 } },
  { name: 'a standby following a leader stops streaming: the clock starts', o: { now: 5000, local: { streaming: false } }, expect: { notStreamingSince: 5000 } },
  { name: 'and keeps its start', o: { now: 9000, local: { streaming: false } }, memory: { notStreamingSince: 5000 }, expect: { notStreamingSince: 5000 } },
  { name: 'streaming again: the clock stops', o: { local: { streaming: true } }, memory: { notStreamingSince: 5000 }, expect: { notStreamingSince: null } },
  { name: 'no leader to follow: no clock', o: { local: { streaming: false }, cluster: clusterView({ leader: null }) }, memory: { notStreamingSince: 5000 }, expect: { notStreamingSince: null } },
  { name: 'a clone (after a reinitialize) clears it too', o: { local: down }, memory: { rewindUnusable: true }, outcomes: [ok({ kind: 'clone', from: 'n1' })], expect: { rewindUnusable: false } },
  { name: 'a streaming standby remembers its timeline', o: { local: { streaming: true, timeline: 3 } }, memory: { streamedTimeline: 2 }, expect: { streamedTimeline: 3 } },
  { name: 'the timeline only grows while a standby runs', o: { local: { streaming: false, timeline: 2 } }, memory: { streamedTimeline: 3 }, expect: { streamedTimeline: 3 } },
  { name: 'a stopped server forgets it', o: { local: down }, memory: { streamedTimeline: 3 }, expect: { streamedTimeline: null } },
  { name: 'a primary forgets it', o: { local: { role: 'primary', streaming: false } }, memory: { streamedTimeline: 3 }, expect: { streamedTimeline: null } },
  { name: 'a veto keeps us out for one ttl from when it came', o: { now: 1000, cluster: clusterView({ config: dyn({ ttl: 2 }) }) }, outcomes: [ok({ kind: 'acquire' }), failed({ kind: 'promote', reason: 'failover' }, false, { vetoedAt: 1500 })], expect: { vetoedUntil: 3500 } },
  { name: 'a failed promotion that was no veto: nothing', outcomes: [failed({ kind: 'promote', reason: 'failover' })], expect: { vetoedUntil: null } },
  { name: 'a renewal failed on etcd: ask the failsafe members first', outcomes: [failed({ kind: 'renew', fenceOnFailure: false }, true)], memory: { askMembersFirst: false }, expect: { askMembersFirst: true } },
  { name: 'a renewal refused (not ours): no', outcomes: [failed({ kind: 'renew', fenceOnFailure: false }, false)], expect: { askMembersFirst: false } },
  { name: 'asked once, then not again', memory: { askMembersFirst: true }, expect: { askMembersFirst: false } },
  { name: 'ensure_slots remembers the members seen now', o: { now: 7000, self: { name: 'n1' }, local: { role: 'primary', streaming: false } }, memory: { slotsSeen: { gone: 1000 } }, outcomes: [ok({ kind: 'ensure_slots', members: [], permanent: [] })], expect: { slotsSeen: { n2: 7000, n3: 7000, gone: 1000 } } },
  { name: 'and forgets one unseen for member_slots_ttl', o: { now: 1_802_000, self: { name: 'n1' }, local: { role: 'primary', streaming: false } }, memory: { slotsSeen: { gone: 1000 } }, outcomes: [failed({ kind: 'ensure_slots', members: [], permanent: [] })], expect: { slotsSeen: { n2: 1_802_000, n3: 1_802_000 } } },
  { name: 'no ensure_slots step: slots seen unchanged', memory: { slotsSeen: { gone: 1000 } }, expect: { slotsSeen: { gone: 1000 } } },
  { name: '/status written: remembered', outcomes: [ok({ kind: 'publish_leader_lsn', last: null }, { published: { lsn: 5, slots: 'null' } })], expect: { published: { lsn: 5, slots: 'null' } } },
  { name: 'synchronous setting changed: its position is remembered', outcomes: [ok({ kind: 'set_sync_names', names: ['n2'], count: 1 }, { syncChangedAt: 4096 })], memory: { syncChangedAt: 10 }, expect: { syncChangedAt: 4096 } },
  { name: 'unchanged: the position stays', outcomes: [ok({ kind: 'set_sync_names', names: ['n2'], count: 1 })], memory: { syncChangedAt: 10 }, expect: { syncChangedAt: 10 } },
];

describe('remember (table)', () => {
  it.each(rows)('$name', (r) => {
    const memory = { ...initialMemory, ...r.memory };
    const o = obs({ ...r.o, memory });
    expect(remember(memory, o, r.outcomes ?? [])).toMatchObject(r.expect);
  });
});

describe('perceive', () => {
  it('a standby reports the highest timeline it streamed, and what it replays', () => {
    const raw = localPg({ timeline: 1, replayTimeline: 1, streaming: false });
    expect(perceive(raw, { ...initialMemory, streamedTimeline: 2 })).toMatchObject({ timeline: 2, replayTimeline: 1 });
    expect(perceive(localPg({ role: 'primary', timeline: 1 }), { ...initialMemory, streamedTimeline: 2 }).timeline).toBe(1);
  });

  it('a primary carries the position read when the synchronous setting changed', () => {
    expect(perceive(localPg({ role: 'primary' }), { ...initialMemory, syncChangedAt: 77 }).syncChangedAt).toBe(77);
  });
});

describe('the deadline arithmetic (lease.ts)', () => {
  it('keepalive sent at t: t + ttl - fence_margin', () => {
    expect(leaseDeadline(10_000, 3, { fence_margin: 0.75 })).toBe(12_250);
  });
  it('a failsafe round only ever moves an armed deadline later', () => {
    const cfg = { ttl: 3, fence_margin: 0.75 };
    expect(failsafeDeadline(12_000, 11_000, cfg)).toBe(13_250);
    expect(failsafeDeadline(14_000, 11_000, cfg)).toBeNull();
    expect(failsafeDeadline(null, 11_000, cfg)).toBeNull();
  });
});

describe('remember (properties)', () => {
  const outcomeArb: fc.Arbitrary<Outcome> = fc.record({
    action: fc.constantFrom<Action>(start, rewind, reclone, { kind: 'renew', fenceOnFailure: false }, { kind: 'promote', reason: 'failover' }, { kind: 'ensure_slots', members: [], permanent: [] }),
    ok: fc.boolean(), retryable: fc.boolean(), at: fc.integer({ min: 0, max: 100_000 }),
  }).map(({ action, ok: good, retryable, at }) => (good ? ok(action) : failed(action, retryable, action.kind === 'promote' ? { vetoedAt: at } : {})));

  test.prop([memoryArb, observationArb, fc.array(outcomeArb, { maxLength: 4 })], { numRuns: 2000 })('never reads the clock, and is deterministic', (m, o, outs) => {
    expect(remember(m, { ...o, memory: m }, outs)).toEqual(remember(m, { ...o, memory: m }, outs));
  });

  test.prop([memoryArb, observationArb, fc.array(outcomeArb, { maxLength: 4 })], { numRuns: 2000 })('counts stay non-negative; starts count exactly', (m, o, outs) => {
    const next = remember(m, { ...o, memory: m }, outs);
    expect(next.startFailures).toBeGreaterThanOrEqual(0);
    expect(next.rewindsWithoutStreaming).toBeGreaterThanOrEqual(0);
    const starts = outs.filter((x) => x.action.kind === 'start');
    const last = starts.at(-1);
    if (last?.ok === true) {
      const after = outs.slice(outs.lastIndexOf(last) + 1).filter((x) => x.action.kind === 'start');
      expect(next.startFailures).toBe(after.length);
    }
    if (starts.length === 0) expect(next.startFailures).toBe(m.startFailures);
  });

  test.prop([memoryArb, observationArb], { numRuns: 2000 })('a streaming standby never rewinds, whatever it remembers', (m, o) => {
    const seen: Observation = { ...o, memory: m, local: { ...o.local, running: true, role: 'standby', streaming: true } };
    const kinds = decide(seen).actions.map((a) => a.kind);
    expect(kinds).not.toContain('rewind');
    expect(kinds).not.toContain('reclone');
    expect(remember(m, seen, []).rewindsWithoutStreaming).toBe(0);
  });

  test.prop([memoryArb, fc.integer({ min: 0, max: 100_000 })], { numRuns: 500 })('a vetoed member is nofailover exactly until vetoedUntil', (m, now) => {
    const t = tagsFor(defaultTags, m, now);
    expect(t.nofailover).toBe(m.vetoedUntil !== null && now < m.vetoedUntil);
  });

  test.prop([fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.integer({ min: 0, max: 10_000 })), fc.subarray(['a', 'b', 'c']), fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 10_000 })])(
    'slots: every member seen now is kept, a remembered one only within the ttl', (seen, current, now, ttl) => {
      fc.pre(Object.values(seen).every((t) => t <= now));
      const kept = retainSlots(seen, current, now, ttl);
      for (const n of current) expect(kept[n]).toBe(now);
      for (const [n, at] of Object.entries(kept)) if (!current.includes(n)) expect(now - at).toBeLessThanOrEqual(ttl);
    });
});

describe('decide reads the memory', () => {
  it('a leader keeps the slot of a member gone less than member_slots_ttl', () => {
    const o = obs({ self: { name: 'n1' }, local: { role: 'primary' }, memory: { slotsSeen: { n4: 9000 } }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running', upstream: null }), member('n2')] }) });
    expect(decide(o).actions.find((a) => a.kind === 'ensure_slots')).toMatchObject({ members: ['n2', 'n4'] });
  });
});
