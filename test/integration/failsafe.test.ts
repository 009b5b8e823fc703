// failsafe_mode on real PostgreSQL and etcd. etcd is frozen (SIGSTOP), so every call to it hangs
// until its deadline, as when etcd as a whole is unreachable. (1) Every member's agent answers
// POST /failsafe: the primary keeps acknowledging writes for longer than 3 x TTL and no standby
// promotes. (2) One standby's agent is frozen too: the primary stops acknowledging writes before
// its lease could have expired, as without failsafe_mode.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestCluster, startWriter, type NodeHandle } from '../../lab/loopback.ts';
import { sleep, waitFor } from '../../lab/util.ts';
import { etcdGet } from '../../lab/etcd.ts';

const TTL_S = 3;
const cluster = new TestCluster({ ttl: TTL_S, dcs: { failsafe_mode: true } }); // ports allocated (lab/ports.ts)

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await cluster.waitHealthy(90_000);
}, 120_000);
afterAll(async () => {
  for (const n of cluster.nodes) n.agent?.kill('SIGCONT');
  cluster.resumeEtcd();
  await cluster.destroy();
});

/** Insert a row every 20 ms until stopped or a write fails. */
function writer(n: NodeHandle, table: string) {
  // 3 s per insert: a loaded 2-core CI machine can stall a healthy insert for over a second; a
  // fenced primary still fails it well within the test's window.
  return startWriter(n, table, { queryMs: 3000, pauseMs: 20 });
}

/** Members that answer 200 on /primary. */
async function primaries(): Promise<string[]> {
  return (await cluster.primaries()).map((n) => n.name);
}

const promotions = (n: NodeHandle) => (cluster.logs(n).match(/"event":"promoted"/g) ?? []).length;

it('keeps the primary writing with etcd frozen while every member confirms it, and nobody promotes', async () => {
  const leader = await cluster.waitHealthy(60_000);
  // The leader writes /failsafe (every member's name and REST URL) within a loop of seeing all
  // three members; the test needs it before etcd freezes. 10 s covers a loaded machine.
  await waitFor('/failsafe naming every member', async () => {
    const v = await etcdGet(cluster.etcdEndpoint, '/pgha-test/itest/failsafe');
    const names = v === null ? [] : Object.keys(JSON.parse(v) as Record<string, unknown>);
    return cluster.nodes.every((n) => names.includes(n.name));
  }, 10_000);
  const before = cluster.nodes.map(promotions);
  const w = writer(leader, 'failsafe_probe');
  // Writing before etcd freezes; 10 s covers a loaded machine.
  await waitFor('the writer writing', async () => w.acks.length >= 5, 10_000, 20);
  const frozenAt = Date.now();
  cluster.pauseEtcd();
  let seenOtherPrimary = false;
  const watch = setInterval(() => void primaries().then((p) => { if (p.some((x) => x !== leader.name)) seenOtherPrimary = true; }), 250);
  await sleep((3 * TTL_S + 2) * 1000); // the fault itself: etcd frozen for three TTLs and more
  clearInterval(watch);
  const lastAck = w.acks.at(-1)?.at ?? 0;
  const failedAt = w.failedAt();
  await w.stop();
  cluster.resumeEtcd();
  expect(failedAt).toBeNull();
  expect(lastAck - frozenAt).toBeGreaterThan(3 * TTL_S * 1000);
  expect(seenOtherPrimary).toBe(false);
  expect(cluster.logs(leader)).toMatch(/failsafe: all 2 members confirmed us/);
  // etcd is back: the old primary takes its key back; nobody else promoted at any point.
  await waitFor('the same primary and two replicas', async () =>
    ((await cluster.primary())?.name === leader.name && (await cluster.replicas()).length === 2 ? true : null), 30_000);
  expect(cluster.nodes.map(promotions)).toEqual(before);
}, 90_000);

it('stops the primary before its lease could expire when one member does not confirm', async () => {
  const leader = await cluster.waitHealthy(60_000);
  const silent = cluster.nodes.find((n) => n !== leader) as NodeHandle;
  const w = writer(leader, 'failsafe_probe2');
  // Writing before etcd freezes; 10 s covers a loaded machine.
  await waitFor('the writer writing', async () => w.acks.length >= 5, 10_000, 20);
  // The silent member stays in /failsafe: etcd is frozen right after, before its key can expire.
  const logFrom = cluster.logs(leader).length; // the first test's rounds extended the lease legitimately
  silent.agent?.kill('SIGSTOP');
  const frozenAt = Date.now();
  cluster.pauseEtcd();
  await waitFor('writes on the old primary to fail', async () => w.failedAt() !== null, (TTL_S + 5) * 1000);
  await w.stop();
  const lastAck = w.acks.at(-1)?.at ?? 0;
  expect(lastAck).toBeGreaterThan(frozenAt - 1000);
  expect(lastAck - frozenAt).toBeLessThan(TTL_S * 1000);
  // The leader fenced itself: either a failsafe round asked the silent member and ended
  // unconfirmed (at its call deadline, after the fence), or the lease deadline came before a round
  // could start (etcd's keepalive failing takes up to two call deadlines). Never an extension.
  await waitFor('the fence or the unconfirmed round in the log', async () =>
    /failsafe: not confirmed by|"event":"demoted"/.test(cluster.logs(leader).slice(logFrom)), 5_000);
  expect(cluster.logs(leader).slice(logFrom)).not.toMatch(/"failsafe_extend"/); // no plan extended the lease
  expect((await primaries()).filter((p) => p !== leader.name)).toEqual([]);
  silent.agent?.kill('SIGCONT');
  cluster.resumeEtcd();
}, 60_000);
