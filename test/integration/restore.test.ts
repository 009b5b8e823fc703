// pghactl restore, the whole-cluster point-in-time restore, with real pgBackRest 2.45,
// PostgreSQL 15 and etcd: the refusals (each changing nothing), restores to a time, an LSN, a
// restore point and the end of the archive (each on a new timeline, every member streaming
// afterwards, the restore in the history), an interrupted restore finished with --resume, and a
// failing archive_command that stops no failover.
import { execFile } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';
import { makeRepo, withBackup } from '../../lab/backup.ts';
import { allocatePorts } from '../../lab/ports.ts';

const repo = makeRepo();
// Ports allocated (lab/ports.ts): node i's PostgreSQL on PG + i, which pgBackRest's peers need up front.
const PG = allocatePorts(3) - 1;
const cluster = new TestCluster({ pgPortBase: PG, ttl: 3, configure: withBackup(repo.path, PG) });
const ETCD = cluster.ports.etcd;
const RESTORE_KEY = '/pgha-test/itest/restore';

interface Run { code: number; stdout: string; stderr: string }
function ctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // A restore of the small test database, its WAL and two clones: well under a minute; 150 s
    // covers a loaded 2-core machine.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 150_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}
function etcdctl(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // One etcd read or write on localhost: 10 s covers a loaded machine.
    execFile('etcdctl', [`--endpoints=127.0.0.1:${ETCD}`, ...args], { env: { ETCDCTL_API: '3', PATH: '/usr/bin:/bin' }, timeout: 10_000 }, (err, stdout) => (err === null ? resolve(stdout) : reject(err)));
  });
}

async function healthy(): Promise<NodeHandle> {
  // Bootstrap and two clones: seconds when idle; 110 s covers a loaded 2-core machine.
  return cluster.waitHealthy(110_000);
}

const timeline = async (n: NodeHandle) => ((await cluster.status(n))?.timeline ?? null) as number | null;
const pausedNow = async (n: NodeHandle) => (await cluster.status(n))?.pause === true;
const history = async (n: NodeHandle) => (await (await fetch(`${cluster.apiBase(n)}/history`)).json()) as Array<{ timeline: number; reason: string }>;

/** Nothing changed: same leader, not paused, no /restore record, every standby streaming. */
async function unchanged(leader: NodeHandle): Promise<void> {
  expect(await cluster.primary()).toBe(leader);
  expect(await pausedNow(leader)).toBe(false);
  expect(await etcdctl('get', RESTORE_KEY, '--print-value-only')).toBe('');
  expect((await cluster.replicas(true)).length).toBe(2);
}

/** After a restore: a primary on a timeline above `before`, two standbys streaming on it, the restore in /history. */
async function restoredCluster(before: number): Promise<{ p: NodeHandle; tl: number }> {
  const p = await healthy();
  const tl = (await timeline(p))!;
  expect(tl).toBeGreaterThan(before);
  for (const n of cluster.nodes.filter((x) => x !== p)) {
    // Each standby publishes its timeline once per loop (0.5 s).
    await waitFor(`${n.name} streams on timeline ${tl}`, async () => (await timeline(n)) === tl, 15_000, 200);
  }
  const h = await waitFor('the restore in /history', async () => { const e = (await history(p)).at(-1); return e?.timeline === tl ? e : null; }, 10_000, 200);
  expect(h.reason).toMatch(/^restore to /);
  expect(await pausedNow(p)).toBe(false);
  expect(await etcdctl('get', RESTORE_KEY, '--print-value-only')).toBe('');
  return { p, tl };
}

async function restore(...args: string[]): Promise<Run> {
  const r = await ctl('restore', ...args, '--force');
  expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
  console.log(`pghactl restore ${args.join(' ')}: ${r.stdout.trim()}`); // the durations reported in docs/backup.md
  return r;
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  const p = await healthy();
  // stanza-create and the first check: a few seconds after the bootstrap.
  await waitFor('the stanza', async () => ((await cluster.status(p))?.archive as { check?: { ok?: boolean } } | null)?.check?.ok === true, 60_000, 250);
}, 180_000);
afterAll(async () => {
  await cluster.destroy();
  repo.remove();
});

