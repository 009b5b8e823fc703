// A frozen leader agent (SIGSTOP, longer than the TTL) cannot run its own fence timer; the fencing
// process must stop its PostgreSQL before another member is promoted, and the old primary must
// not acknowledge a write after that, including when the agent wakes up.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestCluster, startWriter, type NodeHandle } from '../../lab/loopback.ts';
import { postmasterPid, waitFor } from '../../lab/util.ts';

const TTL_S = 3;
const cluster = new TestCluster({ ttl: TTL_S }) // ports allocated (lab/ports.ts);

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await waitFor('two replicas', async () => ((await cluster.replicas()).length === 2 ? true : null), 90_000);
});
afterAll(async () => {
  for (const n of cluster.nodes) n.agent?.kill('SIGCONT');
  await cluster.destroy();
});

it('stops the PostgreSQL of a frozen leader before anyone else is promoted', async () => {
  const old = await waitFor('a primary', async () => cluster.primary(), 30_000) as NodeHandle;
  const writer = startWriter(old, 'fence_probe', { queryMs: 1000, pauseMs: 10 });
  // The writer is writing (a few acknowledgements) before the leader freezes; 10 s covers a loaded machine.
  await waitFor('the writer writing', async () => writer.acks.length >= 5, 10_000, 20);
  const pidBefore = postmasterPid(old.dataDir);
  old.agent?.kill('SIGSTOP'); // frozen: no renewals, no in-process timer
  const next = await waitFor('a new primary', async () => { const p = await cluster.primary(); return p !== null && p !== old ? p : null; }, (TTL_S + 10) * 1000);
  const promotedAt = Date.now();
  await writer.stop();
  // The fencing process killed the frozen leader's PostgreSQL.
  expect(pidBefore).not.toBeNull();
  expect(postmasterPid(old.dataDir)).toBeNull();
  // No write acknowledged by the old primary after the new one was promoted.
  const lastAck = writer.acks.at(-1)?.at ?? 0;
  expect(lastAck).toBeLessThan(promotedAt);
  const history = (await (await fetch(`http://127.0.0.1:${next.apiPort}/history`)).json()) as Array<{ time: string; leader: string }>;
  const promotion = Date.parse(history.at(-1)?.time ?? '');
  expect(history.at(-1)?.leader).toBe(next.name);
  expect(lastAck).toBeLessThan(promotion);
  expect(cluster.logs(old)).not.toMatch(/"event":"promoted".*timeline":[2-9]/);
  // Waking up: the agent must not bring its PostgreSQL back as a primary.
  old.agent?.kill('SIGCONT');
  await waitFor('the old leader back as a replica', async () => (await cluster.probe(old, '/replica')) === 200, 60_000);
  expect((await cluster.primary())?.name).toBe(next.name);
});
