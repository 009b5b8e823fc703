// Cascading replication and archive-only standbys on real PostgreSQL 15 and etcd.
// 1. node3 has `replicatefrom: node2`: it streams from node2 (node2's pg_stat_replication shows
//    it, the leader's does not; node2 holds its slot, the leader none), writes reach it, and
//    `pghactl topology` draws node1 -> node2 -> node3. node2 killed: node3 streams from the leader
//    within a bound and keeps receiving writes; node2 back: node3 returns to it.
// 2. node3 has `nostream` (pgBackRest archive): no WAL receiver, no slot, yet it replays what the
//    leader archives.
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';
import { makeRepo, withBackup } from '../../lab/backup.ts';
import { allocatePorts } from '../../lab/ports.ts';

interface TopoRow { member: string; depth: number; upstream: string | null; role: string; state: string }

function ctl(c: TestCluster, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // pghactl reads etcd once: well under a second; 30 s covers a loaded machine.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', c.nodes[0]!.configPath, ...args], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
}
const topology = async (c: TestCluster) => (JSON.parse(await ctl(c, 'topology', '--format', 'json')) as { members: TopoRow[] }).members;

/** application_names streaming from `n` (its pg_stat_replication). */
async function streamingFrom(c: TestCluster, n: NodeHandle): Promise<string[]> {
  return (await c.rows<{ a: string }>(n, "select application_name as a from pg_stat_replication where state = 'streaming' order by 1").catch(() => [])).map((r) => r.a);
}
async function physicalSlots(c: TestCluster, n: NodeHandle): Promise<string[]> {
  return (await c.rows<{ s: string }>(n, "select slot_name as s from pg_replication_slots where slot_type = 'physical' order by 1")).map((r) => r.s);
}
/** Insert one row on the leader; resolve once `reader` shows it. */
async function writeReaches(c: TestCluster, leader: NodeHandle, reader: NodeHandle, id: number, timeoutMs: number): Promise<void> {
  await c.query(leader, 'create table if not exists cascade_t (id int primary key)');
  await c.query(leader, 'insert into cascade_t values ($1)', [id]);
  await waitFor(`row ${id} on ${reader.name}`, async () => {
    const r = await c.rows<{ n: string }>(reader, `select count(*)::text as n from cascade_t where id = ${id}`).catch(() => []);
    return r[0]?.n === '1';
  }, timeoutMs, 100);
}

/** node1 bootstraps alone first, so that it is the leader; then the others clone it. */
async function startWithNode1Leading(c: TestCluster): Promise<NodeHandle> {
  await c.startEtcd();
  const [n1, n2, n3] = c.nodes as [NodeHandle, NodeHandle, NodeHandle];
  c.startAgent(n1);
  // initdb and the first start: a few seconds idle; 60 s covers a loaded 2-core machine.
  await waitFor('node1 leading', async () => (await c.probe(n1, '/primary')) === 200, 60_000, 200);
  c.startAgent(n2);
  c.startAgent(n3);
  return n1;
}

