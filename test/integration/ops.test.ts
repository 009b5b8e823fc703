// pghactl and the operations API against a real cluster: switchover (named, unnamed, refused,
// scheduled, cancelled), pause/resume around a crash, edit-config (also concurrent), restart
// --pending, reinit, history, and the API's 401/400 answers. pghactl runs as a child process and
// its --format json output is parsed.
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { postmasterPid, sleep, waitFor } from '../../lab/util.ts';
import { REPO } from '../../lab/util.ts';

const TTL_S = 3;
// node3 is tagged nofailover: switchovers to it must be refused.
const cluster = new TestCluster({ ttl: TTL_S, tags: (i) => (i === 3 ? { nofailover: true } : {}) });
const AUTH = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`;

interface Run { code: number; stdout: string; stderr: string }
function ctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}
async function ctlJson<T>(...args: string[]): Promise<T> {
  const r = await ctl(...args, '--format', 'json');
  if (r.code !== 0) throw new Error(`pghactl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
interface Row { member: string; role: string; state: string; tl: number; pending_restart: boolean }
const list = () => ctlJson<Row[]>('list');
const leaderName = async () => (await list()).find((r) => r.role === 'Leader')?.member ?? null;
const node = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;
// Bootstrap plus two clones take seconds when idle; 110 s (inside the 120 s hook timeout) covers a
// loaded 2-core CI machine.
async function healthy(): Promise<string> {
  // Healthy by the agents' checks, and pghactl list agrees.
  return (await cluster.waitHealthy(110_000, {
    also: async (p) => {
      const rows = await list();
      const leader = rows.find((r) => r.role === 'Leader' && r.state === 'running');
      return leader?.member === p.name && rows.filter((r) => r.role === 'Replica' && r.state === 'streaming').length === 2;
    },
  })).name;
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await healthy();
});
afterAll(async () => { await cluster.destroy(); });

