// The delay faults of the fault-injection suite (lab/chaos/faults.ts): the tolerance arithmetic at
// pgha's defaults, how a delay fault drives a backend, and the checker's rule that a delay at or
// below the tolerance must not move the primary.
import { describe, expect, it } from 'vitest';
import type { ChaosBackend, ChaosNode } from '../../lab/chaos/backend.ts';
import { DELAY_FAULTS, FAULT_KINDS, FAULT_KIND_SETS, NETNS_FAULT_KINDS, applyFault, delayToleranceMs, schedule } from '../../lab/chaos/faults.ts';
import { falseFailover, violations, type FaultEvent, type RunResult } from '../../lab/chaos/runner.ts';
import { dynamicConfigSchema } from '../../src/config/schema.ts';

const defaults = dynamicConfigSchema.parse({});

describe('delay tolerance', () => {
  it('is 100 ms each way on the etcd link at the defaults, and unbounded between the nodes', () => {
    // (ttl 2 - fence_margin 0.5 = 1.5 s, less 0.3 s of the loop's own work) / (2 x (5 round trips + the renewal's own)).
    expect(delayToleranceMs('etcd', defaults)).toBe(100);
    expect(delayToleranceMs('peers', defaults)).toBe(Infinity);
  });

  it('grows with the ttl and is capped by retry_timeout', () => {
    expect(delayToleranceMs('etcd', { ...defaults, ttl: 10 })).toBe(Math.floor((defaults.retry_timeout * 1000) / 2));
    expect(delayToleranceMs('etcd', { ...defaults, ttl: 3 })).toBe(Math.floor((2500 - 300) / 12));
  });

  it('puts 50 ms below it and 300 ms and 1 s above it on the etcd link', () => {
    const tol = delayToleranceMs('etcd', defaults);
    expect(DELAY_FAULTS['delay-primary-etcd-50ms']!.ms).toBeLessThanOrEqual(tol);
    expect(DELAY_FAULTS['delay-primary-etcd-300ms']!.ms).toBeGreaterThan(tol);
    expect(DELAY_FAULTS['delay-primary-etcd-1s']!.ms).toBeGreaterThan(tol);
  });
});

describe('delay faults', () => {
  it('are netns-only kinds in the named set `delay`, so every seed draws the schedule it drew before', () => {
    const kinds = Object.keys(DELAY_FAULTS);
    expect(FAULT_KIND_SETS.delay).toEqual(kinds);
    for (const k of kinds) {
      expect(NETNS_FAULT_KINDS as readonly string[]).toContain(k);
      expect(FAULT_KINDS as readonly string[]).not.toContain(k);
    }
    expect(new Set(schedule(1, 16, 2, FAULT_KIND_SETS.delay!).map((s) => s.kind)).size).toBeGreaterThan(1);
  });

  it('set the delay on the primary\'s link and take it back to 0 on heal', async () => {
    const calls: string[] = [];
    const nodes: ChaosNode[] = [{ name: 'n1', ip: '10.0.0.11' }, { name: 'n2', ip: '10.0.0.12' }];
    const b = { backend: 'netns', nodes, etcd: [], delayLink: (n: ChaosNode, link: string, ms: number) => calls.push(`${n.name} ${link} ${ms}`) } as unknown as ChaosBackend;
    const a = await applyFault(b, 'delay-primary-peers-300ms', nodes[0]!, () => 0);
    expect(a.delay).toEqual({ link: 'peers', ms: 300 });
    expect(a.target).toBe('n1 (peers, 300 ms)');
    await a.heal();
    const e = await applyFault(b, 'delay-primary-etcd-1s', nodes[1]!, () => 0);
    await e.heal();
    expect(calls).toEqual(['n1 peers 300', 'n1 peers 0', 'n2 etcd 1000', 'n2 etcd 0']);
  });

  it('are refused by a backend without delay proxies', async () => {
    const b = { backend: 'systemd', nodes: [], etcd: [] } as unknown as ChaosBackend;
    await expect(applyFault(b, 'delay-primary-etcd-50ms', { name: 'n1', ip: '1' }, () => 0)).rejects.toThrow(/cannot inject/);
  });
});

describe('false failover', () => {
  const ev = (ms: number, link: 'etcd' | 'peers', after: string): FaultEvent => ({
    kind: 'delay-primary-etcd-50ms', holdMs: 1000, index: 0, target: 'n1', primaryBefore: 'n1', primaryAfter: after, atMs: 0, convergedMs: 1,
    outage: null, doublePrimarySamples: 0, unprovokedHandover: false, watchdogKills: [],
    delay: { link, ms, toleranceMs: delayToleranceMs(link, defaults) },
  });

  it('is a failover during a delay at or below the tolerance', () => {
    expect(falseFailover(ev(50, 'etcd', 'n2'))).toBe(true);
    expect(falseFailover(ev(1000, 'peers', 'n2'))).toBe(true);
    expect(falseFailover(ev(50, 'etcd', 'n1'))).toBe(false);
    expect(falseFailover(ev(300, 'etcd', 'n2'))).toBe(false);
  });

  it('fails the run', () => {
    const r = { events: [ev(300, 'peers', 'n3')], verdict: { splitBrain: [], lost: [] }, failure: null, syncMode: 'off' } as unknown as RunResult;
    expect(violations(r)).toEqual([expect.stringMatching(/^fault 1: .* moved the primary from n1 to n3: a false failover$/)]);
  });
});
