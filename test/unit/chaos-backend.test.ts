// The pure parts of the fault-injection suite's two backends (lab/chaos/backend.ts): which kinds
// each injects, how a fault maps onto a backend's primitives (the same for both), and that the
// command and the report name the backend.
import { describe, expect, it } from 'vitest';
import type { ChaosBackend, ChaosEtcd, ChaosNode } from '../../lab/chaos/backend.ts';
import { ALL_FAULT_KINDS, BACKEND_KINDS, FAULT_KINDS, FAULT_KIND_SETS, SYSTEMD_FAULT_KINDS, applyFault, schedule, type FaultKind } from '../../lab/chaos/faults.ts';
import { reproduceCommand, unsupportedKinds, type RunResult } from '../../lab/chaos/runner.ts';
import { lostByFault, renderReport } from '../../lab/chaos/report.ts';

/** A backend that only records which primitive a fault called, with what. */
function recorder(backend: 'netns' | 'systemd', optional: boolean): { b: ChaosBackend; calls: string[] } {
  const calls: string[] = [];
  const nodes: ChaosNode[] = [1, 2, 3].map((i) => ({ name: `n${i}`, ip: `10.0.0.${10 + i}` }));
  const etcd: ChaosEtcd[] = [1, 2, 3].map((i) => ({ name: `e${i}`, ip: `10.0.0.${20 + i}` }));
  const rec = (name: string) => (...args: unknown[]) => { calls.push(`${name}(${args.map((a) => (typeof a === 'object' && a !== null && 'name' in a ? (a as ChaosNode).name : JSON.stringify(a))).join(', ')})`); };
  const b = {
    backend, description: 'test', kinds: BACKEND_KINDS[backend], dir: '/nonexistent', nodes, etcd, haproxyPort: 1, pgPort: 2,
    crashNode: async (n: ChaosNode) => rec('crashNode')(n), restartNode: async (n: ChaosNode) => rec('restartNode')(n),
    freezeNode: rec('freezeNode'), thawNode: rec('thawNode'), freezeAgent: rec('freezeAgent'), thawAgent: rec('thawAgent'),
    killPostmaster: rec('killPostmaster'), partition: rec('partition'), isolate: rec('isolate'), lossy: rec('lossy'), healNetwork: rec('healNetwork'),
    killEtcd: rec('killEtcd'), startEtcd: rec('startEtcd'), signalEtcd: rec('signalEtcd'),
    ...(backend === 'netns' ? { signalWatchdog: rec('signalWatchdog'), etcdLeader: async () => etcd[1] } : {}),
    ...(optional ? {
      killAgent: rec('killAgent'), powerOff: async (n: ChaosNode) => rec('powerOff')(n),
      freezeMachine: rec('freezeMachine'), thawMachine: rec('thawMachine'),
    } : {}),
  } as unknown as ChaosBackend;
  return { b, calls };
}

async function faultCalls(kind: FaultKind, backend: 'netns' | 'systemd' = 'systemd'): Promise<string[]> {
  const { b, calls } = recorder(backend, backend === 'systemd');
  const applied = await applyFault(b, kind, b.nodes[0]!, () => 0);
  calls.push('--');
  await applied.heal();
  return calls;
}

describe('fault kinds per backend', () => {
  it('keeps the netns kinds (and so every netns schedule) as they were', () => {
    expect(BACKEND_KINDS.netns).toBe(FAULT_KINDS);
    expect(FAULT_KINDS).toHaveLength(14);
    expect(ALL_FAULT_KINDS.slice(0, 14)).toEqual([...FAULT_KINDS]);
  });

  it('has the systemd backend inject the systemd-only kinds and neither disk filling nor clock shifts', () => {
    for (const k of SYSTEMD_FAULT_KINDS) expect(BACKEND_KINDS.systemd).toContain(k);
    expect(BACKEND_KINDS.systemd).not.toContain('disk-full-primary');
    expect(BACKEND_KINDS.systemd).not.toContain('clock-jump-primary');
    expect(unsupportedKinds('netns', ['crash-primary', 'kill-primary-agent', 'freeze-primary-container'])).toEqual(['kill-primary-agent', 'freeze-primary-container']);
    expect(unsupportedKinds('systemd', FAULT_KIND_SETS['systemd-core']!)).toEqual([]);
    expect(unsupportedKinds('systemd', ['disk-full-primary'])).toEqual(['disk-full-primary']);
  });

  it('draws a schedule only from the kinds it is given', () => {
    const s = schedule(5, 200, 2, BACKEND_KINDS.systemd);
    expect(new Set(s.map((f) => f.kind))).toEqual(new Set(BACKEND_KINDS.systemd));
    expect(() => schedule(5, 1, 2, [])).toThrow(/no fault kinds/);
  });
});

