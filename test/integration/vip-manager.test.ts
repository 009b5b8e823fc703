// vip-manager (Debian's 1.0.2, which reads etcd's v2 API only) against a pgha cluster with
// etcd.v2_leader_mirror on. Each member's "host" is a network namespace this test creates (a veth
// pair: 10.218.<i>.1 on the root side, where etcd also listens, 10.218.<i>.2 inside); vip-manager
// runs inside it with trigger-value = the member's name and puts the virtual IP on the namespace's
// end of the veth. The address must sit in exactly the leader's namespace, and follow a
// switchover and a crash failover. Everything is removed in afterAll, also after a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';
import { hasNetnsSupport } from '../../lab/netlab.ts';

const PREFIX = 'pghav-';
// etcd's client and peer port, allocated here: its extra listen URLs and vip-manager name it.
const ETCD_PORT = allocatePorts(2);
const VIP = '10.218.100.10';
const VIP_MANAGER = '/usr/bin/vip-manager';
const skip = hasNetnsSupport() ?? (execFileSync('sh', ['-c', `test -x ${VIP_MANAGER} && echo ok || true`], { encoding: 'utf8' }).trim() === 'ok' ? null : `${VIP_MANAGER} missing (apt-get install vip-manager)`);

const ns = (i: number) => `${PREFIX}n${i}`;
const hostSide = (i: number) => `${PREFIX}h${i}`;
const nsSide = (i: number) => `${PREFIX}c${i}`;
const ip = (args: string[], allowFail = false) => {
  try { return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }); } catch (e) { if (allowFail) return ''; throw e; }
};

function removeNetwork(): void {
  for (let i = 1; i <= 3; i++) {
    for (const pid of ip(['netns', 'pids', ns(i)], true).split('\n').filter(Boolean)) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
    ip(['netns', 'del', ns(i)], true);
    ip(['link', 'del', hostSide(i)], true);
  }
}

function makeNetwork(): void {
  removeNetwork(); // leftovers of a crashed earlier run
  for (let i = 1; i <= 3; i++) {
    ip(['netns', 'add', ns(i)]);
    ip(['link', 'add', hostSide(i), 'type', 'veth', 'peer', 'name', nsSide(i)]);
    ip(['link', 'set', nsSide(i), 'netns', ns(i)]);
    ip(['addr', 'add', `10.218.${i}.1/24`, 'dev', hostSide(i)]);
    ip(['link', 'set', hostSide(i), 'up']);
    ip(['-n', ns(i), 'addr', 'add', `10.218.${i}.2/24`, 'dev', nsSide(i)]);
    ip(['-n', ns(i), 'link', 'set', nsSide(i), 'up']);
    ip(['-n', ns(i), 'link', 'set', 'lo', 'up']);
  }
}

/** The namespaces whose veth end carries the virtual IP right now. */
function holders(): number[] {
  return [1, 2, 3].filter((i) => ip(['-n', ns(i), '-4', 'addr', 'show', 'dev', nsSide(i)], true).includes(`${VIP}/32`));
}

const cluster = new TestCluster({
  etcdPort: ETCD_PORT, ttl: 3,
  etcdExtra: { enableV2: true, extraListen: [1, 2, 3].map((i) => `http://10.218.${i}.1:${ETCD_PORT}`) },
  configure: (_i, cfg) => { cfg.etcd.v2_leader_mirror = true; },
});
const managers: ChildProcess[] = [];
const AUTH = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`;
const KEY = '/pgha-test/itest/leader';

async function v2Leader(): Promise<string | null> {
  const r = await fetch(`http://127.0.0.1:${ETCD_PORT}/v2/keys${KEY}`, { signal: AbortSignal.timeout(2000) });
  if (r.status === 404) return null;
  return ((await r.json()) as { node: { value: string } }).node.value;
}

// Bootstrap plus two clones take seconds when idle; 110 s covers a loaded 2-core CI machine.
async function leader(): Promise<NodeHandle> {
  return cluster.waitHealthy(110_000);
}

/** The VIP sits in the namespace of `name` and nowhere else (vip-manager polls every 500 ms). */
async function vipOn(name: string, timeoutMs: number): Promise<number> {
  const i = Number(name.slice(4));
  const t0 = performance.now();
  await waitFor(`the VIP on ${name} only`, async () => { const h = holders(); return h.length === 1 && h[0] === i; }, timeoutMs, 100);
  return performance.now() - t0;
}

beforeAll(async () => {
  if (skip !== null) return;
  makeNetwork();
  await cluster.startEtcd();
  cluster.startAll();
  await leader();
  for (let i = 1; i <= 3; i++) {
    const child = spawn('ip', ['netns', 'exec', ns(i), VIP_MANAGER, '--ip', VIP, '--netmask', '32', '--interface', nsSide(i),
      '--trigger-key', KEY, '--trigger-value', `node${i}`, '--dcs-endpoints', `http://10.218.${i}.1:${ETCD_PORT}`, '--interval', '500'], { stdio: 'ignore' });
    managers.push(child);
  }
}, 150_000);

afterAll(async () => {
  for (const m of managers) m.kill('SIGKILL');
  await cluster.destroy();
  removeNetwork();
}, 60_000);

describe.skipIf(skip !== null)('vip-manager follows the leader through the v2 copy of the key', () => {
  it('puts the VIP on the leader only', async () => {
    const l = await leader();
    expect(await v2Leader()).toBe(l.name);
    await vipOn(l.name, 15_000);
  });

  it('moves the VIP with a switchover', async () => {
    const old = await leader();
    const target = cluster.nodes.find((n) => n.name !== old.name)!;
    const r = await fetch(`${cluster.apiBase(old)}/switchover`, {
      method: 'POST', headers: { authorization: AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ leader: old.name, candidate: target.name }),
    });
    expect(r.status).toBeLessThan(300);
    const ms = await vipOn(target.name, 20_000);
    console.log(`switchover: VIP on ${target.name} ${Math.round(ms)} ms after the request`);
    expect(await v2Leader()).toBe(target.name);
  });

  it('moves the VIP with a crash failover, once the crashed leader\'s copy expires', async () => {
    const old = await leader();
    cluster.killNode(old);
    const next = await waitFor('a new primary', async () => {
      const p = await cluster.primaries();
      return p.length === 1 && p[0]!.name !== old.name ? p[0] : null;
    }, 30_000, 100);
    const ms = await vipOn(next.name, 20_000);
    console.log(`crash failover: VIP on ${next.name} ${Math.round(ms)} ms after the new primary`);
    expect(await v2Leader()).toBe(next.name);
  });

  it('drops the copy when the leader stops cleanly (no stale VIP)', async () => {
    // After the crash above, two members run: the primary and one streaming standby.
    const l = await waitFor('one primary', async () => { const p = await cluster.primaries(); return p.length === 1 ? p[0] : null; }, 30_000, 100);
    await cluster.stopAgent(l);
    await waitFor('the v2 copy gone or another leader\'s', async () => ((await v2Leader()) !== l.name ? true : null), 15_000, 100);
    await waitFor(`the VIP off ${l.name}`, async () => (!holders().includes(Number(l.name.slice(4))) ? true : null), 15_000, 100);
  });
});
