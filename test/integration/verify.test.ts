// pghactl verify against a real 3-node cluster (and a separate PostgreSQL as logical subscriber):
// no false positive while the leader is written hard; every injected difference (changed,
// missing, extra row; with and without a primary key) found with its exact key on a physical
// standby made to diverge (heap pages edited on the stopped standby: test/support/heap-edit.ts)
// and on a subscriber; the standby is marked unsafe (never a switchover candidate) until
// --repair's reinit; a subscriber's rows are copied back; the next check is clean.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupOsUser } from '../../src/postgres/exec.ts';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { PASSWORDS, REPO, sleep, waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';
import { editTuple, fixChecksums } from '../support/heap-edit.ts';

const SUB_PORT = allocatePorts(1); // the subscriber's PostgreSQL
/** Seconds of concurrent writes (the issue asks for 2 minutes). */
const WRITE_SECONDS = Number(process.env.PGHA_VERIFY_WRITE_SECONDS ?? 120);
const cluster = new TestCluster({
  dcs: { postgresql: { parameters: { shared_buffers: '16MB', max_connections: 40, wal_level: 'logical' } } },
});
const BIN = '/usr/lib/postgresql/15/bin';
const osUser = lookupOsUser('postgres');
const subDir = join(cluster.dir, 'subscriber');

