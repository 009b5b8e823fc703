// The short form of the fault-injection suite on the systemd backend (the long one is
// `npm run chaos -- --backend systemd`): three Debian containers with systemd as PID 1 running the
// shipped unit (lab/chaos/nspawn-cluster.ts), clients writing through HAProxy all along, and the
// fixed schedule quick-systemd: a frozen primary's unit killed by systemd's own watchdog, the
// primary's agent killed alone, the primary cut off from etcd. It fails on any acknowledged write
// lost (synchronous mode), on split brain, when the cluster does not converge after a fault, and
// when the lab leaves anything behind.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasNetnsSupport } from '../../lab/netlab.ts';
import { labLeftovers } from '../../lab/nspawn.ts';
import { PREFIX } from '../../lab/chaos/nspawn-cluster.ts';
import { explain, runChaos, violations } from '../../lab/chaos/runner.ts';

const why = hasNetnsSupport() ?? (existsSync('/usr/bin/systemd-nspawn') ? null : 'systemd-nspawn is missing');

describe.skipIf(why !== null)('fault injection under a real systemd (short form)', () => {
  // 45 s on a quiet 2-core machine (the containers boot and join one at a time in ~11 s, then three
  // faults of 7-10 s each), about 3 min when it is loaded. A fresh machine first builds the root
  // image (debootstrap, ~3 min): 15 min is a lab that hangs.
  it('systemd\'s watchdog kills a frozen primary\'s unit; no acknowledged write lost, no split brain', async () => {
    const r = await runChaos({ backend: 'systemd', seed: 1, faults: 0, syncMode: 'on', scheduleName: 'quick-systemd', log: (l) => console.log(l) });
    expect(violations(r), explain(r)).toEqual([]);
    expect(r.converged).toBe(true);
    expect(r.backend).toBe('systemd');
    expect(r.verdict?.acked ?? 0).toBeGreaterThan(200);
    // The watchdog that fired is the container's systemd (its journal says "Watchdog timeout"),
    // on the frozen primary: nothing emulates it on this backend.
    const frozen = r.events.find((e) => e.kind === 'freeze-primary-node')!;
    expect(frozen.watchdogKills, 'systemd\'s watchdog did not kill the frozen primary').toContain(frozen.primaryBefore);
    // Each fault took the primary away (killed or fenced): three new timelines at least.
    expect(r.verdict?.timelines.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(labLeftovers(PREFIX)).toEqual([]);
  }, 900_000);
});
