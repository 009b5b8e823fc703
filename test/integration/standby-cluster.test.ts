// Standby clusters against real PostgreSQL and etcd: site A, a 3-member cluster, and site B, a
// 2-member standby cluster of A (its own etcd) that reaches A through a libpq multi-host string
// (target_session_attrs=read-write). Writes on A reach both B members; B's standby leader dies
// and the other B member takes over and keeps following; A fails over (timeline switch) and B
// follows; promote-cluster under writes makes B writable with every write it had received; and
// demote-cluster makes A a standby cluster of B (pg_rewind of A's diverged primary).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWriter, type NodeHandle, type TestCluster } from '../../lab/loopback.ts';
import { ctl, multiHost, standbyLeader, twoSites } from '../../lab/two-sites.ts';
import { waitFor } from '../../lab/util.ts';

const sites = twoSites({ ttl: 3 });
const { siteA, siteB, bNodes } = sites;

async function count(site: TestCluster, n: NodeHandle, sql: string): Promise<number> {
  const rows = await site.rows<{ c: string }>(n, sql);
  return Number(rows[0]?.c ?? -1);
}

/** Insert a marker on `primary`, then wait until every node in `on` has it. */
async function replicates(src: TestCluster, primary: NodeHandle, dst: TestCluster, on: NodeHandle[], marker: string, timeoutMs: number): Promise<void> {
  await src.query(primary, 'create table if not exists markers (m text primary key)');
  await src.query(primary, 'insert into markers values ($1)', [marker]);
  for (const n of on) {
    await waitFor(`${marker} on ${n.name}`, async () => (await count(dst, n, `select count(*) as c from markers where m = '${marker}'`)) === 1, timeoutMs, 100);
  }
}

beforeAll(async () => {
  await sites.start();
}, 120_000);

afterAll(async () => {
  await sites.destroy();
}, 60_000);

describe('standby cluster', () => {
  it('clones the source, and writes on the source reach every member of the standby site', async () => {
    const leader = await standbyLeader(siteB, bNodes, 60_000);
    const a = await siteA.waitHealthy(10_000);
    await replicates(siteA, a, siteB, bNodes, 'first', 15_000);
    // Nobody on site B is writable; /status and list show the standby cluster.
    for (const n of bNodes) expect(await siteB.probe(n, '/primary')).toBe(503);
    const st = await siteB.status(leader);
    expect(st).toMatchObject({ role: 'standby_leader', standby_cluster: { source: expect.stringContaining('127.0.0.1:') } });
    const list = await ctl(siteB, 'list');
    expect(list.stdout).toMatch(/Standby Leader/);
    expect(list.stdout).toMatch(/Standby cluster: following 127\.0\.0\.1:/);
  }, 90_000);

  it('refuses to follow itself or an unreachable target (nothing changed)', async () => {
    const self = await ctl(siteA, 'demote-cluster', '--host', '127.0.0.1', '--port', String(siteA.nodes[1]!.pgPort), '--no-wait');
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(/PGHA_STANDBY_SOURCE_INVALID.*member of this cluster/);
    const nowhere = await ctl(siteA, 'demote-cluster', '--host', '127.0.0.1', '--port', '1', '--no-wait');
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/PGHA_STANDBY_SOURCE_UNREACHABLE/);
    const notStandby = await ctl(siteA, 'promote-cluster', '--no-wait');
    expect(notStandby.stderr).toMatch(/PGHA_STANDBY_STATE/);
    expect(await siteA.primary()).not.toBeNull();
  }, 60_000);

  it('a new standby leader takes over when the standby leader dies, and keeps following', async () => {
    const old = await standbyLeader(siteB, bNodes, 10_000);
    siteB.killNode(old);
    const other = bNodes.find((n) => n !== old)!;
    await waitFor('the other member as standby leader', async () => (await siteB.probe(other, '/standby-leader')) === 200, 30_000, 200);
    const a = await siteA.waitHealthy(10_000);
    await replicates(siteA, a, siteB, [other], 'after-b-failover', 15_000);
    siteB.startAgent(old);
    await standbyLeader(siteB, bNodes, 60_000);
  }, 120_000);

  it('follows a crash failover of the source site onto its new timeline', async () => {
    const oldA = await siteA.waitHealthy(10_000);
    const tl = Number((await siteA.status(oldA))?.timeline);
    siteA.killNode(oldA);
    const newA = await siteA.waitHealthy(30_000, { not: oldA, standbys: 1 });
    expect(Number((await siteA.status(newA))?.timeline)).toBeGreaterThan(tl);
    await replicates(siteA, newA, siteB, bNodes, 'after-a-failover', 30_000);
    siteA.startAgent(oldA);
    await siteA.waitHealthy(60_000);
  }, 150_000);

  it('promote-cluster under writes: refused while the source is writable, then forced: site B takes writes and holds every write it had received', async () => {
    const a = await siteA.waitHealthy(10_000);
    const writer = startWriter(a, 'probe', { queryMs: 2000, pauseMs: 5 });
    await waitFor('writes acknowledged', async () => writer.acks.length > 50, 10_000);
    const refused = await ctl(siteB, 'promote-cluster');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/PGHA_STANDBY_SOURCE_WRITABLE/);
    const r = await ctl(siteB, 'promote-cluster', '--force', '--format', 'json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { leader: string; behind_bytes: number | null; source_writable: boolean };
    expect(report.source_writable).toBe(true);
    expect(report.behind_bytes).not.toBeNull();
    await writer.stop();
    const bLeader = siteB.nodes.find((n) => n.name === report.leader)!;
    await siteB.query(bLeader, 'insert into markers values ($1)', ['written-on-b']);
    // Every id B holds was acknowledged on A, and B holds every acknowledged id up to its highest.
    const ids = (await siteB.rows<{ id: number }>(bLeader, 'select id from probe order by id')).map((x) => Number(x.id));
    const acked = new Set(writer.acks.map((x) => x.id));
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(acked.has(id)).toBe(true);
    const max = ids.at(-1)!;
    const missing = [...acked].filter((id) => id <= max && !ids.includes(id));
    expect(missing).toEqual([]);
  }, 120_000);

  it('demote-cluster makes the old site a standby cluster of the new one (its diverged primary rewound)', async () => {
    const bPrimary = await waitFor('B primary', async () => (await siteB.primaries())[0], 10_000);
    const r = await ctl(siteA, 'demote-cluster', ...Object.entries(multiHost(bNodes)).flatMap(([k, v]) => [`--${k}`, v]));
    expect(r.code, r.stderr).toBe(0);
    await standbyLeader(siteA, siteA.nodes, 90_000);
    await replicates(siteB, bPrimary, siteA, siteA.nodes, 'back-to-a', 30_000);
    for (const n of siteA.nodes) expect(await siteA.probe(n, '/primary')).toBe(503);
  }, 150_000);
});