describe('replicatefrom: node3 cascades from node2', () => {
  // member_slots_ttl 0: a slot goes as soon as its member streams elsewhere, so the slots show
  // exactly who keeps WAL for whom.
  const cluster = new TestCluster({ ttl: 3, dcs: { member_slots_ttl: 0 }, tags: (i) => (i === 3 ? { replicatefrom: 'node2' } : {}) });
  const [n1, n2, n3] = cluster.nodes as [NodeHandle, NodeHandle, NodeHandle];
  beforeAll(async () => {
    await startWithNode1Leading(cluster);
    // Two clones: seconds idle; 90 s covers a loaded machine.
    await cluster.waitHealthy(90_000);
  }, 160_000);
  afterAll(async () => { await cluster.destroy(); });

  it('streams from node2, which keeps its slot; the leader sees only node2; writes reach node3', async () => {
    // node3 starts on the leader (its clone source) and moves within a loop or two of node2 streaming.
    await waitFor('node3 streaming from node2', async () => (await streamingFrom(cluster, n2)).includes('node3'), 30_000, 200);
    expect(await streamingFrom(cluster, n1)).toEqual(['node2']);
    await waitFor('slots: node2 on the leader, node3 on node2', async () =>
      JSON.stringify(await physicalSlots(cluster, n1)) === '["node2"]' && JSON.stringify(await physicalSlots(cluster, n2)) === '["node3"]', 10_000, 200);
    await writeReaches(cluster, n1, n3, 1, 10_000);
  });

  it('pghactl topology draws node1 -> node2 -> node3 from what the members report', async () => {
    const rows = await waitFor('the tree in etcd', async () => {
      const t = await topology(cluster);
      return t.find((r) => r.member === 'node3')?.depth === 2 ? t : null;
    }, 10_000, 250);
    expect(rows.map((r) => `${r.depth}:${r.member}:${r.upstream ?? '-'}`)).toEqual(['0:node1:-', '1:node2:node1', '2:node3:node2']);
    const text = await ctl(cluster, 'topology');
    expect(text).toMatch(/│ node1 +│[^\n]*│ Leader/);
    expect(text).toMatch(/│ \+ node2 +│/);
    expect(text).toMatch(/│ {3}\+ node3 +│[^\n]*│ Replica +│ streaming/);
  });

  it('node2 killed: node3 streams from the leader within 20 s and keeps receiving writes', async () => {
    const t0 = Date.now();
    cluster.killNode(n2);
    // node2's member key lives until its lease expires (ttl 3 s); then one loop and a reconnect.
    await waitFor('node3 streaming from the leader', async () => (await streamingFrom(cluster, n1)).includes('node3'), 20_000, 200);
    const took = Date.now() - t0;
    expect(took).toBeLessThan(20_000);
    await writeReaches(cluster, n1, n3, 2, 10_000);
    expect(await physicalSlots(cluster, n1)).toContain('node3');
  });

  it('node2 back: node3 returns to it', async () => {
    cluster.startAgent(n2);
    // node2 restarts PostgreSQL and streams again (seconds); then node3 moves within a loop.
    await waitFor('node3 streaming from node2 again', async () => (await streamingFrom(cluster, n2)).includes('node3'), 60_000, 200);
    await waitFor('the leader streams only to node2', async () => JSON.stringify(await streamingFrom(cluster, n1)) === '["node2"]', 10_000, 200);
    await writeReaches(cluster, n1, n3, 3, 10_000);
    await waitFor('the leader drops node3\'s slot', async () => !(await physicalSlots(cluster, n1)).includes('node3'), 10_000, 200);
  });
});

describe('nostream: node3 replays the archive only', () => {
  const repo = makeRepo();
  // node i's PostgreSQL on PG + i, which pgBackRest's peers need up front.
  const PG = allocatePorts(3) - 1;
  const cluster = new TestCluster({ pgPortBase: PG, ttl: 3, configure: withBackup(repo.path, PG), tags: (i) => (i === 3 ? { nostream: true } : {}) });
  const [n1, , n3] = cluster.nodes as [NodeHandle, NodeHandle, NodeHandle];
  beforeAll(async () => {
    await startWithNode1Leading(cluster);
  }, 80_000);
  afterAll(async () => {
    await cluster.destroy();
    repo.remove();
  });

  it('has no WAL receiver and no slot, and still replays what the leader archives', async () => {
    // The clone and the start: seconds idle; 90 s covers a loaded machine.
    await waitFor('node3 running as a standby', async () => (await cluster.rows<{ r: boolean }>(n3, 'select pg_is_in_recovery() as r').catch(() => []))[0]?.r === true, 90_000, 250);
    await cluster.query(n1, 'create table if not exists cascade_t (id int primary key)');
    await cluster.query(n1, 'insert into cascade_t values (42)');
    await cluster.query(n1, 'select pg_switch_wal()');
    // archive-push, then node3's restore_command (retried every wal_retrieve_retry_interval): seconds.
    await waitFor('row 42 on node3', async () => (await cluster.rows<{ n: string }>(n3, 'select count(*)::text as n from cascade_t where id = 42').catch(() => []))[0]?.n === '1', 60_000, 250);
    expect(await cluster.rows(n3, 'select status from pg_stat_wal_receiver')).toEqual([]);
    expect(await streamingFrom(cluster, n1)).not.toContain('node3');
    expect(await physicalSlots(cluster, n1)).not.toContain('node3');
    const rows = await topology(cluster);
    expect(rows.find((r) => r.member === 'node3')).toMatchObject({ depth: 0, upstream: null });
  });
});
