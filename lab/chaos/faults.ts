// The faults of the fault-injection suite and the seeded schedule that picks them. Each fault is
// applied to the cluster as it is when the fault starts (its "primary" is whoever is primary
// then), held for a duration, and healed; the runner then waits for the cluster to converge.
// Faults act through the primitives of a ChaosBackend (backend.ts), so each kind means the same on
// every backend that has it.
import type { BackendName, ChaosBackend, ChaosNode, DelayLink } from './backend.ts';
import type { DynamicConfig } from '../../src/config/schema.ts';

export const FAULT_KINDS = [
  'crash-primary', // SIGKILL every process of the primary's node (agent, fencer, PostgreSQL)
  'crash-replica', // the same on a standby
  'freeze-primary-node', // SIGSTOP every process of the primary's node: a hung host
  'freeze-primary-agent', // SIGSTOP the primary's agent alone: the fencing process must act
  'kill-postmaster', // SIGKILL the primary's postmaster; the agent is alive
  'partition-primary-etcd', // the primary loses etcd, still sees the standbys and clients
  'partition-primary-peers', // the primary loses the standbys, still sees etcd and clients
  'isolate-primary', // the primary's network link goes down: it sees nobody
  'oneway-primary-etcd', // the primary's packets to etcd are dropped; etcd's still reach it
  'kill-etcd-member', // SIGKILL one etcd member (quorum kept)
  'etcd-quorum-loss', // SIGSTOP two of three etcd members
  'disk-full-primary', // the filesystem under the primary's data directory fills up
  'clock-jump-primary', // the primary's agent's wall clock jumps an hour ahead or back
  'lossy-primary-link', // 30 % of the packets on the primary's link are dropped, both ways
] as const;

/**
 * Kinds only the netns backend injects, picked by --kinds or a fixed schedule, never drawn by a
 * seed (so every seed draws the same schedule as before).
 */
export const NETNS_FAULT_KINDS = [
  'freeze-thaw-node', // freeze-primary-node with the node's emulated watchdog held too: a paused VM, only the lease witness guards
  'kill-etcd-leader', // SIGKILL the etcd member that is the leader now: etcd renews no lease until it has elected another
  'freeze-etcd-and-node', // SIGSTOP the etcd leader and every process of the primary's node together: one host hosting both hangs
  'delay-primary-etcd-50ms', // the primary's agent's etcd traffic held 50 ms each way (delay proxies): below the tolerance
  'delay-primary-etcd-300ms', // ... 300 ms each way: above the tolerance, the primary may fence and fail over
  'delay-primary-etcd-1s', // ... 1 s each way
  'delay-primary-peers-300ms', // every connection between the primary and the standbys (replication, REST) held 300 ms each way
  'delay-primary-peers-1s', // ... 1 s each way
] as const;

/**
 * Kinds only a backend with a real systemd can inject (the systemd backend): they need the unit
 * around the agent, or a whole machine with its own init. Kept out of FAULT_KINDS so that a seed
 * draws the same schedule on the netns backend as before.
 */
export const SYSTEMD_FAULT_KINDS = [
  'kill-primary-agent', // SIGKILL the primary's agent alone: KillMode=mixed, Restart=on-failure
  'poweroff-primary', // the primary's container powers off cleanly (systemctl poweroff), then boots again
  'freeze-primary-container', // every process of the primary's container, its systemd too: a hung VM
] as const;

export const ALL_FAULT_KINDS = [...FAULT_KINDS, ...SYSTEMD_FAULT_KINDS, ...NETNS_FAULT_KINDS] as const;
export type FaultKind = (typeof ALL_FAULT_KINDS)[number];

/** The delay faults (netns only, through lab/delay-proxy.ts): which link of the primary, and the delay each way. */
export const DELAY_FAULTS: Partial<Record<FaultKind, { link: DelayLink; ms: number }>> = {
  'delay-primary-etcd-50ms': { link: 'etcd', ms: 50 },
  'delay-primary-etcd-300ms': { link: 'etcd', ms: 300 },
  'delay-primary-etcd-1s': { link: 'etcd', ms: 1000 },
  'delay-primary-peers-300ms': { link: 'peers', ms: 300 },
  'delay-primary-peers-1s': { link: 'peers', ms: 1000 },
};

/**
 * etcd calls one after the other in a primary's HA loop iteration (src/agent/loop.ts): a
 * keepalive and the read of the cluster (observe), a keepalive and the leader-key check
 * (renewLeader), the member key (publish; it changes with every write).
 */
