// WAL archiving and backups with real pgBackRest 2.45 and PostgreSQL 15: the bootstrapping leader
// creates the stanza and `pgbackrest check` passes; pghactl backup (leader and standby), backup
// list and the retention; archiving survives a switchover and a failover with no gap (a restore
// to the end of the archive holds every acknowledged write); a failing archive_command shows in
// /status and pghactl list and stops no switchover; refusals of bad requests; replicas from the
// backup (create_replica_methods: pgbackrest first; before any backup exists, the first clones
// fall back to pg_basebackup).
import { execFile } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';
import { makeRepo, scratchRestore, withBackup } from '../../lab/backup.ts';
import { allocatePorts } from '../../lab/ports.ts';
import type { ArchiveHealth } from '../../src/backup/health.ts';

const repo = makeRepo();
// Ports allocated (lab/ports.ts): node i's PostgreSQL on PG + i, which pgBackRest's peers need up front.
const PG = allocatePorts(3) - 1;
const cluster = new TestCluster({ pgPortBase: PG, ttl: 3, configure: withBackup(repo.path, PG, { create_replica_methods: ['pgbackrest', 'basebackup'] }) });
const AUTH = { authorization: `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`, 'content-type': 'application/json' };

interface Run { code: number; stdout: string; stderr: string }
function ctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // A backup of the small test database takes seconds; 120 s covers a loaded machine.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}
async function ctlJson<T>(...args: string[]): Promise<T> {
  const r = await ctl(...args, '--format', 'json');
  if (r.code !== 0) throw new Error(`pghactl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
const archive = async (n: NodeHandle) => ((await cluster.status(n))?.archive ?? null) as ArchiveHealth | null;

async function healthy(): Promise<NodeHandle> {
  // Bootstrap and two clones: seconds when idle; 110 s covers a loaded 2-core machine.
  return cluster.waitHealthy(110_000);
}

/** The primary's current WAL file is switched and archived (pg_stat_archiver shows it). */
async function archiveNow(p: NodeHandle): Promise<void> {
  const [r] = (await cluster.query(p, 'select pg_walfile_name(pg_switch_wal()) as f')).rows as Array<{ f: string }>;
  // archive-push of one segment: well under a second; 30 s covers a loaded machine.
  await waitFor(`WAL ${r!.f} archived`, async () => {
    const [a] = (await cluster.query(p, 'select last_archived_wal as w from pg_stat_archiver')).rows as Array<{ w: string | null }>;
    return a?.w !== null && a!.w! >= r!.f;
  }, 30_000, 200);
}

/** The scratch restores' PostgreSQL: one allocated port each (a block larger than the file's restores). */
let scratchPort = allocatePorts(10);

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await healthy();
}, 120_000);
afterAll(async () => {
  await cluster.destroy();
  repo.remove();
});

describe('WAL archiving and backups with pgBackRest', () => {
  it('the bootstrapping leader creates the stanza; pgbackrest check passes; every member has archiving on', async () => {
    const p = await healthy();
    // stanza-create and check: a few seconds after the bootstrap.
    const a = await waitFor('check passed on the leader', async () => { const h = await archive(p); return h?.check?.ok === true && h.last_archived_wal !== null ? h : null; }, 60_000, 250);
    expect(a.archive_mode).toBe('on');
    // pg_stat_archiver is read every 5 s: each member reports within one more period.
    for (const n of cluster.nodes) await waitFor(`${n.name} reports archive_mode`, async () => (await archive(n))?.archive_mode === 'on', 15_000, 250);
    expect(cluster.logs(p)).toMatch(/"event":"backup stanza"/);
  });

  let first = '';
  it('pghactl backup takes a full backup on the leader and reports size, duration and WAL range; backup list shows it', async () => {
    const p = await healthy();
    await cluster.query(p, 'create table acks(id int primary key, at timestamptz default clock_timestamp())');
    const r = await ctlJson<{ member: string; seconds: number; backup: { label: string; type: string; size: number; wal_start: string; wal_stop: string } }>('backup', '--type', 'full');
    expect(r.member).toBe(p.name);
    expect(r.backup.type).toBe('full');
    expect(r.backup.size).toBeGreaterThan(1_000_000);
    expect(r.backup.wal_start).toMatch(/^[0-9A-F]{24}$/);
    expect(r.backup.wal_stop >= r.backup.wal_start).toBe(true);
    first = r.backup.label;
    const listed = await ctlJson<Array<{ stanza: string; backups: Array<{ label: string }> }>>('backup', 'list');
    expect(listed[0]?.stanza).toBe('itest');
    expect(listed[0]?.backups.map((b) => b.label)).toEqual([first]);
    const table = await ctl('backup', 'list');
    expect(table.stdout).toContain(first);
    expect(table.stdout).toMatch(/Stanza: itest \(ok\)/);
  });

  it('refuses a second backup while one runs, and a backup on a standby without --standby', async () => {
    const p = await healthy();
    const url = `${cluster.apiBase(p)}/backup`;
    const post = (body: unknown, n = p) => fetch(`${cluster.apiBase(n)}/backup`, { method: 'POST', headers: { ...AUTH, 'x-pgha-member': n.name }, body: JSON.stringify(body) });
    const one = await post({ type: 'incr' });
    expect(one.status).toBe(202);
    const two = await post({ type: 'full' });
    expect(two.status).toBe(409);
    expect(await two.json()).toMatchObject({ error: 'PGHA_BACKUP_BUSY' });
    const standby = cluster.nodes.find((n) => n !== p)!;
    const three = await post({ type: 'full' }, standby);
    expect(three.status).toBe(412);
    expect((await three.json() as { message: string }).message).toMatch(/not the leader/);
    // No credentials: 401 before anything runs.
    expect((await fetch(url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'x-pgha-member': p.name } })).status).toBe(401);
    await waitFor('the incremental backup done', async () => {
      const j = (await (await fetch(url, { headers: AUTH })).json()) as { job: { state: string } };
      return j.job.state !== 'running' ? j.job.state : null;
    }, 60_000, 250).then((s) => expect(s).toBe('done'));
  });

  it('archiving survives a switchover and a failover with no gap: a restore to the end of the archive has every acknowledged write', async () => {
    let p = await healthy();
    let id = 0;
    const write = async (n: number) => { for (let i = 0; i < n; i++) await cluster.query(p, 'insert into acks(id) values ($1)', [++id]); };
    await write(30);
    const sw = await ctl('switchover', '--force');
    expect(sw.code, sw.stderr).toBe(0);
    p = await waitFor('the new leader after the switchover', async () => { const q = await cluster.primary(); return q !== null && q !== p ? q : null; }, 30_000);
    await healthy();
    await write(30);
    // Async replication: wait until both standbys have every write, then crash the leader.
    const { lsn } = (await cluster.query(p, 'select pg_current_wal_lsn()::text as lsn')).rows[0] as { lsn: string };
    for (const n of cluster.nodes.filter((x) => x !== p)) {
      await waitFor(`${n.name} replayed ${lsn}`, async () => ((await cluster.query(n, 'select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok', [lsn])).rows[0] as { ok: boolean }).ok, 20_000);
    }
    const old = p;
    cluster.killNode(old);
    p = await waitFor('a leader after the failover', async () => { const q = await cluster.primary(); return q !== null && q !== old ? q : null; }, 30_000);
    const promotedAt = Date.now();
    // The check after the promotion: a WAL switch archived from the new timeline.
    const h = await waitFor('pgbackrest check after the promotion', async () => { const a = await archive(p); return a?.check !== null && a?.check !== undefined && Date.parse(a.check.at) >= promotedAt - 1000 ? a : null; }, 90_000, 250);
    expect(h.check?.ok, h.check?.error ?? '').toBe(true);
    await write(20);
    await archiveNow(p);
    cluster.startAgent(old);
    const s = await scratchRestore(p, cluster.dir, scratchPort++, ['--type=default']);
    try {
      const rows = await s.query('select count(*)::int as n, max(id) as m from acks');
      expect(rows[0]).toEqual({ n: id, m: id });
    } finally { await s.stop(); }
    await healthy();
  });

  it('the archive restores to a time, a restore point and an LSN: exactly the rows committed up to the target', async () => {
    const p = await healthy();
    await cluster.query(p, 'create table pitr(id int primary key)');
    const insert = async (from: number, to: number) => { for (let i = from; i <= to; i++) await cluster.query(p, 'insert into pitr values ($1)', [i]); };
    const now = async () => ((await cluster.query(p, 'select clock_timestamp()::text as t')).rows[0] as { t: string }).t;
    await insert(1, 10);
    // The point: 300 ms on either side of the restore target time keep rows 10 and 11 apart in time.
    await new Promise((r) => setTimeout(r, 300));
    const t = await now();
    await new Promise((r) => setTimeout(r, 300));
    await insert(11, 20);
    const rp = await ctlJson<{ name: string; lsn: string }>('restore-point', 'before-21');
    expect(rp.name).toBe('before-21');
    await insert(21, 30);
    const { lsn } = (await cluster.query(p, 'select pg_current_wal_insert_lsn()::text as lsn')).rows[0] as { lsn: string };
    await insert(31, 40);
    await archiveNow(p);
    const ids = async (options: string[]) => {
      const s = await scratchRestore(p, cluster.dir, scratchPort++, [...options, '--target-action=promote']);
      try { return (await s.query('select coalesce(min(id), 0) as lo, coalesce(max(id), 0) as hi, count(*)::int as n from pitr'))[0]; } finally { await s.stop(); }
    };
    expect(await ids(['--type=time', `--target=${t}`])).toEqual({ lo: 1, hi: 10, n: 10 });
    expect(await ids(['--type=name', '--target=before-21'])).toEqual({ lo: 1, hi: 20, n: 20 });
    expect(await ids(['--type=lsn', `--target=${lsn}`])).toEqual({ lo: 1, hi: 30, n: 30 });
    // A bad name is refused by pghactl before anything is sent.
    const bad = await ctl('restore-point', 'no spaces allowed');
    expect(bad.code).toBe(2);
  });

  it('a failing archive_command shows in /status, the logs and pghactl list, and stops no switchover', async () => {
    const p = await healthy();
    const archiveDir = join(repo.path, 'archive');
    chmodSync(archiveDir, 0o000);
    try {
      await cluster.query(p, 'select pg_switch_wal()');
      await cluster.query(p, 'insert into acks(id) values (100000)');
      await cluster.query(p, 'select pg_switch_wal()');
      const a = await waitFor('archiving reported failing', async () => { const x = await archive(p); return x?.failing === true ? x : null; }, 30_000, 250);
      expect(a.failed_count).toBeGreaterThan(0);
      const list = await ctl('list');
      expect(list.stdout).toMatch(new RegExp(`WARNING: WAL archiving is failing on ${p.name}`));
      await waitFor('the warning in the log', async () => /"event":"archive failing"/.test(cluster.logs(p)), 15_000);
      const started = performance.now();
      const sw = await ctl('switchover', '--force');
      expect(sw.code, sw.stderr).toBe(0);
      await waitFor('a new leader despite the failing archive', async () => { const q = await cluster.primary(); return q !== null && q !== p ? q : null; }, 30_000);
      expect(performance.now() - started).toBeLessThan(30_000);
    } finally {
      chmodSync(archiveDir, 0o750);
    }
    const q = await healthy();
    await cluster.query(q, 'select pg_switch_wal()');
    await waitFor('archiving recovered', async () => (await archive(q))?.failing === false, 30_000, 250);
  });

  it('a member reinitialized from the backup streams afterwards (and the first clones fell back to pg_basebackup)', async () => {
    const p = await healthy();
    const standbys = cluster.nodes.filter((n) => n !== p);
    expect(standbys.some((n) => /"event":"replica restore failed"/.test(cluster.logs(n)))).toBe(true);
    const target = standbys[0]!;
    const r = await ctl('reinit', target.name, '--force', '--timeout', '120');
    expect(r.code, r.stderr).toBe(0);
    expect(cluster.logs(target)).toMatch(/"event":"replica restored"/);
    await cluster.query(p, 'insert into acks(id) values (200000)');
    await waitFor('the new row on the rebuilt member', async () => (await cluster.query(target, 'select 1 from acks where id = 200000')).rowCount === 1, 20_000);
    await healthy();
  });

  it('a backup taken on a standby restores; the retention expires the oldest full backup', async () => {
    const p = await healthy();
    const r = await ctlJson<{ member: string; backup: { label: string; type: string } }>('backup', '--standby', '--type', 'full');
    expect(r.member).not.toBe(p.name);
    const { n: count } = (await cluster.query(p, 'select count(*)::int as n from acks')).rows[0] as { n: number };
    const s = await scratchRestore(p, cluster.dir, scratchPort++, [`--set=${r.backup.label}`, '--type=immediate', '--target-action=promote']);
    try {
      const rows = await s.query('select count(*)::int as n from acks');
      expect(rows[0]?.n).toBe(count);
    } finally { await s.stop(); }
    // retention_full 2: the third full backup expires the first (pgBackRest expires after each backup).
    const third = await ctlJson<{ backup: { label: string } }>('backup', '--type', 'full');
    const listed = await ctlJson<Array<{ backups: Array<{ label: string; type: string }>; wal_min: string }>>('backup', 'list');
    const fulls = listed[0]!.backups.filter((b) => b.type === 'full').map((b) => b.label);
    expect(fulls).toEqual([r.backup.label, third.backup.label]);
    expect(fulls).not.toContain(first);
    const ex = await ctlJson<{ expired: string[]; kept: string[] }>('backup', 'expire');
    expect(ex.expired).toEqual([]);
    expect(ex.kept).toContain(third.backup.label);
  });
});
