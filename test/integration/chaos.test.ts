// The short form of the fault-injection suite (the long one is `npm run chaos`): the fixed
// schedules of lab/chaos/faults.ts against a cluster whose nodes and etcd members each live in a
// network namespace, with clients writing through HAProxy all along. It fails on any acknowledged
// write lost in synchronous mode, on split brain in any mode, and when the cluster does not
// converge after a fault; the message carries the schedule and the command that replays it.
import { describe, expect, it } from 'vitest';
import { hasNetnsSupport } from '../../lab/netlab.ts';
import { explain, runChaos, violations } from '../../lab/chaos/runner.ts';

const why = hasNetnsSupport();

// Each fault takes its hold time plus the time to converge; fourteen of them and a cluster start
// fit in well under ten minutes even on a loaded 2-core machine.
describe.skipIf(why !== null)('fault injection in network namespaces (short form)', () => {
  it('loses no acknowledged write and never runs two primaries in synchronous mode, through every fault kind', async () => {
    const r = await runChaos({ seed: 1, faults: 0, syncMode: 'on', scheduleName: 'quick-sync', log: (l) => console.log(l) });
    expect(violations(r), explain(r)).toEqual([]);
    expect(r.converged).toBe(true);
    expect(r.verdict?.acked ?? 0).toBeGreaterThan(500);
    // Faults that take the primary away must have produced a new timeline.
    expect(r.verdict?.timelines.length ?? 0).toBeGreaterThan(2);
  }, 600_000);

  it('never runs two primaries in asynchronous mode under freezes, partitions and crashes', async () => {
    const r = await runChaos({ seed: 1, faults: 0, syncMode: 'off', scheduleName: 'quick-async', log: (l) => console.log(l) });
    expect(violations(r), explain(r)).toEqual([]);
    expect(r.converged).toBe(true);
    // The emulated systemd watchdog (outside the node) is at work: it killed a frozen primary's
    // unit. Not necessarily every one: a WATCHDOG=1 caught in flight by the freeze arrives at the
    // thaw and postpones it (docs/data-safety.md), and the agent then fences itself.
    const frozen = r.events.filter((x) => x.kind === 'freeze-primary-node' || x.kind === 'freeze-primary-agent');
    expect(frozen.some((e) => e.watchdogKills.includes(e.primaryBefore)), 'the watchdog never fired on a frozen primary').toBe(true);
    console.log(`asynchronous mode: ${r.verdict?.lost.length ?? '?'} acknowledged writes lost (allowed within maximum_lag_on_failover)`);
  }, 360_000);
});
