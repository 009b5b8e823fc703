// The lease witness (src/witness/) on a real three-node cluster in asynchronous mode: the primary
// lists it in synchronous_standby_names, so a commit returns only while the leader's lease is
// valid. (1) A write commits while the lease is valid. (2) With the agent and its fencing process
// frozen (PostgreSQL and the witness running), a write sent after the lease deadline never returns
// COMMIT. (3) A whole node frozen and thawed (agent, fencing process, witness, postmaster and
// backends all SIGSTOPped for 2.5 x ttl) with clients connected straight to it and writing during
// the freeze: none of those writes is acknowledged, and no acknowledgement of the old primary
// arrives after the new primary became writable. Four freezes.
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { childPids } from '../../src/postgres/datadir.ts';
import { TestCluster, sleep, superuserClient, waitFor, type NodeHandle } from '../support/cluster.ts';

const TTL_S = 2;
const FREEZES = 4;
// PGHA_TEST_NO_WITNESS=1: the same cluster with postgresql.lease_witness off, the control run that
// shows what the witness prevents (the tests then fail; docs/data-safety.md has its figures).
const control = process.env.PGHA_TEST_NO_WITNESS === '1';
const cluster = new TestCluster({
  ttl: TTL_S, fenceMargin: 0.5, retryTimeout: 0.5,
  configure: (_i, cfg) => { cfg.postgresql.lease_witness = !control; },
});
const clients: pg.Client[] = [];

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await waitFor('a primary and two streaming replicas', async () => ((await cluster.primary()) !== null && (await cluster.replicas(true)).length === 2 ? true : null), 120_000);
}, 150_000);
afterAll(async () => {
  for (const n of cluster.nodes) cluster.signalNode(n, 'SIGCONT');
  for (const c of clients) await c.end().catch(() => undefined);
  await cluster.destroy();
});

/** A session straight to `n` (no HAProxy), no statement_timeout: a cancelled sync wait would return COMMIT. */
async function direct(n: NodeHandle): Promise<pg.Client> {
  const c = superuserClient({ host: '127.0.0.1', port: n.pgPort, connectMs: 2000, queryMs: 30_000 });
  clients.push(c);
  await c.connect();
  return c;
}

interface Outcome { ok: boolean; at: number; error?: string }
function insert(c: pg.Client, id: number): Promise<Outcome> {
  return c.query('insert into witness_probe(id) values ($1)', [id]).then(
    () => ({ ok: true, at: Date.now() }),
    (e: Error) => ({ ok: false, at: Date.now(), error: e.message }),
  );
}

const comm = (pid: number): string => { try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; } };

async function settled(): Promise<NodeHandle> {
  return waitFor('one primary and two streaming replicas', async () => {
    const p = await cluster.primary();
    return p !== null && (await cluster.replicas(true)).length === 2 ? p : null;
  }, 90_000, 200);
}

/** The first moment another member took a write: its server clock at the first acknowledged insert. */
async function writableAt(old: NodeHandle, since: number): Promise<{ node: NodeHandle; at: number }> {
  return waitFor('another member writable', async () => {
    for (const n of cluster.nodes.filter((x) => x !== old)) {
      const c = superuserClient({ host: '127.0.0.1', port: n.pgPort, connectMs: 300, queryMs: 1000 });
      try {
        await c.connect();
        const r = await c.query<{ ms: number }>('insert into witness_probe(id) values ((random() * 1e9)::int + 1000000) returning (extract(epoch from clock_timestamp()) * 1000)::float8 as ms');
        return { node: n, at: r.rows[0]!.ms };
      } catch { /* read-only or down */ } finally { await c.end().catch(() => undefined); }
    }
    return null;
  }, (TTL_S + 20) * 1000, 50).then((w) => ({ ...w, at: Math.max(since, w.at) }));
}

