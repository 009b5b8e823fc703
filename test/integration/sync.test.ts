// synchronous_mode on, on a real cluster: the leader keeps FIRST 1 (...) and the /sync record,
// a crash of the leader under continuous writes promotes the synchronous standby with no
// acknowledged write lost, and with no standby left the leader goes asynchronous (non-strict)
// or makes commits wait (strict); that cluster then switches to quorum on the fly. A second
// cluster (its own ports, after the first is gone) bootstraps with synchronous_mode quorum: ANY 1
// (both standbys), /quorum on both, and a crash of the leader under writes loses no acknowledged write.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, startWriter, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, sleep, superuserClient, waitFor } from '../../lab/util.ts';
import { execFile } from 'node:child_process';
// The lease witness (on by default) is listed first; these checks are about the members.
import { withoutWitness } from '../../src/witness/names.ts';

let cluster = new TestCluster({ dcs: { synchronous_mode: 'on' } });

interface Row { member: string; role: string; state: string }
function ctl(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
}
const list = async () => JSON.parse(await ctl('list', '--format', 'json')) as Row[];
const byName = (n: string) => cluster.nodes.find((x) => x.name === n) as NodeHandle;

async function syncState(): Promise<{ leader: string; sync: string }> {
  return waitFor('a leader with one synchronous standby', async () => {
    const rows = await list();
    const leader = rows.find((r) => r.role === 'Leader' && r.state === 'running');
    const sync = rows.find((r) => r.role === 'Sync Standby' && r.state === 'streaming');
    return leader && sync ? { leader: leader.member, sync: sync.member } : null;
  }, 60_000, 200);
}

describe('synchronous_mode on', () => {
  beforeAll(async () => {
    await cluster.startEtcd();
    cluster.startAll();
  });
  afterAll(async () => { await cluster.destroy(); });

  it('keeps FIRST 1 (the synchronous standby) and says so in list and the health checks', async () => {
    const { leader, sync } = await syncState();
    const r = await cluster.query(byName(leader), 'show synchronous_standby_names');
    expect(withoutWitness(r.rows[0]?.synchronous_standby_names ?? '')).toBe(`FIRST 1 ("${sync}")`);
    // The agents' views follow etcd within a loop.
    await waitFor('/sync on the synchronous standby', async () => (await cluster.probe(byName(sync), '/sync')) === 200, 5_000);
    expect(await cluster.probe(byName(sync), '/async')).toBe(503);
    const other = cluster.nodes.find((n) => n.name !== leader && n.name !== sync) as NodeHandle;
    await waitFor('the other standby streaming', async () => (await cluster.probe(other, '/async')) === 200, 30_000);
    expect(await cluster.probe(other, '/sync')).toBe(503);
  });

  it('promotes the synchronous standby after a crash under writes, losing no acknowledged write', async () => {
    const { leader, sync } = await syncState();
    const old = byName(leader);
    await ctl('edit-config', '--set', 'permanent_slots.archiver.type=physical');
    const slots = async (n: NodeHandle) => (await cluster.query(n, "select slot_name from pg_replication_slots where slot_type = 'physical'")).rows.map((r: { slot_name: string }) => r.slot_name);
    await waitFor('the permanent slot on the leader', async () => (await slots(old)).includes('archiver'), 10_000);
    const acked = await writeUntilKilled(old, 'synctest');
    expect(acked.length).toBeGreaterThan(10);
    const next = await waitFor('a new primary', async () => cluster.primary(), 20_000);
    expect(next.name).toBe(sync);
    const have = new Set((await cluster.query(next, 'select id from synctest')).rows.map((x: { id: number }) => x.id));
    expect(acked.filter((id) => !have.has(id))).toEqual([]);
    await waitFor('the permanent slot carried to the new leader', async () => (await slots(next)).includes('archiver'), 10_000);
    cluster.startAgent(old);
    await syncState();
  });

  it('goes asynchronous without standbys (non-strict), and makes commits wait in strict mode', async () => {
    const { leader } = await syncState();
    const l = byName(leader);
    const standbys = cluster.nodes.filter((n) => n !== l);
    for (const s of standbys) cluster.killNode(s);
    await waitFor('asynchronous fallback', async () => withoutWitness((await cluster.query(l, 'show synchronous_standby_names')).rows[0]?.synchronous_standby_names ?? '') === '', 20_000);
    await cluster.query(l, 'create table if not exists asynctest (id int)');
    await cluster.query(l, 'insert into asynctest values (1)'); // does not wait
    expect(await ctl('list')).toContain('replication is asynchronous');
    expect(cluster.logs(l)).toMatch(/"event":"sync off"/);
    await ctl('edit-config', '--set', 'synchronous_mode_strict=true');
    await waitFor('strict: commits wait', async () => withoutWitness((await cluster.query(l, 'show synchronous_standby_names')).rows[0]?.synchronous_standby_names ?? '') === 'FIRST 1 ("pgha_no_sync_standby")', 20_000);
    // The commit waits for a synchronous standby that does not exist: the client gives up first.
    const c = superuserClient({ host: '127.0.0.1', port: l.pgPort, connectMs: 2000, queryMs: 1500 });
    await c.connect();
    await expect(c.query('insert into asynctest values (2)')).rejects.toThrow(/timeout/i);
    await c.end().catch(() => undefined);
    await ctl('edit-config', '--set', 'synchronous_mode_strict=false');
    for (const s of standbys) cluster.startAgent(s);
    await syncState();
  });

  it('switches to quorum on the fly: ANY 1 (both standbys), both quorum standbys', async () => {
    await ctl('edit-config', '--set', 'synchronous_mode=quorum');
    const { leader, standbys } = await quorumState();
    const quoted = standbys.map((s) => `"${s}"`).join(', ');
    await waitFor('ANY 1 on the leader', async () => withoutWitness((await cluster.query(byName(leader), 'show synchronous_standby_names')).rows[0]?.synchronous_standby_names ?? '') === `ANY 1 (${quoted})`, 10_000);
  });
});