export const ETCD_ROUND_TRIPS_PER_LOOP = 5;
/** A loop iteration's own work (PostgreSQL's state, decide) and scheduling on a loaded 2-core machine. */
export const LOOP_LOCAL_MS = 300;

/**
 * The largest delay each way on `link` at which the primary must keep its lease, so no failover
 * may happen (docs/chaos.md, "Delay"). etcd: the fence deadline is the renewal's send time + ttl -
 * fence_margin; the next renewal is sent one iteration later (loop_wait, or the iteration's
 * ETCD_ROUND_TRIPS_PER_LOOP round trips and its own work when longer) and acknowledged one round
 * trip after that; every call must also answer within retry_timeout. Peers: the lease goes
 * through etcd alone (failsafe calls are made only while etcd is unreachable), so no delay
 * between the members may cost the primary its lease.
 */
export function delayToleranceMs(link: DelayLink, c: Pick<DynamicConfig, 'ttl' | 'fence_margin' | 'loop_wait' | 'retry_timeout'>): number {
  if (link === 'peers') return Infinity;
  const budgetMs = (c.ttl - c.fence_margin) * 1000;
  const byIteration = (budgetMs - LOOP_LOCAL_MS) / (2 * (ETCD_ROUND_TRIPS_PER_LOOP + 1));
  const byLoopWait = (budgetMs - c.loop_wait * 1000) / 2;
  return Math.floor(Math.min(byIteration, byLoopWait, (c.retry_timeout * 1000) / 2));
}

/** The kinds the systemd backend injects: no disk filling and no clock shift (both need the agent's environment changed, and the unit stays unchanged). */
export const SYSTEMD_BACKEND_KINDS: readonly FaultKind[] = [
  ...FAULT_KINDS.filter((k) => k !== 'disk-full-primary' && k !== 'clock-jump-primary'), ...SYSTEMD_FAULT_KINDS,
];

/** The kinds each backend injects; a run without --kinds draws from these. */
export const BACKEND_KINDS: Record<BackendName, readonly FaultKind[]> = { netns: FAULT_KINDS, systemd: SYSTEMD_BACKEND_KINDS };

/**
 * Named sets for `--kinds`. v1: the twelve kinds before the clock jump and the lossy link were
 * added; the seeds in docs/chaos.md's bug table were drawn from it (`--kinds v1` replays them).
 */
export const FAULT_KIND_SETS: Record<string, readonly FaultKind[]> = {
  v1: FAULT_KINDS.slice(0, 12),
  /** What the systemd backend is for: freezes, crashes, partitions and the watchdog. */
  'systemd-core': ['freeze-primary-node', 'freeze-primary-agent', 'freeze-primary-container', 'kill-primary-agent', 'kill-postmaster',
    'crash-primary', 'poweroff-primary', 'partition-primary-etcd', 'partition-primary-peers', 'isolate-primary'],
  /** The delay faults (netns only): the primary's etcd link and its links to the standbys. */
  delay: Object.keys(DELAY_FAULTS) as FaultKind[],
  /** Every kind the netns backend injects, the ones never drawn by default too: the long report's set. */
  'netns-all': [...FAULT_KINDS, ...NETNS_FAULT_KINDS],
};

/** The share of packets lossy-primary-link drops. */
export const LOSS = 0.3;

export interface FaultSpec { kind: FaultKind; holdMs: number }

/** mulberry32: a tiny seeded PRNG, so `--seed N` reproduces a schedule exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hold times drawn, in TTLs: from a blip shorter than the lease to well past it. */
const DEFAULT_HOLD_TTLS: readonly [number, number] = [0.5, 3];
/**
 * Kinds held for other ranges. freeze-thaw-node: issue #14 asks for freezes of 1-4 x ttl (a
 * paused VM always outlives the lease there, so every freeze tests the witness, not a blip).
 */
const HOLD_TTLS: Partial<Record<FaultKind, readonly [number, number]>> = { 'freeze-thaw-node': [1, 4] };

/**
 * A schedule of `count` faults from `seed`. Hold times are drawn around the TTL (DEFAULT_HOLD_TTLS,
 * HOLD_TTLS): shorter than it (a blip the cluster must ride out) up to well beyond it.
 */
export function schedule(seed: number, count: number, ttlS: number, kinds: readonly FaultKind[] = FAULT_KINDS): FaultSpec[] {
  if (kinds.length === 0) throw new Error('no fault kinds to draw from');
  const r = rng(seed);
  const out: FaultSpec[] = [];
  for (let i = 0; i < count; i++) {
    const kind = kinds[Math.floor(r() * kinds.length)]!;
    const [lo, hi] = HOLD_TTLS[kind] ?? DEFAULT_HOLD_TTLS;
    const holdMs = Math.round((lo + r() * (hi - lo)) * ttlS * 1000);
    out.push({ kind, holdMs });
  }
  return out;
}