describe('faults through the backend interface', () => {
  it('cuts the primary off from the etcd members, both ways or only its own packets', async () => {
    expect(await faultCalls('partition-primary-etcd')).toEqual(['partition(n1, ["10.0.0.21","10.0.0.22","10.0.0.23"], "both")', '--', 'healNetwork(n1)']);
    expect(await faultCalls('oneway-primary-etcd')).toEqual(['partition(n1, ["10.0.0.21","10.0.0.22","10.0.0.23"], "out")', '--', 'healNetwork(n1)']);
  });

  it('cuts the primary off from the other members only', async () => {
    expect(await faultCalls('partition-primary-peers')).toEqual(['partition(n1, ["10.0.0.12","10.0.0.13"], "both")', '--', 'healNetwork(n1)']);
  });

  it('maps crashes, freezes and the systemd-only kinds onto their primitives', async () => {
    expect(await faultCalls('crash-primary')).toEqual(['crashNode(n1)', '--', 'restartNode(n1)']);
    expect(await faultCalls('crash-replica')).toEqual(['crashNode(n2)', '--', 'restartNode(n2)']);
    expect(await faultCalls('freeze-primary-node')).toEqual(['freezeNode(n1)', '--', 'thawNode(n1)']);
    expect(await faultCalls('freeze-primary-agent')).toEqual(['freezeAgent(n1)', '--', 'thawAgent(n1)']);
    expect(await faultCalls('kill-primary-agent')).toEqual(['killAgent(n1)', '--']);
    expect(await faultCalls('poweroff-primary')).toEqual(['powerOff(n1)', '--', 'restartNode(n1)']);
    expect(await faultCalls('freeze-primary-container')).toEqual(['freezeMachine(n1)', '--', 'thawMachine(n1)']);
    expect(await faultCalls('freeze-thaw-node', 'netns')).toEqual(['signalWatchdog(n1, "SIGSTOP")', 'freezeNode(n1)', '--', 'thawNode(n1)', 'signalWatchdog(n1, "SIGCONT")']);
    expect(unsupportedKinds('netns', ['freeze-thaw-node'])).toEqual([]);
    expect(unsupportedKinds('systemd', ['freeze-thaw-node'])).toEqual(['freeze-thaw-node']);
    expect(await faultCalls('etcd-quorum-loss')).toEqual(['signalEtcd(e1, "SIGSTOP")', 'signalEtcd(e2, "SIGSTOP")', '--', 'signalEtcd(e1, "SIGCONT")', 'signalEtcd(e2, "SIGCONT")']);
  });

  it('kills or freezes the etcd member that is the leader now, the node with it', async () => {
    expect(await faultCalls('kill-etcd-leader', 'netns')).toEqual(['killEtcd(e2)', '--', 'startEtcd(e2)']);
    expect(await faultCalls('freeze-etcd-and-node', 'netns')).toEqual(['signalEtcd(e2, "SIGSTOP")', 'freezeNode(n1)', '--', 'thawNode(n1)', 'signalEtcd(e2, "SIGCONT")']);
    expect(unsupportedKinds('netns', ['kill-etcd-leader', 'freeze-etcd-and-node'])).toEqual([]);
    expect(unsupportedKinds('systemd', ['kill-etcd-leader', 'freeze-etcd-and-node'])).toEqual(['kill-etcd-leader', 'freeze-etcd-and-node']);
    await expect(faultCalls('kill-etcd-leader', 'systemd')).rejects.toThrow('the systemd backend cannot inject kill-etcd-leader');
  });

  it('refuses a kind whose primitive the backend lacks, before touching anything', async () => {
    await expect(faultCalls('kill-primary-agent', 'netns')).rejects.toThrow('the netns backend cannot inject kill-primary-agent');
    await expect(faultCalls('disk-full-primary', 'systemd')).rejects.toThrow('the systemd backend cannot inject disk-full-primary');
    const { b, calls } = recorder('systemd', true);
    await expect(applyFault(b, 'clock-jump-primary', b.nodes[0]!, () => 0)).rejects.toThrow(/cannot inject clock-jump-primary/);
    expect(calls).toEqual([]);
  });
});

