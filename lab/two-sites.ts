// Two sites on loopback for standby-cluster tests and benchmarks: site A, a 3-member cluster, and
// site B, a 2-member standby cluster of A (its own etcd) that reaches A through a libpq
// multi-host string of A's three ports (target_session_attrs=read-write). Used by
// test/integration/standby-cluster.test.ts and scripts/bench-standby.ts.
import { execFile } from 'node:child_process';
import { LoopbackCluster, type NodeHandle } from './loopback.ts';
import { REPO, waitFor } from './util.ts';

export interface Run { code: number; stdout: string; stderr: string }

/** A libpq multi-host host/port pair listing `ns` (what standby_cluster and demote-cluster take). */
export function multiHost(ns: NodeHandle[]): { host: string; port: string } {
  return { host: ns.map(() => '127.0.0.1').join(','), port: ns.map((n) => n.pgPort).join(',') };
}

/** `pghactl -c <the site's first node's YAML> ...args`, never rejecting. */
export function ctl(site: LoopbackCluster, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // 100 s: above pghactl's own wait deadline (67 s at ttl 3), so pghactl reports first.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', site.nodes[0]!.configPath, ...args], { timeout: 100_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

/** The member of `nodes` answering /standby-leader 200, the others streaming as its replicas. */
export async function standbyLeader(site: LoopbackCluster, nodes: NodeHandle[], timeoutMs: number): Promise<NodeHandle> {
  return waitFor('a standby leader', async () => {
    for (const n of nodes) {
      if (await site.probe(n, '/standby-leader') !== 200) continue;
      const others = nodes.filter((x) => x !== n);
      const ok = await Promise.all(others.map((x) => site.probe(x, '/replica?replication_state=streaming')));
      if (ok.every((c) => c === 200)) return n;
    }
    return null;
  }, timeoutMs, 200);
}

export interface TwoSites {
  siteA: LoopbackCluster;
  siteB: LoopbackCluster;
  /** Site B's two members (its third node is configured but never started). */
  bNodes: NodeHandle[];
  /** Start both etcds and site A, wait for A to be healthy, then start B's two agents. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export function twoSites(o: { ttl?: number } = {}): TwoSites {
  const ttl = o.ttl ?? 3;
  const siteA = new LoopbackCluster({ ttl });
  const siteB = new LoopbackCluster({ ttl, dcs: { standby_cluster: multiHost(siteA.nodes) } });
  const bNodes = siteB.nodes.slice(0, 2);
  return {
    siteA, siteB, bNodes,
    async start() {
      await Promise.all([siteA.startEtcd(), siteB.startEtcd()]);
      siteA.startAll();
      // Bootstrap and two clones; 60 s covers a loaded 2-core machine.
      await siteA.waitHealthy(60_000);
      for (const n of bNodes) siteB.startAgent(n);
    },
    async destroy() {
      await Promise.all([siteA.destroy(), siteB.destroy()]);
    },
  };
}