export interface Applied {
  heal(): Promise<void>;
  target: string;
  /** A delay fault: the link, the delay each way. */
  delay?: { link: DelayLink; ms: number };
}

const others = (c: ChaosBackend, p: ChaosNode) => c.nodes.filter((n) => n !== p);

/** A backend's optional primitive, or an error naming the backend and the kind. */
function need<T>(c: ChaosBackend, kind: FaultKind, f: T | undefined): T {
  if (f === undefined) throw new Error(`the ${c.backend} backend cannot inject ${kind}`);
  return f;
}

/**
 * The etcd leader of the moment; a kind that targets it fails when the backend cannot tell or etcd
 * has none for 10 s. The previous fault's heal may have restarted etcd members, and the cluster
 * converges (pgha's view) before etcd has always elected its leader: polled every 100 ms, 10 s
 * being several of etcd's election timeouts (1 s) even on a loaded host.
 */
async function etcdLeaderOf(c: ChaosBackend, kind: FaultKind): Promise<ChaosBackend['etcd'][number]> {
  const leader = need(c, kind, c.etcdLeader);
  const until = Date.now() + 10_000;
  for (;;) {
    const e = await leader.call(c);
    if (e !== null) return e;
    if (Date.now() >= until) throw new Error(`${kind}: no etcd member reported itself the leader for 10 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Apply a fault to the cluster whose current primary is `p`; returns how to heal it. */
export async function applyFault(c: ChaosBackend, kind: FaultKind, p: ChaosNode, pick: () => number): Promise<Applied> {
  const etcdIps = c.etcd.map((h) => h.ip);
  const healNet = { target: p.name, heal: async () => c.healNetwork(p) };
  switch (kind) {
    case 'crash-primary':
      await c.crashNode(p);
      return { target: p.name, heal: () => c.restartNode(p) };
    case 'crash-replica': {
      const r = others(c, p)[Math.floor(pick() * 2)]!;
      await c.crashNode(r);
      return { target: r.name, heal: () => c.restartNode(r) };
    }
    case 'freeze-primary-node':
      c.freezeNode(p);
      return { target: p.name, heal: async () => c.thawNode(p) };
    case 'freeze-thaw-node': {
      // The emulated systemd watchdog is held with the node, so nothing outside it acts; it resumes
      // once the thawed agent checks in again (a member without a lease does at once).
      const watchdog = need(c, kind, c.signalWatchdog);
      watchdog.call(c, p, 'SIGSTOP');
      c.freezeNode(p);
      return {
        target: p.name,
        heal: async () => {
          c.thawNode(p);
          // 3 s: the thawed agent learns it lost the lease and checks in again well within it.
          await new Promise((r) => setTimeout(r, 3000));
          watchdog.call(c, p, 'SIGCONT');
        },
      };
    }
    case 'freeze-primary-agent':
      c.freezeAgent(p);
      return { target: p.name, heal: async () => c.thawAgent(p) };
    case 'kill-postmaster':
      c.killPostmaster(p);
      return { target: p.name, heal: async () => undefined };
    case 'partition-primary-etcd':
      c.partition(p, etcdIps, 'both');
      return healNet;
    case 'partition-primary-peers':
      c.partition(p, others(c, p).map((n) => n.ip), 'both');
      return healNet;
    case 'isolate-primary':
      c.isolate(p);
      return healNet;
    case 'oneway-primary-etcd':
      c.partition(p, etcdIps, 'out');
      return healNet;
    case 'kill-etcd-member': {
      const e = c.etcd[Math.floor(pick() * 3)]!;
      c.killEtcd(e);
      return { target: e.name, heal: async () => c.startEtcd(e) };
    }
    case 'kill-etcd-leader': {
      const e = await etcdLeaderOf(c, kind);
      c.killEtcd(e);
      return { target: e.name, heal: async () => c.startEtcd(e) };
    }
    case 'freeze-etcd-and-node': {
      // The etcd leader and the primary's node freeze together (a host running both hangs): the
      // primary must be replaced while etcd first elects a new leader, whose promotion extends the
      // frozen primary's lease by a whole TTL. The emulated watchdog outside the node is not frozen.
      const e = await etcdLeaderOf(c, kind);
      c.signalEtcd(e, 'SIGSTOP');
      c.freezeNode(p);
      return { target: `${e.name}+${p.name}`, heal: async () => { c.thawNode(p); c.signalEtcd(e, 'SIGCONT'); } };
    }
    case 'etcd-quorum-loss': {
      const first = Math.floor(pick() * 3);
      const two = [c.etcd[first]!, c.etcd[(first + 1) % 3]!];
      for (const e of two) c.signalEtcd(e, 'SIGSTOP');
      return { target: two.map((e) => e.name).join('+'), heal: async () => { for (const e of two) c.signalEtcd(e, 'SIGCONT'); } };
    }
    case 'disk-full-primary': {
      const free = need(c, kind, c.freeDisk);
      need(c, kind, c.fillDisk).call(c, p);
      return { target: p.name, heal: async () => free.call(c, p) };
    }
    case 'clock-jump-primary': {
      const shift = need(c, kind, c.shiftClock);
      const log = need(c, kind, c.agentLog);
      const offset = (pick() < 0.5 ? -1 : 1) * 3_600_000;
      shift.call(c, p, offset);
      return {
        target: `${p.name} (${offset > 0 ? '+' : '-'}1 h)`,
        heal: async () => {
          // A fault that did not happen proves nothing: the agent's log says when it jumped.
          if (!log.call(c, p).includes(`clock-shift: offset ${offset}`)) throw new Error(`${p.name}'s agent did not take the clock jump`);
          shift.call(c, p, 0);
        },
      };
    }
    case 'lossy-primary-link':
      c.lossy(p, LOSS);
      return healNet;
    case 'delay-primary-etcd-50ms':
    case 'delay-primary-etcd-300ms':
    case 'delay-primary-etcd-1s':
    case 'delay-primary-peers-300ms':
    case 'delay-primary-peers-1s': {
      const d = DELAY_FAULTS[kind]!;
      const delay = need(c, kind, c.delayLink);
      delay.call(c, p, d.link, d.ms);
      return { target: `${p.name} (${d.link}, ${d.ms} ms)`, delay: d, heal: async () => delay.call(c, p, d.link, 0) };
    }
    case 'kill-primary-agent':
      need(c, kind, c.killAgent).call(c, p);
      return { target: p.name, heal: async () => undefined };
    case 'poweroff-primary':
      await need(c, kind, c.powerOff).call(c, p);
      return { target: p.name, heal: () => c.restartNode(p) };
    case 'freeze-primary-container': {
      const thaw = need(c, kind, c.thawMachine);
      need(c, kind, c.freezeMachine).call(c, p);
      return { target: p.name, heal: async () => thaw.call(c, p) };
    }
  }
}