describe('pghactl restore (whole-cluster point-in-time restore)', () => {
  it('refuses without a backup in the repository, changing nothing', async () => {
    const p = await healthy();
    const r = await ctl('restore', '--latest', '--force');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PGHA_RESTORE_NO_BACKUP/);
    await unchanged(p);
  });

  it('refuses a time in the future or before the oldest backup, an unknown LSN, a second restore and a pending switchover, changing nothing', async () => {
    const p = await healthy();
    const b = await ctl('backup');
    expect(b.code, b.stderr).toBe(0);
    const cases: Array<[string[], RegExp]> = [
      [['--time', new Date(Date.now() + 3_600_000).toISOString()], /PGHA_RESTORE_TARGET_INVALID: --time .* is in the future/],
      [['--time', '2001-01-01T00:00:00Z'], /PGHA_RESTORE_TARGET_INVALID: --time .* is before the end of the oldest backup/],
      [['--lsn', 'FF/0'], /PGHA_RESTORE_TARGET_INVALID: --lsn FF\/0 is beyond the leader's current position/],
      [['--time', 'yesterday'], /PGHA_CLI_USAGE/],
    ];
    for (const [args, want] of cases) {
      const r = await ctl('restore', ...args, '--force');
      expect(r.code, args.join(' ')).toBe(want.source.includes('USAGE') ? 2 : 1);
      expect(r.stderr).toMatch(want);
    }
    await unchanged(p);
    // Another restore is recorded (claimed create-only): refused, the record untouched.
    const other = JSON.stringify({ id: 'deadbeef0001', target: { type: 'latest' }, member: p.name, set: null, phase: 'claimed', was_paused: false, started: 'x', updated: 'x', timeline_before: 1, lsn_before: null });
    await etcdctl('put', RESTORE_KEY, other);
    onTestFailed(() => { void etcdctl('del', RESTORE_KEY); });
    const two = await ctl('restore', '--latest', '--force');
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/PGHA_RESTORE_IN_PROGRESS: restore deadbeef0001 .* is recorded in etcd/);
    expect((await etcdctl('get', RESTORE_KEY, '--print-value-only')).trim()).toBe(other);
    // Nor may the cluster be resumed under it (the leader would start PostgreSQL mid-restore).
    const resume = await ctl('resume');
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(/PGHA_RESTORE_IN_PROGRESS: a restore is recorded/);
    // The agents refuse its steps while the cluster is not paused.
    const stop = await fetch(`${cluster.apiBase(p)}/restore/stop`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`, 'content-type': 'application/json', 'x-pgha-member': p.name }, body: JSON.stringify({ id: 'deadbeef0001' }) });
    expect(stop.status).toBe(409);
    expect(((await stop.json()) as { error: string }).error).toBe('PGHA_RESTORE_STATE');
    const anon = await fetch(`${cluster.apiBase(p)}/restore`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'deadbeef0001' }) });
    expect(anon.status).toBe(401);
    const ab = await ctl('restore', '--abort', '--force');
    expect(ab.code, ab.stderr).toBe(0);
    // A switchover is pending (scheduled): refused.
    const sw = await ctl('switchover', '--scheduled', new Date(Date.now() + 3_600_000).toISOString(), '--force');
    expect(sw.code, sw.stderr).toBe(0);
    const pending = await ctl('restore', '--latest', '--force');
    expect(pending.code).toBe(1);
    expect(pending.stderr).toMatch(/PGHA_RESTORE_HANDOVER_PENDING/);
    expect((await ctl('flush', '--scheduled')).code).toBe(0);
    await unchanged(p);
  });

  it('restores to a time: exactly the rows committed at or before it, on a new timeline, every member streaming', async () => {
    let p = await healthy();
    const before = (await timeline(p))!;
    await cluster.query(p, 'create table ticks(id int primary key, at timestamptz not null)');
    // The target must lie past the end of the backup (whole seconds in pgBackRest's info).
    await new Promise((r) => setTimeout(r, 1500));
    const write = async (from: number, to: number) => {
      for (let i = from; i <= to; i++) {
        await cluster.query(p, 'insert into ticks values ($1, clock_timestamp())', [i]);
        await new Promise((r) => setTimeout(r, 40)); // commits at least 40 ms apart
      }
    };
    await write(1, 40);
    // T: 15 ms after row 25's time, so row 25 committed before T and row 26 after it.
    const { t } = (await cluster.query(p, `select to_char((at + interval '15 ms') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t from ticks where id = 25`)).rows[0] as { t: string };
    const { n: want } = (await cluster.query(p, 'select count(*)::int as n from ticks where at <= $1::timestamptz', [t])).rows[0] as { n: number };
    expect(want).toBe(25);
    const r = await restore('--time', t);
    expect(r.stdout).toMatch(/restore done in .*leads on timeline \d+/);
    expect(r.stderr).toMatch(/WARNING: restore to time .* timeline \d+ .*is LOST/);
    ({ p } = await restoredCluster(before));
    const rows = (await cluster.query(p, 'select count(*)::int as n, max(id) as m, bool_and(at <= $1::timestamptz) as ok from ticks', [t])).rows[0];
    expect(rows).toEqual({ n: 25, m: 25, ok: true });
    // Every member holds the same rows (the standbys were rebuilt from the restored leader).
    for (const n of cluster.nodes.filter((x) => x !== p)) {
      await waitFor(`${n.name} has the restored rows`, async () => ((await cluster.query(n, 'select count(*)::int as n from ticks')).rows[0] as { n: number }).n === 25, 10_000, 200);
    }
  });

  it('restores to an LSN, then to a named restore point (on the timeline the LSN restore left)', async () => {
    let p = await healthy();
    await cluster.query(p, 'create table marks(id int primary key)');
    const insert = async (from: number, to: number) => { for (let i = from; i <= to; i++) await cluster.query(p, 'insert into marks values ($1)', [i]); };
    await insert(1, 10);
    const rp = await ctl('restore-point', 'rp-10');
    expect(rp.code, rp.stderr).toBe(0);
    await insert(11, 20);
    const { lsn } = (await cluster.query(p, 'select pg_current_wal_insert_lsn()::text as lsn')).rows[0] as { lsn: string };
    await insert(21, 30);
    let before = (await timeline(p))!;
    await restore('--lsn', lsn);
    ({ p } = await restoredCluster(before));
    expect((await cluster.query(p, 'select count(*)::int as n, max(id) as m from marks')).rows[0]).toEqual({ n: 20, m: 20 });
    before = (await timeline(p))!;
    await restore('--name', 'rp-10');
    ({ p } = await restoredCluster(before));
    expect((await cluster.query(p, 'select count(*)::int as n, max(id) as m from marks')).rows[0]).toEqual({ n: 10, m: 10 });
  });

  it('--latest holds every write acknowledged before it started; an interrupted restore finishes with --resume', async () => {
    let p = await healthy();
    await cluster.query(p, 'create table acked(id int primary key)');
    for (let i = 1; i <= 50; i++) await cluster.query(p, 'insert into acked values ($1)', [i]);
    const before = (await timeline(p))!;
    // pghactl is killed while the leader restores; the agent's job goes on and marks /restore.
    const child = execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, 'restore', '--latest', '--force']);
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
    // Pause and stops: a few seconds; 60 s covers a loaded machine.
    await waitFor('the restore of the leader starting', async () => /restoring node\d to /.test(err), 60_000, 50);
    child.kill('SIGKILL');
    const rec = JSON.parse(await etcdctl('get', RESTORE_KEY, '--print-value-only')) as { phase: string };
    expect(['paused', 'stopped', 'restored']).toContain(rec.phase);
    const again = await ctl('restore', '--latest', '--force');
    expect(again.stderr).toMatch(/PGHA_RESTORE_IN_PROGRESS/);
    const r = await ctl('restore', '--resume', '--force');
    expect(r.code, r.stderr).toBe(0);
    console.log(`pghactl restore --resume: ${r.stdout.trim()}`);
    ({ p } = await restoredCluster(before));
    expect((await cluster.query(p, 'select count(*)::int as n, max(id) as m from acked')).rows[0]).toEqual({ n: 50, m: 50 });
  });

  it('a failing archive_command stops no failover', async () => {
    const p = await healthy();
    const archiveDir = join(repo.path, 'archive');
    chmodSync(archiveDir, 0o000);
    try {
      await cluster.query(p, 'insert into acked values (1000)');
      await cluster.query(p, 'select pg_switch_wal()');
      await waitFor('archiving reported failing', async () => ((await cluster.status(p))?.archive as { failing?: boolean } | null)?.failing === true, 30_000, 250);
      const started = performance.now();
      cluster.killNode(p);
      // ttl 3 s: the key expires and a standby promotes within seconds.
      await waitFor('a new leader despite the failing archive', async () => { const q = await cluster.primary(); return q !== null && q !== p ? q : null; }, 30_000);
      expect(performance.now() - started).toBeLessThan(30_000);
    } finally {
      chmodSync(archiveDir, 0o750);
      cluster.startAgent(p);
    }
    await healthy();
  });
});