interface Run { code: number; stdout: string; stderr: string }
function ctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // A verify of these small tables takes seconds; 120 s allows a reinit on a loaded machine.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}
interface RowDiff { key: string; leader: string | null; other: string | null }
interface Report {
  summary: { different_chunks: number; unsettled_chunks: number; error_chunks: number; rows: number; tables: number; chunks: number };
  sides: Array<{ side: string; database: string; aborted?: string; tables: Array<{ table: string; problems: Array<{ status: string; rows: RowDiff[] }> }> }>;
}
const parse = (r: Run): Report => { try { return JSON.parse(r.stdout) as Report; } catch { throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`); } };
const diffsOf = (rep: Report, table: string): RowDiff[] =>
  rep.sides.flatMap((s) => s.tables.filter((t) => t.table === table).flatMap((t) => t.problems.flatMap((p) => p.rows)));
const byName = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;

async function listRows(): Promise<Array<{ member: string; role: string; state: string; tags: string }>> {
  const r = await ctl('list', '--format', 'json');
  return r.code === 0 ? JSON.parse(r.stdout) : [];
}
// Bootstrap plus two clones take seconds when idle; 110 s covers a loaded 2-core machine.
async function healthy(): Promise<string> {
  return waitFor('a healthy cluster', async () => {
    const rows = await listRows();
    const leader = rows.find((r) => r.role === 'Leader' && r.state === 'running');
    return leader !== undefined && rows.filter((r) => r.role === 'Replica' && r.state === 'streaming').length === 2 ? leader.member : null;
  }, 110_000, 200);
}
async function sql(n: NodeHandle | number, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ host: '127.0.0.1', port: typeof n === 'number' ? n : n.pgPort, user: 'postgres', password: PASSWORDS.superuser, database: 'postgres', connectionTimeoutMillis: 5000 });
  await c.connect();
  try { return await c.query(text, params); } finally { await c.end(); }
}
/** Until `n` replayed the leader's current position (seconds at most on a loaded machine). */
async function caughtUp(leader: NodeHandle, n: NodeHandle): Promise<void> {
  const lsn = (await sql(leader, 'select pg_current_wal_lsn()::text as l')).rows[0].l as string;
  await waitFor(`${n.name} replays ${lsn}`, async () => (await sql(n, 'select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok', [lsn])).rows[0].ok === true, 30_000, 50);
}

let leader: NodeHandle;

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  leader = byName(await healthy());
}, 120_000);
afterAll(async () => {
  try { execFileSync(`${BIN}/pg_ctl`, ['stop', '-m', 'immediate', '-D', subDir], { uid: osUser.uid, gid: osUser.gid, stdio: 'ignore' }); } catch { /* not started */ }
  await cluster.destroy();
});

describe('pghactl verify, physical standbys', () => {
  it(`reports no difference during ${WRITE_SECONDS} s of concurrent writes`, async () => {
    await sql(leader, `create table acc (id int primary key, v text not null, n int not null default 0);
      insert into acc select g, 'v' || g, 0 from generate_series(1, 20000) g;
      create table events (a int, b text); insert into events select g, 'e' || g from generate_series(1, 2000) g`);
    let stop = false;
    let writes = 0;
    let failed: unknown = null;
    const writer = async (w: number) => {
      const c = new pg.Client({ host: '127.0.0.1', port: leader.pgPort, user: 'postgres', password: PASSWORDS.superuser, database: 'postgres' });
      await c.connect();
      let i = 0;
      try { while (!stop) {
        i += 1;
        const hot = 1 + ((i * 7 + w) % 50); // a small hot set: the same rows rewritten over and over
        if (i % 5 === 0) {
          // A subtransaction: rows whose xmin is a subxid, committed later with their parent.
          await c.query('begin'); await c.query('savepoint s'); await c.query("update acc set v = v || 'x', n = n + 1 where id = $1", [hot]); await c.query('release savepoint s'); await c.query('commit');
        } else if (i % 5 === 1) await c.query("insert into acc values ($1, 'new') on conflict (id) do update set v = 'again'", [20000 + ((i * 13 + w) % 3000)]);
        else if (i % 5 === 2) await c.query('delete from acc where id = $1', [20000 + ((i * 17 + w) % 3000)]);
        else if (i % 5 === 3) { await c.query("insert into events values ($1, 'w')", [i]); await c.query('delete from events where a = $1', [i - 50]); }
        else await c.query("update acc set v = case when v = 'a' then 'b' else 'a' end where id = $1", [hot]); // A-B-A
        writes += 1;
      } } catch (err) { failed ??= err; stop = true; }
      await c.end();
    };
    const writers = [1, 2, 3].map((w) => writer(w));
    const end = performance.now() + WRITE_SECONDS * 1000;
    const codes: number[] = [];
    const open: number[] = []; // chunks not settled (or failed) per run, of `chunks`
    let chunks = 0;
    try {
      while (performance.now() < end && !stop) {
        const r = await ctl('verify', '-d', 'postgres', '--chunk-rows', '1000', '--format', 'json');
        const rep = parse(r);
        expect(rep.summary.different_chunks, r.stdout).toBe(0);
        expect([0, 4]).toContain(r.code);
        expect(rep.summary.rows).toBeGreaterThan(20000);
        codes.push(r.code);
        open.push(rep.summary.unsettled_chunks + rep.summary.error_chunks);
        chunks = rep.summary.chunks;
      }
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    expect(failed).toBeNull();
    expect(writes).toBeGreaterThan(1000);
    expect(codes.length).toBeGreaterThan(2);
    expect((await listRows()).map((r) => r.tags).join()).not.toMatch(/UNSAFE/);
    // Once the writes stop, the check is complete and clean.
    const quiet = await ctl('verify', '-d', 'postgres', '--format', 'json');
    expect(quiet.code, quiet.stdout).toBe(0);
    console.log(`verify under writes: ${codes.length} runs (${codes.filter((c) => c === 0).length} complete, ${codes.filter((c) => c === 4).length} with a chunk not settled; chunks not settled per run: ${open.join(', ')} of ${chunks}), ${writes} writes`);
  }, (WRITE_SECONDS + 100) * 1000);

  it('finds every difference injected into a standby, marks it unsafe, and --repair reinitializes it', async () => {
    const standby = cluster.nodes.find((n) => n.name !== leader.name) as NodeHandle;
    // Small tables on one page with room to spare (no pruning on read) and no autovacuum: the
    // leader never rewrites these pages, so the edits stay until they are found.
    await sql(leader, `create table div_pk (id int primary key, v text) with (autovacuum_enabled = false);
      create table div_nopk (a int, v text) with (autovacuum_enabled = false);
      insert into div_pk select g, 'value-' || lpad(g::text, 5, '0') from generate_series(1, 60) g;
      insert into div_nopk select g, 'value-' || lpad(g::text, 5, '0') from generate_series(1, 60) g`);
    const ctids: Record<string, string> = {};
    for (const t of ['div_pk', 'div_nopk']) {
      const col = t === 'div_pk' ? 'id' : 'a';
      for (const k of [12, 13, 14]) ctids[`${t}/${k}`] = (await sql(leader, `select ctid::text as c from ${t} where ${col} = $1`, [k])).rows[0].c as string;
    }
    await sql(leader, 'delete from div_pk where id = 14; delete from div_nopk where a = 14');
    // Set every hint bit on the leader now (with data checksums the first one is WAL-logged as a
    // full page, which would overwrite the edited standby page later).
    await sql(leader, 'select count(*) from div_pk; select count(*) from div_nopk; checkpoint; select count(*) from div_pk; select count(*) from div_nopk');
    await caughtUp(leader, standby);
    const paths = { div_pk: (await sql(leader, "select pg_relation_filepath('div_pk') as p")).rows[0].p as string, div_nopk: (await sql(leader, "select pg_relation_filepath('div_nopk') as p")).rows[0].p as string };
    await cluster.stopAgent(standby); // stops its PostgreSQL cleanly ("shut down in recovery")
    for (const t of ['div_pk', 'div_nopk'] as const) {
      editTuple(standby.dataDir, paths[t], ctids[`${t}/12`]!, { kind: 'replace', from: 'value-00012', to: 'VALUE-00012' });
      editTuple(standby.dataDir, paths[t], ctids[`${t}/13`]!, { kind: 'hide' });
      editTuple(standby.dataDir, paths[t], ctids[`${t}/14`]!, { kind: 'revive' });
    }
    fixChecksums(standby.dataDir);
    cluster.startAgent(standby);
    await healthy();

    const found = await ctl('verify', '-m', standby.name, '--chunk-rows', '10', '--format', 'json');
    expect(found.code, found.stdout + found.stderr).toBe(3);
    const rep = parse(found);
    const pk = diffsOf(rep, 'public.div_pk').sort((a, b) => a.key.localeCompare(b.key));
    expect(pk).toEqual([
      expect.objectContaining({ key: '[12]', leader: '(12,value-00012)', other: '(12,VALUE-00012)' }),
      expect.objectContaining({ key: '[13]', leader: '(13,value-00013)', other: null }),
      expect.objectContaining({ key: '[14]', leader: null, other: '(14,value-00014)' }),
    ]);
    const nopk = diffsOf(rep, 'public.div_nopk').map((d) => `${d.leader ?? '-'} | ${d.other ?? '-'}`).sort();
    expect(nopk).toEqual(['(12,value-00012) | -', '(13,value-00013) | -', '- | (12,VALUE-00012)', '- | (14,value-00014)']);
    expect(diffsOf(rep, 'public.acc')).toEqual([]);

    // Marked unsafe: shown by list, refused as a switchover candidate.
    expect((await listRows()).find((r) => r.member === standby.name)?.tags).toMatch(/UNSAFE\(verify\)/);
    const sw = await ctl('switchover', '--candidate', standby.name, '--force');
    expect(sw.code).toBe(1);
    expect(sw.stderr).toMatch(/marked unsafe/);

    const repaired = await ctl('verify', '-m', standby.name, '--repair', '--force', '--timeout', '100');
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(3); // it reports what it found, then repairs
    expect(repaired.stderr).toMatch(/reinitialized/);
    await healthy();
    expect((await listRows()).find((r) => r.member === standby.name)?.tags).not.toMatch(/UNSAFE/);
    const clean = await ctl('verify', '-m', standby.name, '--format', 'json');
    expect(clean.code, clean.stdout).toBe(0);
  }, 200_000);

  it('runs on a paused cluster, refuses while a switchover is pending, and exits 2 on bad options', async () => {
    const usage = await ctl('verify', '--chunk-rows', '0');
    expect(usage.code).toBe(2);
    expect((await ctl('pause')).code).toBe(0);
    try {
      const paused = await ctl('verify', '--table', 'div_pk');
      expect(paused.code, paused.stdout + paused.stderr).toBe(0);
      expect(paused.stdout).toMatch(/summary: 2 tables, 118 rows/); // div_pk on both standbys
    } finally {
      expect((await ctl('resume')).code).toBe(0);
    }
    const other = cluster.nodes.find((n) => n.name !== leader.name) as NodeHandle;
    const later = new Date(Date.now() + 3_600_000).toISOString();
    expect((await ctl('switchover', '--candidate', other.name, '--scheduled', later, '--force')).code).toBe(0);
    try {
      const r = await ctl('verify');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not verifying now: a switchover is pending/);
    } finally {
      expect((await ctl('flush', '--scheduled')).code).toBe(0);
    }
  }, 60_000);
});

describe('pghactl verify, logical subscriber', () => {
  it('finds the injected differences with their keys, copies them back with --repair, then is clean', async () => {
    mkdirSync(subDir, { mode: 0o700 });
    execFileSync('chown', [`${osUser.uid}:${osUser.gid}`, subDir]);
    const pw = join(cluster.dir, 'subscriber.pw');
    writeFileSync(pw, PASSWORDS.superuser, { mode: 0o600 });
    execFileSync('chown', [`${osUser.uid}:${osUser.gid}`, pw]);
    const as = { uid: osUser.uid, gid: osUser.gid, stdio: 'pipe' as const };
    execFileSync(`${BIN}/initdb`, ['-D', subDir, '-U', 'postgres', '--pwfile', pw, '-A', 'scram-sha-256', '--no-sync'], as);
    execFileSync(`${BIN}/pg_ctl`, ['start', '-w', '-D', subDir, '-l', join(cluster.dir, 'subscriber.log'), '-o', `-p ${SUB_PORT} -k ${cluster.dir} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB`], as);
    const tables = `create table pub_pk (id int primary key, v text); create table pub_nopk (a int, v text);`;
    await sql(leader, `${tables} alter table pub_nopk replica identity full;
      insert into pub_pk select g, 'value-' || g from generate_series(1, 300) g;
      insert into pub_nopk select g, 'value-' || g from generate_series(1, 100) g;
      create publication verify_pub for table pub_pk, pub_nopk`);
    await sql(SUB_PORT, tables);
    await sql(SUB_PORT, `create subscription verify_sub connection 'host=127.0.0.1 port=${leader.pgPort} user=postgres password=${PASSWORDS.superuser} dbname=postgres' publication verify_pub`);
    // The initial copy of 400 rows takes a moment; 60 s on a loaded machine.
    await waitFor('the initial copy', async () => Number((await sql(SUB_PORT, 'select (select count(*) from pub_pk) + (select count(*) from pub_nopk) as n')).rows[0].n) === 400, 60_000, 200);
    const dsn = `postgresql://postgres:${encodeURIComponent(PASSWORDS.superuser)}@127.0.0.1:${SUB_PORT}/postgres`;
    const first = await ctl('verify', '--subscriber', dsn, '--format', 'json', '--chunk-rows', '50');
    expect(first.code, first.stdout + first.stderr).toBe(0);

    await sql(SUB_PORT, `update pub_pk set v = 'changed' where id = 12; delete from pub_pk where id = 13; insert into pub_pk values (9999, 'extra');
      update pub_nopk set v = 'changed' where a = 12; delete from pub_nopk where a = 13; insert into pub_nopk values (9999, 'extra')`);
    const found = await ctl('verify', '--subscriber', dsn, '--format', 'json', '--chunk-rows', '50');
    expect(found.code, found.stdout + found.stderr).toBe(3);
    const rep = parse(found);
    expect(diffsOf(rep, 'public.pub_pk').sort((a, b) => a.key.localeCompare(b.key))).toEqual([
      expect.objectContaining({ key: '[12]', leader: '(12,value-12)', other: '(12,changed)' }),
      expect.objectContaining({ key: '[13]', leader: '(13,value-13)', other: null }),
      expect.objectContaining({ key: '[9999]', leader: null, other: '(9999,extra)' }),
    ]);
    expect(diffsOf(rep, 'public.pub_nopk').map((d) => `${d.leader ?? '-'} | ${d.other ?? '-'}`).sort())
      .toEqual(['(12,value-12) | -', '(13,value-13) | -', '- | (12,changed)', '- | (9999,extra)']);

    const repair = await ctl('verify', '--subscriber', dsn, '--repair', '--chunk-rows', '50');
    expect(repair.code, repair.stdout + repair.stderr).toBe(3);
    const after = await ctl('verify', '--subscriber', dsn, '--format', 'json', '--chunk-rows', '50');
    expect(after.code, after.stdout + after.stderr).toBe(0);
    // Replication still flows into the repaired rows.
    await sql(leader, "update pub_pk set v = 'later' where id in (12, 13)");
    await waitFor('the subscriber applies a later update', async () => Number((await sql(SUB_PORT, "select count(*) as n from pub_pk where v = 'later'")).rows[0].n) === 2, 30_000, 100);
    await sql(SUB_PORT, 'drop subscription verify_sub');
  }, 120_000);
});