async function quorumState(): Promise<{ leader: string; standbys: string[] }> {
  return waitFor('a leader with two quorum standbys', async () => {
    const rows = await list();
    const leader = rows.find((r) => r.role === 'Leader' && r.state === 'running');
    const standbys = rows.filter((r) => r.role === 'Quorum Standby' && r.state === 'streaming').map((r) => r.member).sort();
    return leader && standbys.length === 2 ? { leader: leader.member, standbys } : null;
  }, 60_000, 200);
}

/** Write for 1.5 s, crash `n`'s node (agent and PostgreSQL), and return the acknowledged ids. */
async function writeUntilKilled(n: NodeHandle, table: string): Promise<number[]> {
  const writer = startWriter(n, table, { queryMs: 2000 });
  await sleep(1500); // the point: a load of writes before the crash
  cluster.killNode(n);
  await writer.stop();
  return writer.acks.map((a) => a.id);
}

describe('synchronous_mode quorum, from bootstrap', () => {
  beforeAll(async () => {
    // Its own allocated ports: nothing waits for the first cluster's ports to be freed.
    cluster = new TestCluster({ dcs: { synchronous_mode: 'quorum', synchronous_node_count: 1 } });
    await cluster.startEtcd();
    cluster.startAll();
  });
  afterAll(async () => { await cluster.destroy(); });

  it('keeps ANY 1 (both standbys); /quorum answers on both, /sync on neither', async () => {
    const { leader, standbys } = await quorumState();
    const l = byName(leader);
    const quoted = standbys.map((s) => `"${s}"`).join(', ');
    await waitFor('ANY 1 on the leader', async () => withoutWitness((await cluster.query(l, 'show synchronous_standby_names')).rows[0]?.synchronous_standby_names ?? '') === `ANY 1 (${quoted})`, 10_000);
    for (const s of standbys) {
      await waitFor(`/quorum on ${s}`, async () => (await cluster.probe(byName(s), '/quorum')) === 200, 5_000);
      expect(await cluster.probe(byName(s), '/sync')).toBe(503);
      expect(await cluster.probe(byName(s), '/async')).toBe(503);
      expect(await cluster.probe(byName(s), '/read-only-quorum')).toBe(200);
    }
    expect(await cluster.probe(l, '/quorum')).toBe(503);
    expect(await cluster.probe(l, '/read-only-quorum')).toBe(200);
    const states = (await cluster.query(l, "select sync_state from pg_stat_replication where state = 'streaming' and application_name <> 'pgha_lease_witness'")).rows.map((r: { sync_state: string }) => r.sync_state);
    expect(states).toEqual(['quorum', 'quorum']);
    expect(await ctl('list')).toContain('Quorum: every acknowledged commit is on at least 1 of');
  });

  it('promotes the most advanced standby after a crash under writes, losing no acknowledged write', async () => {
    const { leader, standbys } = await quorumState();
    const old = byName(leader);
    const acked = await writeUntilKilled(old, 'quorumtest');
    expect(acked.length).toBeGreaterThan(10);
    const next = await waitFor('a new primary', async () => cluster.primary(), 20_000);
    expect(standbys).toContain(next.name);
    const have = new Set((await cluster.query(next, 'select id from quorumtest')).rows.map((x: { id: number }) => x.id));
    expect(acked.filter((id) => !have.has(id))).toEqual([]);
    expect(cluster.logs(next)).toMatch(/we are the best candidate/);
    cluster.startAgent(old);
    await quorumState();
  });
});
