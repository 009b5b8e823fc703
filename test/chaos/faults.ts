// The faults of the fault-injection suite and the seeded schedule that picks them. Each fault is
// applied to the cluster as it is when the fault starts (its "primary" is whoever is primary
// then), held for a duration, and healed; the runner then waits for the cluster to converge.
import type { ChaosCluster, DbNode } from './cluster.ts';

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
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * Named sets for `--kinds`. v1: the twelve kinds before the clock jump and the lossy link were
 * added; the seeds in docs/chaos.md's bug table were drawn from it (`--kinds v1` replays them).
 */
export const FAULT_KIND_SETS: Record<string, readonly FaultKind[]> = {
  v1: FAULT_KINDS.slice(0, 12),
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

/**
 * A schedule of `count` faults from `seed`. Hold times are drawn around the TTL: shorter than it
 * (a blip the cluster must ride out) up to well beyond it (the lease must expire).
 */
export function schedule(seed: number, count: number, ttlS: number, kinds: readonly FaultKind[] = FAULT_KINDS): FaultSpec[] {
  const r = rng(seed);
  const out: FaultSpec[] = [];
  for (let i = 0; i < count; i++) {
    const kind = kinds[Math.floor(r() * kinds.length)]!;
    const holdMs = Math.round((0.5 + r() * 2.5) * ttlS * 1000);
    out.push({ kind, holdMs });
  }
  return out;
}

export interface Applied { heal(): Promise<void>; target: string }

const others = (c: ChaosCluster, p: DbNode) => c.nodes.filter((n) => n !== p);

/** Apply a fault to the cluster whose current primary is `p`; returns how to heal it. */
export function applyFault(c: ChaosCluster, kind: FaultKind, p: DbNode, pick: () => number): Applied {
  const lab = c.lab;
  const etcdIps = c.etcd.map((h) => h.ip);
  switch (kind) {
    case 'crash-primary':
      c.crashNode(p);
      return { target: p.name, heal: async () => c.startAgent(p) };
    case 'crash-replica': {
      const r = others(c, p)[Math.floor(pick() * 2)]!;
      c.crashNode(r);
      return { target: r.name, heal: async () => c.startAgent(r) };
    }
    case 'freeze-primary-node':
      c.freezeNode(p);
      return { target: p.name, heal: async () => c.thawNode(p) };
    case 'freeze-primary-agent':
      c.signalAgent(p, 'SIGSTOP');
      return { target: p.name, heal: async () => c.signalAgent(p, 'SIGCONT') };
    case 'kill-postmaster':
      c.killPostmaster(p);
      return { target: p.name, heal: async () => undefined };
    case 'partition-primary-etcd':
      lab.partition(p.host, etcdIps, 'both');
      return { target: p.name, heal: async () => lab.heal(p.host) };
    case 'partition-primary-peers':
      lab.partition(p.host, others(c, p).map((n) => n.host.ip), 'both');
      return { target: p.name, heal: async () => lab.heal(p.host) };
    case 'isolate-primary':
      lab.isolate(p.host);
      return { target: p.name, heal: async () => lab.heal(p.host) };
    case 'oneway-primary-etcd':
      lab.partition(p.host, etcdIps, 'out');
      return { target: p.name, heal: async () => lab.heal(p.host) };
    case 'kill-etcd-member': {
      const e = c.etcd[Math.floor(pick() * 3)]!;
      c.killEtcd(e);
      return { target: e.name, heal: async () => c.startEtcdMember(e) };
    }
    case 'etcd-quorum-loss': {
      const first = Math.floor(pick() * 3);
      const two = [c.etcd[first]!, c.etcd[(first + 1) % 3]!];
      for (const e of two) c.signalEtcd(e, 'SIGSTOP');
      return { target: two.map((e) => e.name).join('+'), heal: async () => { for (const e of two) c.signalEtcd(e, 'SIGCONT'); } };
    }
    case 'disk-full-primary':
      c.fillDisk(p);
      return { target: p.name, heal: async () => c.freeDisk(p) };
    case 'clock-jump-primary': {
      const offset = (pick() < 0.5 ? -1 : 1) * 3_600_000;
      c.shiftClock(p, offset);
      return {
        target: `${p.name} (${offset > 0 ? '+' : '-'}1 h)`,
        heal: async () => {
          // A fault that did not happen proves nothing: the agent's log says when it jumped.
          if (!c.logs(p).includes(`clock-shift: offset ${offset}`)) throw new Error(`${p.name}'s agent did not take the clock jump`);
          c.shiftClock(p, 0);
        },
      };
    }
    case 'lossy-primary-link':
      lab.lossy(p.host, LOSS);
      return { target: p.name, heal: async () => lab.heal(p.host) };
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
    faults: FAULT_KINDS.map((kind) => ({ kind, holdMs: kind === 'crash-replica' || kind === 'kill-postmaster' ? 1500 : 5000 })),
  },
  'quick-async': {
    syncMode: 'off',
    // The whole-node freeze is here since the lab emulates systemd's watchdog outside the node
    // (cluster.ts): before, a thawed node's PostgreSQL could commit one write before its fencing
    // process killed it (docs/chaos.md, bug 5).
    faults: (['freeze-primary-node', 'freeze-primary-agent', 'partition-primary-etcd', 'isolate-primary', 'oneway-primary-etcd', 'crash-primary'] as const)
      .map((kind) => ({ kind, holdMs: 5000 })),
  },
};