/**
 * The fixed schedules of the short form run by `npm test`: every fault kind once, held past the
 * TTL where holding matters, in synchronous mode; the kinds that threaten split brain again in
 * asynchronous mode. `npm run chaos -- --schedule NAME` replays one.
 */
export const FIXED_SCHEDULES: Record<string, { syncMode: 'on' | 'off'; faults: FaultSpec[] }> = {
  'quick-sync': {
    syncMode: 'on',
    faults: [...FAULT_KINDS, ...NETNS_FAULT_KINDS].map((kind) => ({ kind, holdMs: kind === 'crash-replica' || kind === 'kill-postmaster' ? 1500 : 5000 })),
  },
  'quick-async': {
    syncMode: 'off',
    // The whole-node freeze is here since the lab emulates systemd's watchdog outside the node
    // (cluster.ts): before, a thawed node's PostgreSQL could commit one write before its fencing
    // process killed it (docs/chaos.md, bug 5).
    // freeze-thaw-node: the same without any watchdog (a paused VM); the lease witness must hold.
    faults: (['freeze-primary-node', 'freeze-primary-agent', 'partition-primary-etcd', 'isolate-primary', 'oneway-primary-etcd', 'crash-primary', 'freeze-thaw-node'] as const)
      .map((kind) => ({ kind, holdMs: 5000 })),
  },
  // The short form on the systemd backend (test/integration/chaos-systemd.test.ts): systemd's own
  // watchdog on a frozen primary's unit, the agent killed alone (KillMode=mixed, Restart=on-failure),
  // and the primary cut off from etcd; held past the TTL where holding matters.
  'quick-systemd': {
    syncMode: 'on',
    faults: [{ kind: 'freeze-primary-node', holdMs: 3000 }, { kind: 'kill-primary-agent', holdMs: 1500 }, { kind: 'partition-primary-etcd', holdMs: 3000 }],
  },
};