describe('the backend in the command and the report', () => {
  it('reproduces a systemd run with --backend systemd, a netns run as before', () => {
    expect(reproduceCommand({ seed: 7, faults: 120, syncMode: 'on' })).toBe('npm run chaos -- --seed 7 --faults 120 --sync on');
    expect(reproduceCommand({ seed: 7, faults: 12, syncMode: 'off', backend: 'systemd', kinds: ['crash-primary'] }))
      .toBe('npm run chaos -- --backend systemd --seed 7 --faults 12 --sync off --kinds crash-primary');
  });

  const run = (backend: 'netns' | 'systemd'): RunResult => ({
    backend, backendDescription: `${backend} words`, seed: 1, syncMode: 'on', events: [], verdict: null, converged: false,
    failure: null, ops: 0, command: 'x', durationMs: 1,
  });

  it('says which backend produced the report and who the watchdog was', () => {
    const netns = renderReport([run('netns')], 'npm run chaos');
    expect(netns).toContain('Backend: **netns** (netns words).');
    expect(netns).toContain('the emulated systemd watchdog');
    const sd = renderReport([run('systemd'), run('systemd')], 'npm run chaos -- --backend systemd', 'Linux 6.1');
    expect(sd).toMatch(/^# Chaos report: systemd backend/);
    expect(sd.match(/Backend: \*\*systemd\*\*/g)).toHaveLength(1);
    expect(sd).toContain('Linux 6.1');
    expect(sd).toContain('## Run: systemd backend, seed 1');
    expect(sd).toContain('the container\'s own systemd logged `Watchdog timeout`');
    expect(sd).not.toContain('emulated');
  });
});

describe('lost writes by fault', () => {
  const ev = (index: number, atMs: number, holdMs: number, convergedMs: number | null, primaryAfter: string) => ({
    kind: 'crash-primary' as const, holdMs, index, target: 'n1', primaryBefore: 'n1', primaryAfter, atMs, convergedMs, outage: null,
    doublePrimarySamples: 0, unprovokedHandover: false, watchdogKills: [],
  });
  const op = (id: number, completeMs: number, tli: number) => ({ client: 1, id, invokeMs: completeMs - 5, completeMs, outcome: 'ok' as const, tli });
  it('puts each lost write on the first fault not yet converged when it was acknowledged', () => {
    const events = [ev(0, 1000, 500, 800, 'n1'), ev(1, 5000, 1000, 3000, 'n2')];
    const verdict = { lost: [op(1, 1700, 1), op(2, 4900, 2), op(3, 5100, 2), op(4, 9000, 3)] } as unknown as RunResult['verdict'];
    expect(lostByFault({ events, verdict })).toEqual([
      'fault 1 (crash-primary on n1, primary n1 -> n1): 1, acknowledged 0.70 to 0.70 s after the fault began, timeline 1',
      'fault 2 (crash-primary on n1, primary n1 -> n2): 2, acknowledged -0.10 to 0.10 s after the fault began, timeline 2',
      'after the last fault: 1, timeline 3',
    ]);
    expect(lostByFault({ events, verdict: null })).toEqual([]);
  });
});