it('lists the witness as the synchronous standby and commits while the lease is valid', async () => {
  const p = await settled();
  const c = await direct(p);
  await c.query('create table if not exists witness_probe(id int primary key)');
  await c.query('insert into witness_probe(id) values (1)');
  const r = await c.query<{ s: string; w: string }>("select current_setting('synchronous_standby_names') as s, (select sync_state from pg_stat_replication where application_name = 'pgha_lease_witness') as w");
  expect(r.rows[0]).toEqual({ s: 'FIRST 1 ("pgha_lease_witness")', w: 'sync' });
  // src/ha sees neither the witness nor its setting: the member list and /status show no extra replica.
  expect(JSON.stringify(await cluster.status(p))).not.toContain('pgha_lease_witness');
  await c.end();
}, 60_000);

it('does not return COMMIT once the lease deadline passed (agent and fencing process frozen)', async () => {
  const old = await settled();
  const c = await direct(old);
  expect((await insert(c, 2)).ok).toBe(true);
  const agent = old.agent!.pid!;
  const fencer = childPids(agent).filter((p) => comm(p) === 'perl');
  expect(fencer.length).toBe(1);
  const frozeAt = Date.now();
  for (const pid of [agent, ...fencer]) process.kill(pid, 'SIGSTOP');
  try {
    // The deadline is at most ttl - fence_margin after the last renewal: past it by then.
    await sleep(TTL_S * 1000);
    const pending = insert(c, 3);
    const early = await Promise.race([pending, sleep(4000).then(() => null)]);
    expect(early, 'a write after the lease deadline returned').toBeNull();
    const next = await writableAt(old, frozeAt);
    expect(next.node).not.toBe(old);
    for (const pid of [agent, ...fencer]) process.kill(pid, 'SIGCONT');
    const outcome = await pending;
    expect(outcome.ok, `the write after the deadline was acknowledged at ${outcome.at} (new primary writable at ${next.at})`).toBe(false);
  } finally {
    for (const pid of [agent, ...fencer]) { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } }
  }
}, 90_000);

it(`acknowledges no write after another member became writable, over ${FREEZES} whole-node freezes and thaws`, async () => {
  const report: string[] = [];
  let late = 0;
  let ackedDuringFreeze = 0;
  let id = 1000;
  for (let f = 0; f < FREEZES; f++) {
    const old = await settled();
    const sessions = await Promise.all([1, 2, 3].map(() => direct(old)));
    // Writes before the freeze commit (the lease is valid).
    for (const s of sessions) expect((await insert(s, ++id)).ok).toBe(true);
    const frozeAt = Date.now();
    cluster.signalNode(old, 'SIGSTOP');
    let thawAt = 0;
    try {
      // Writes sent during the freeze wait in the frozen backends' sockets.
      await sleep(100);
      const during = sessions.map((s) => insert(s, ++id));
      const next = await writableAt(old, frozeAt);
      // Hold 2.5 x ttl in all, then thaw every process at once.
      await sleep(Math.max(0, frozeAt + 2.5 * TTL_S * 1000 - Date.now()));
      thawAt = Date.now();
      cluster.signalNode(old, 'SIGCONT');
      const outcomes = await Promise.all(during);
      const acked = outcomes.filter((o) => o.ok);
      const lateOnes = acked.filter((o) => o.at >= next.at);
      ackedDuringFreeze += acked.length;
      late += lateOnes.length;
      report.push(`freeze ${f + 1}: ${old.name} frozen ${thawAt - frozeAt} ms, ${next.node.name} writable ${Math.round(next.at - frozeAt)} ms after the freeze; ` +
        `${acked.length}/${outcomes.length} writes sent during the freeze acknowledged (${lateOnes.length} after the new primary was writable)` +
        `${acked.map((o) => ` at +${o.at - frozeAt} ms`).join('')}; others: ${[...new Set(outcomes.filter((o) => !o.ok).map((o) => o.error))].join(' | ')}`);
    } finally {
      cluster.signalNode(old, 'SIGCONT');
      for (const s of sessions) await s.end().catch(() => undefined);
    }
    await waitFor(`${old.name} back as a replica`, async () => (await cluster.probe(old, '/replica')) === 200, 90_000, 200);
  }
  console.log(report.join('\n'));
  expect(late, report.join('\n')).toBe(0);
  expect(ackedDuringFreeze, report.join('\n')).toBe(0);
}, 240_000);