describe('pghactl and the operations API', () => {
  it('switches over to a named candidate; the old leader follows without pg_rewind', async () => {
    const old = await healthy();
    const target = old === 'node1' ? 'node2' : 'node1';
    const req = await ctlJson<{ kind: string; candidate: string }>('switchover', '--candidate', target, '--force');
    expect(req).toMatchObject({ kind: 'switchover', candidate: target });
    await waitFor('the candidate leads', async () => (await cluster.primary())?.name === target, 20_000);
    expect(await healthy()).toBe(target);
    const since = cluster.logs(node(old)).split('\n').findIndex((l) => l.includes('stepped down for a switchover'));
    expect(since).toBeGreaterThanOrEqual(0);
    expect(cluster.logs(node(old)).split('\n').slice(since).join('\n')).not.toMatch(/"event":"rewind"/);
    const history = await ctlJson<Array<{ leader: string }>>('history');
    expect(history.at(-1)?.leader).toBe(target);
  });

  it('switches over to the best standby when none is named, never to the nofailover member', async () => {
    const old = await healthy();
    await ctlJson('switchover', '--force');
    const now = await waitFor('a new leader', async () => { const p = await cluster.primary(); return p !== null && p.name !== old ? p.name : null; }, 20_000);
    expect(now).not.toBe('node3');
    await healthy();
  });

  it('refuses a switchover to a nofailover member, with the reason, and writes nothing', async () => {
    const r = await ctl('switchover', '--candidate', 'node3', '--force');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/node3 is tagged nofailover/);
    const r2 = await ctl('switchover', '--candidate', 'nosuch', '--force');
    expect(r2.stderr).toMatch(/not a member/);
    expect((await ctl('flush', '--scheduled', '--format', 'json')).stdout).toContain('"cancelled": false');
  });

  it('refuses a switchover to a lagging standby', async () => {
    const leader = node(await healthy());
    const standby = cluster.nodes.find((n) => n !== leader && n.name !== 'node3') as NodeHandle;
    const r = await cluster.query(standby, 'select pid from pg_stat_wal_receiver');
    const receiver = (r.rows[0] as { pid: number }).pid;
    process.kill(receiver, 'SIGSTOP'); // the standby stops receiving WAL
    try {
      await cluster.query(leader, "create table if not exists lagfill as select g, repeat('x', 500) as pad from generate_series(1, 6000) g");
      await cluster.query(leader, 'insert into lagfill select g, repeat(\'y\', 500) from generate_series(1, 6000) g');
      await waitFor('the lag visible in etcd', async () => {
        const res = await fetch(`http://127.0.0.1:${leader.apiPort}/cluster`);
        const body = (await res.json()) as { members: Array<{ name: string; lag: number | null }> };
        return (body.members.find((m) => m.name === standby.name)?.lag ?? 0) > 2 * 1024 * 1024;
      }, 10_000, 200);
      const refused = await ctl('switchover', '--candidate', standby.name, '--force');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/ MB behind the leader \(maximum_lag_on_failover 1\.0 MB\)/);
      expect(await leaderName()).toBe(leader.name);
    } finally {
      process.kill(receiver, 'SIGCONT');
    }
    await healthy();
  });

  it('runs a scheduled switchover at its time, and cancels one on request', async () => {
    const old = await healthy();
    const at = new Date(Date.now() + 3000).toISOString();
    await ctlJson('switchover', '--scheduled', at, '--force');
    await sleep(1000); // the point: before its time, nothing happens
    expect(await leaderName()).toBe(old);
    await waitFor('the scheduled switchover', async () => { const p = await cluster.primary(); return p !== null && p.name !== old; }, 20_000);
    const leader = await healthy();
    await ctlJson('switchover', '--scheduled', new Date(Date.now() + 4000).toISOString(), '--force');
    expect((await ctlJson<{ cancelled: boolean }>('flush', '--scheduled')).cancelled).toBe(true);
    await sleep(5000); // the point: past the cancelled time, still nothing happens
    expect(await leaderName()).toBe(leader);
  });

  it('does not fail over while paused, and does once resumed', async () => {
    const leader = node(await healthy());
    await ctlJson('pause', '--wait');
    expect((await ctl('list')).stdout).toContain('Maintenance mode: on');
    cluster.killNode(leader);
    await sleep((TTL_S + 3) * 1000); // the point: past the TTL while paused, nobody is promoted
    expect(await cluster.primary()).toBeNull();
    await ctlJson('resume', '--wait');
    const next = await waitFor('failover after resume', async () => cluster.primary(), 20_000);
    expect(next.name).not.toBe(leader.name);
    cluster.startAgent(leader);
    await healthy();
  });

  it('runs the minor-upgrade procedure of docs/operations.md with one switchover as the only handover', async () => {
    const leader = await healthy();
    const before = (await ctlJson<unknown[]>('history')).length;
    await ctlJson('pause', '--wait');
    for (const s of cluster.nodes.filter((n) => n.name !== leader)) {
      const pid = postmasterPid(s.dataDir);
      await ctlJson('restart', s.name, '--force');
      expect(postmasterPid(s.dataDir)).not.toBe(pid);
      await waitFor(`${s.name} streaming after restart`, async () => (await cluster.probe(s, '/replica')) === 200, 30_000);
    }
    expect(await leaderName()).toBe(leader);
    await ctlJson('resume', '--wait');
    const target = cluster.nodes.find((n) => n.name !== leader && n.name !== 'node3')?.name as string;
    await ctlJson('switchover', '--candidate', target, '--force');
    await waitFor('switchover done', async () => (await cluster.primary())?.name === target, 20_000);
    await healthy();
    await ctlJson('pause', '--wait');
    await ctlJson('restart', leader, '--force');
    await waitFor('old leader streaming', async () => (await cluster.probe(node(leader), '/replica')) === 200, 30_000);
    await ctlJson('resume', '--wait');
    expect(await healthy()).toBe(target);
    expect((await ctlJson<unknown[]>('history')).length).toBe(before + 1);
  });

  it('applies edit-config on every member; a restart-needing change is pending until restart --pending', async () => {
    await ctlJson('edit-config', '--pg', 'work_mem=7MB', '--pg', 'max_connections=41');
    for (const n of cluster.nodes) {
      await waitFor(`work_mem on ${n.name}`, async () => (await cluster.query(n, 'show work_mem')).rows[0]?.work_mem === '7MB', 15_000);
    }
    await waitFor('pending restart on all', async () => (await list()).every((r) => r.pending_restart), 15_000);
    await ctlJson('restart', '--pending', '--force');
    await waitFor('restarted with the new setting', async () => {
      const rows = await list();
      return rows.every((r) => !r.pending_restart) && (await cluster.query(cluster.nodes[0]!, 'show max_connections')).rows[0]?.max_connections === '41';
    }, 30_000);
    const bad = await ctl('edit-config', '--set', 'ttl=1');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ttl/);
    expect((await ctlJson<{ ttl: number }>('show-config')).ttl).toBe(TTL_S);
  });

  it('loses neither of two concurrent edit-config runs', async () => {
    await Promise.all([ctlJson('edit-config', '--pg', 'work_mem=9MB'), ctlJson('edit-config', '--set', 'maximum_lag_on_failover=2097152')]);
    const cfg = await ctlJson<{ maximum_lag_on_failover: number; postgresql: { parameters: Record<string, unknown> } }>('show-config');
    expect(cfg.maximum_lag_on_failover).toBe(2097152);
    expect(cfg.postgresql.parameters.work_mem).toBe('9MB');
  });

  it('reinitializes a standby from the leader, and refuses the leader', async () => {
    const leader = await healthy();
    const standby = cluster.nodes.find((n) => n.name !== leader) as NodeHandle;
    const before = postmasterPid(standby.dataDir);
    await ctlJson('reinit', standby.name, '--force');
    await waitFor('standby rebuilt and streaming', async () => postmasterPid(standby.dataDir) !== before && (await cluster.probe(standby, '/replica')) === 200, 60_000);
    expect(cluster.logs(standby)).toContain('"event":"clone"');
    const r = await ctl('reinit', leader, '--force');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/leader/);
  });

  it('restarts a member at a scheduled time, not before', async () => {
    const leader = await healthy();
    const standby = cluster.nodes.find((n) => n.name !== leader) as NodeHandle;
    const pid = postmasterPid(standby.dataDir);
    await ctlJson('restart', standby.name, '--scheduled', new Date(Date.now() + 2500).toISOString(), '--force');
    await sleep(1000); // the point: before its time, the standby is not restarted
    expect(postmasterPid(standby.dataDir)).toBe(pid);
    await waitFor('the scheduled restart', async () => { const p = postmasterPid(standby.dataDir); return p !== null && p !== pid; }, 15_000);
    await healthy();
  });

  it('drills a switchover and a primary crash, reports them as JSON, and removes its probe table', async () => {
    await healthy();
    const sw = await ctlJson<{ drills: unknown[]; summary: { median_outage_s: number; lost_writes: number } }>('drill', '--kind', 'switchover', '--count', '2', '--yes');
    expect(sw.drills).toHaveLength(2);
    expect(sw.summary.median_outage_s).toBeGreaterThan(0);
    expect(sw.summary.median_outage_s).toBeLessThan(10);
    expect(sw.summary.lost_writes).toBe(0);
    await healthy();
    const kill = await ctlJson<{ summary: { median_outage_s: number } }>('drill', '--kind', 'kill-primary', '--yes');
    expect(kill.summary.median_outage_s).toBeGreaterThan(0);
    const leader = node(await healthy());
    const r = await cluster.query(leader, "select count(*)::int as n from pg_namespace where nspname = 'pgha_drill'");
    expect((r.rows[0] as { n: number }).n).toBe(0);
    await ctlJson('pause', '--wait');
    const refused = await ctl('drill', '--kind', 'switchover', '--yes');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/paused/);
    await ctlJson('resume', '--wait');
  });

  it('answers 401 without credentials and 400 with the reason for bad bodies', async () => {
    const n = cluster.nodes[0]!;
    const url = (p: string) => `http://127.0.0.1:${n.apiPort}${p}`;
    expect((await fetch(url('/switchover'), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })).status).toBe(401);
    const r = await fetch(url('/failover'), { method: 'POST', body: JSON.stringify({ candidate: 5 }), headers: { 'content-type': 'application/json', authorization: AUTH } });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { message: string }).message).toMatch(/candidate/);
    const p = await fetch(url('/config'), { method: 'PATCH', body: JSON.stringify({ loop_wait: 'fast' }), headers: { 'content-type': 'application/json', authorization: AUTH } });
    expect(p.status).toBe(400);
    expect((await fetch(url('/history'))).status).toBe(200);
  });
});
