// A real three-node cluster: etcd, three pgha agents (as the postgres user) with PostgreSQL 15,
// and HAProxy in front. The steps run in order on one cluster and tell one story: bootstrap,
// replicate, standby crash, primary crash and failover, rejoin by pg_rewind, clean handover.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { PASSWORDS, superuserClient, postmasterPid, sleep, waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';

const TTL_S = 3;
const HAPROXY_RW = allocatePorts(2);
const HAPROXY_RO = HAPROXY_RW + 1;

const cluster = new TestCluster({ ttl: TTL_S });
let haproxy: ChildProcess | null = null;

async function waitPrimary(timeoutMs: number, not?: NodeHandle): Promise<NodeHandle> {
  return waitFor('a single primary', async () => {
    const p = await cluster.primary();
    return p !== null && p !== not ? p : null;
  }, timeoutMs);
}

async function waitReplicas(count: number, timeoutMs: number): Promise<NodeHandle[]> {
  return waitFor(`${count} streaming replicas`, async () => {
    const r = await cluster.replicas();
    return r.length === count ? r : null;
  }, timeoutMs);
}

/** Port of the server this standby's WAL receiver streams from, or null. */
async function upstreamPort(n: NodeHandle): Promise<number | null> {
  const r = await cluster.query(n, "select sender_port from pg_stat_wal_receiver where status = 'streaming'");
  return (r.rows[0] as { sender_port?: number } | undefined)?.sender_port ?? null;
}

async function rowsOn(n: NodeHandle): Promise<number[]> {
  const r = await cluster.query(n, 'select id from itest order by id');
  return r.rows.map((x: { id: number }) => x.id);
}

async function writeThroughHaproxy(id: number): Promise<void> {
  const c = superuserClient({ host: '127.0.0.1', port: HAPROXY_RW, connectMs: 2000, queryMs: 4000 });
  try {
    await c.connect();
    await c.query('insert into itest(id) values ($1)', [id]);
  } finally {
    await c.end().catch(() => undefined);
  }
}

function startHaproxy(): void {
  haproxy = cluster.startHaproxy({ readWritePort: HAPROXY_RW, readOnlyPort: HAPROXY_RO });
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll(); // all three at the same instant: exactly one may bootstrap
});

afterAll(async () => {
  haproxy?.kill('SIGKILL');
  await cluster.destroy();
});

describe('a three-node cluster', () => {
  let primary: NodeHandle;
  let crashed: NodeHandle | null = null;

  it('bootstraps exactly one cluster when three agents start at the same instant', async () => {
    primary = await waitPrimary(90_000);
    await waitReplicas(2, 60_000);
    const bootstraps = cluster.nodes.map((n) => (cluster.logs(n).match(/"event":"bootstrap"/g) ?? []).length);
    expect(bootstraps.reduce((a, b) => a + b, 0)).toBe(1);
    const ids = await Promise.all(cluster.nodes.map(async (n) => (await cluster.query(n, 'select system_identifier::text as id from pg_control_system()')).rows[0]));
    expect(new Set(ids.map((r: { id: string }) => r.id)).size).toBe(1);
    startHaproxy();
  });

  it('replicates a row written on the primary to both standbys', async () => {
    await cluster.query(primary, 'create table itest (id int primary key)');
    await cluster.query(primary, 'insert into itest values (1)');
    for (const n of cluster.nodes.filter((x) => x !== primary)) {
      await waitFor(`row on ${n.name}`, async () => (await rowsOn(n)).includes(1), 10_000);
    }
  });

  it('writes through the HAProxy read-write port reach the primary', async () => {
    await waitFor('haproxy routing writes', async () => { await writeThroughHaproxy(2); return true; }, 15_000, 300);
    expect(await rowsOn(primary)).toContain(2);
  });

  it('restarts a standby PostgreSQL killed with SIGKILL', async () => {
    const standby = cluster.nodes.find((n) => n !== primary);
    if (standby === undefined) throw new Error('no standby');
    const before = cluster.killPostmaster(standby, 'SIGKILL');
    expect(before).not.toBeNull();
    await waitFor('standby postmaster restarted', async () => {
      const pid = postmasterPid(standby.dataDir);
      return pid !== null && pid !== before && (await cluster.probe(standby, '/replica')) === 200;
    }, 30_000);
  });

  it('fails over within the TTL plus a few seconds when the primary agent and PostgreSQL are SIGKILLed', async () => {
    const old = primary;
    const t0 = performance.now();
    cluster.killNode(old);
    primary = await waitPrimary((TTL_S + 15) * 1000, old);
    const elapsed = performance.now() - t0;
    console.log(`failover after SIGKILL: ${Math.round(elapsed)} ms`);
    expect(elapsed).toBeLessThan((TTL_S + 5) * 1000);
    const other = cluster.nodes.find((n) => n !== old && n !== primary);
    if (other === undefined) throw new Error('no remaining standby');
    await waitFor('the other standby streams from the new primary', async () => (await upstreamPort(other)) === primary.pgPort, 20_000);
    await cluster.query(primary, 'insert into itest values (3)');
    await waitFor('row 3 on the other standby', async () => (await rowsOn(other)).includes(3), 10_000);
    await waitFor('haproxy routes writes to the new primary', async () => { await writeThroughHaproxy(4); return true; }, 15_000, 300);
    expect(await rowsOn(primary)).toContain(4);
    crashed = old; // comes back in the next step
  });

  it('brings the old primary back as a standby by pg_rewind, with no data from the new timeline missing', async () => {
    const old = crashed;
    if (old === null) throw new Error('previous step did not run');
    cluster.startAgent(old);
    await waitFor('old primary streaming again', async () => (await cluster.probe(old, '/replica')) === 200 && (await upstreamPort(old)) === primary.pgPort, 60_000);
    expect(cluster.logs(old)).toMatch(/"event":"rewind"/);
    await waitFor('rows of the new timeline on the old primary', async () => {
      const rows = await rowsOn(old);
      return [1, 2, 3, 4].every((id) => rows.includes(id));
    }, 10_000);
  });

  it('hands over at once when the leader agent gets SIGTERM', async () => {
    const old = primary;
    await waitReplicas(2, 30_000);
    const t0 = performance.now();
    await cluster.stopAgent(old, 'SIGTERM');
    primary = await waitPrimary(TTL_S * 1000 + 10_000, old);
    const elapsed = performance.now() - t0;
    console.log(`handover after SIGTERM: ${Math.round(elapsed)} ms`);
    // Faster than waiting out the TTL: the key was released, not left to expire.
    expect(cluster.logs(old)).toMatch(/released the leader key on shutdown/);
    expect(elapsed).toBeLessThan(TTL_S * 1000 + 2000);
    cluster.startAgent(old);
    await waitFor('old leader back as a replica', async () => (await cluster.probe(old, '/replica')) === 200, 60_000);
    await waitFor('writes through haproxy after the handover', async () => { await writeThroughHaproxy(5); return true; }, 15_000, 300);
    await sleep(100);
  });

  it('never logs a password', () => {
    for (const n of cluster.nodes) {
      const log = cluster.logs(n);
      for (const pw of Object.values(PASSWORDS)) expect(log).not.toContain(pw);
      expect(log).not.toContain('admin-pw');
    }
  });
});
