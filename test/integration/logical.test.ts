// Logical replication managed by pgha, on a real three-node cluster with HAProxy: logical slots
// configured in permanent_slots are copied to the standbys and advanced there, so that after a
// crash failover and a switchover
//   - two subscriptions in a separate PostgreSQL (one through HAProxy, one through a multi-host
//     connection string with target_session_attrs=read-write) keep receiving changes, and end
//     with the publisher's rows exactly (a change applied twice would stop them: primary key);
//   - a pg_recvlogical consumer resumes from its confirmed position: every row exactly once.
// Then a slot removed from the configuration disappears from every member, and bad inputs are
// refused before anything is stored.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupOsUser } from '../../src/postgres/exec.ts';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { PASSWORDS, REPO, sleep, waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';
import { stopPostmasterIn } from '../support/postgres.ts';

const HAPROXY_RW = allocatePorts(3);
const HAPROXY_RO = HAPROXY_RW + 1;
const SUB_PORT = HAPROXY_RW + 2; // the subscribers' PostgreSQL
const BIN = '/usr/lib/postgresql/15/bin';
const LOGICAL_PARAMS = { wal_level: 'logical', hot_standby_feedback: 'on', shared_buffers: '16MB', max_connections: 30 };
const SLOTS = {
  recv_slot: { type: 'logical', plugin: 'test_decoding', database: 'app' },
  sub_proxy: { type: 'logical', plugin: 'pgoutput', database: 'app' },
  sub_multi: { type: 'logical', plugin: 'pgoutput', database: 'app' },
};

const cluster = new TestCluster({
  ttl: 3,
  dcs: { postgresql: { parameters: LOGICAL_PARAMS }, permanent_slots: SLOTS, logical: { publications: { app_pub: { database: 'app', tables: ['items'] } } } },
});
const postgresUser = lookupOsUser('postgres');
const subDir = join(cluster.dir, 'subscriber');
const recvFile = join(cluster.dir, 'recv.out');
let recv: ChildProcess | null = null;

function asPostgres(bin: string, args: string[]): void {
  const r = spawnSync(join(BIN, bin), args, { uid: postgresUser.uid, gid: postgresUser.gid, cwd: '/', encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr}`);
}

/** A separate PostgreSQL for the subscriptions (trust on its socket and loopback). */
function startSubscriber(): void {
  mkdirSync(subDir, { mode: 0o700 });
  spawnSync('chown', [`${postgresUser.uid}:${postgresUser.gid}`, subDir]);
  asPostgres('initdb', ['-D', join(subDir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
  asPostgres('pg_ctl', ['-D', join(subDir, 'data'), '-w', '-l', join(subDir, 'log'), 'start', '-o',
    `-p ${SUB_PORT} -k ${subDir} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=20 -c wal_retrieve_retry_interval=500ms`]);
  cluster.onDestroy(() => void stopPostmasterIn(join(subDir, 'data')));
}

async function sql<T extends pg.QueryResultRow>(port: number, database: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: PASSWORDS.superuser, database, connectionTimeoutMillis: 3000, query_timeout: 10_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}
const on = <T extends pg.QueryResultRow>(n: NodeHandle, database: string, text: string, params: unknown[] = []) => sql<T>(n.pgPort, database, text, params);

async function waitPrimary(not?: NodeHandle): Promise<NodeHandle> {
  return waitFor('a single primary', async () => {
    const p = await cluster.primary();
    return p !== null && p !== not ? p : null;
  }, 60_000);
}

async function logicalSlots(n: NodeHandle): Promise<Array<{ name: string; confirmed: string }>> {
  return on<{ name: string; confirmed: string }>(n, 'postgres', "select slot_name::text as name, confirmed_flush_lsn::text as confirmed from pg_replication_slots where slot_type = 'logical' order by 1").catch(() => []);
}

async function lsnAtLeast(n: NodeHandle, a: string, b: string): Promise<boolean> {
  const r = await on<{ ok: boolean }>(n, 'postgres', 'select $1::pg_lsn >= $2::pg_lsn as ok', [a, b]).catch(() => []);
  return r[0]?.ok === true;
}

/** Insert ids from..to through HAProxy, retrying while it still points at a server going away. */
async function insertRange(from: number, to: number): Promise<void> {
  await waitFor(`rows ${from}-${to} inserted`, () => sql(HAPROXY_RW, 'app', "insert into items select g, 'v' || g from generate_series($1::int, $2::int) g", [from, to]).then(() => true, () => null), 30_000, 250);
}

/** Ids pg_recvlogical wrote, in order (test_decoding: "table public.items: INSERT: id[integer]:7 ..."). */
function recvIds(): number[] {
  if (!existsSync(recvFile)) return [];
  return [...readFileSync(recvFile, 'utf8').matchAll(/table public\.items: INSERT: id\[integer\]:(\d+)/g)].map((m) => Number(m[1]));
}

/** Both subscriber databases hold exactly the publisher's rows. */
async function subscribersEqual(expected: number): Promise<boolean> {
  const pub = await sql<{ n: number; h: string }>(HAPROXY_RW, 'app', "select count(*)::int as n, md5(string_agg(id || ':' || v, ',' order by id)) as h from items").catch(() => []);
  if (pub[0]?.n !== expected) return false;
  for (const db of ['sub1', 'sub2']) {
    const s = await sql<{ n: number; h: string }>(SUB_PORT, db, "select count(*)::int as n, md5(string_agg(id || ':' || v, ',' order by id)) as h from items").catch(() => []);
    if (s[0]?.n !== expected || s[0]?.h !== pub[0]?.h) return false;
  }
  return true;
}

/**
 * Wait until pg_recvlogical confirmed every change up to the leader's current position, and
 * every running standby's copy of recv_slot has been advanced to it.
 */
async function waitConfirmedEverywhere(leader: NodeHandle, standbys: NodeHandle[]): Promise<void> {
  const [{ lsn } = { lsn: '' }] = await on<{ lsn: string }>(leader, 'postgres', 'select pg_current_wal_lsn()::text as lsn');
  await waitFor('recv_slot confirmed on the leader', async () => {
    const s = (await logicalSlots(leader)).find((x) => x.name === 'recv_slot');
    return s !== undefined && (await lsnAtLeast(leader, s.confirmed, lsn));
  }, 30_000);
  const [{ confirmed } = { confirmed: '' }] = await on<{ confirmed: string }>(leader, 'postgres', "select confirmed_flush_lsn::text as confirmed from pg_replication_slots where slot_name = 'recv_slot'");
  for (const n of standbys) {
    await waitFor(`recv_slot advanced on ${n.name}`, async () => {
      const s = (await logicalSlots(n)).find((x) => x.name === 'recv_slot');
      return s !== undefined && (await lsnAtLeast(n, s.confirmed, confirmed));
    }, 30_000);
  }
}

function startRecv(): void {
  // No --no-loop: on a lost connection it reconnects (every 5 s) through HAProxy, from the slot's position.
  recv = spawn(join(BIN, 'pg_recvlogical'), ['-d', `host=127.0.0.1 port=${HAPROXY_RW} dbname=app user=postgres`, '-S', 'recv_slot', '--start', '-f', recvFile, '-F', '1', '-s', '1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PGPASSWORD: PASSWORDS.superuser }, stdio: 'ignore',
  });
  cluster.onDestroy(() => recv?.kill('SIGKILL'));
}

function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

async function patchConfig(n: NodeHandle, body: unknown): Promise<{ status: number; body: { error?: string; message?: string } }> {
  const r = await fetch(`http://127.0.0.1:${n.apiPort}/config`, {
    method: 'PATCH', body: JSON.stringify(body), signal: AbortSignal.timeout(15_000),
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('admin:admin-pw').toString('base64')}` },
  });
  return { status: r.status, body: (await r.json()) as { error?: string; message?: string } };
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  startSubscriber();
});

afterAll(async () => {
  recv?.kill('SIGKILL');
  await cluster.destroy();
});

describe('logical replication across failover', () => {
  let primary: NodeHandle;

  it('creates the slots and the publication on the leader and copies the slots to both standbys', async () => {
    primary = await waitPrimary();
    await cluster.waitHealthy(60_000);
    await on(primary, 'postgres', 'create database app');
    await on(primary, 'app', 'create table items (id int primary key, v text not null)');
    await waitFor('the publication', async () => (await on(primary, 'app', "select 1 from pg_publication where pubname = 'app_pub'")).length === 1, 30_000);
    for (const n of cluster.nodes) {
      await waitFor(`three logical slots on ${n.name}`, async () => ((await logicalSlots(n)).length === 3 ? true : null), 60_000);
    }
    await waitFor('logical_slots in the leader\'s /status', async () => {
      const st = await cluster.status(primary);
      return ((st?.['logical_slots'] ?? []) as Array<{ name: string }>).map((s) => s.name).sort().join(',') === 'recv_slot,sub_multi,sub_proxy' || null;
    }, 10_000);
  });

  it('feeds two subscriptions and pg_recvlogical', async () => {
    cluster.startHaproxy({ readWritePort: HAPROXY_RW, readOnlyPort: HAPROXY_RO });
    await waitFor('HAProxy to the primary', async () => (await sql(HAPROXY_RW, 'app', 'select 1').then(() => true, () => false)) || null, 20_000);
    startRecv();
    // After the slots exist: a slot streams only what commits after its creation.
    await on(primary, 'app', "insert into items select g, 'v' || g from generate_series(1, 100) g");
    const multi = `host=127.0.0.1,127.0.0.1,127.0.0.1 port=${cluster.nodes.map((n) => n.pgPort).join(',')} target_session_attrs=read-write`;
    for (const [db, conn, slot] of [['sub1', `host=127.0.0.1 port=${HAPROXY_RW}`, 'sub_proxy'], ['sub2', multi, 'sub_multi']] as const) {
      await sql(SUB_PORT, 'postgres', `create database ${db}`);
      await sql(SUB_PORT, db, 'create table items (id int primary key, v text not null)');
      await sql(SUB_PORT, db, `create subscription ${db} connection '${conn} dbname=app user=postgres password=${PASSWORDS.superuser}' publication app_pub with (create_slot = false, slot_name = '${slot}')`);
    }
    await insertRange(101, 200);
    await waitFor('subscribers at 200 rows', async () => (await subscribersEqual(200)) || null, 60_000);
    await waitFor('pg_recvlogical at 200 rows', async () => (recvIds().length >= 200) || null, 30_000).catch(async (err: unknown) => {
      const diag = await on(primary, 'postgres', "select slot_name, confirmed_flush_lsn::text, restart_lsn::text, active, pg_current_wal_lsn()::text as cur from pg_replication_slots");
      throw new Error(`${(err as Error).message}; slots ${JSON.stringify(diag)}; got ${recvIds().length}: ${readFileSync(recvFile, 'utf8').split('\n').filter((l) => !l.includes('INSERT')).join(' | ')}`);
    });
    expect(recvIds()).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('a crash failover: the consumers resume from their confirmed positions', async () => {
    const standbys = cluster.nodes.filter((n) => n !== primary);
    await waitConfirmedEverywhere(primary, standbys);
    const old = primary;
    cluster.killNode(old);
    primary = await waitPrimary(old);
    await insertRange(201, 300);
    await waitFor('subscribers at 300 rows after the failover', async () => (await subscribersEqual(300)) || null, 60_000);
    await waitFor('pg_recvlogical at 300 rows', async () => (recvIds().length >= 300) || null, 60_000);
    await sleep(1500); // anything replayed twice would arrive right after
    expect(recvIds()).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    cluster.startAgent(old); // rejoins as a standby; its own old slots are dropped and copied afresh
  });

  it('a switchover: the same, and the old primary keeps a copy again', async () => {
    await cluster.waitHealthy(90_000);
    const standbys = cluster.nodes.filter((n) => n !== primary);
    for (const n of standbys) await waitFor(`three slots on ${n.name}`, async () => ((await logicalSlots(n)).length === 3 ? true : null), 60_000);
    await waitConfirmedEverywhere(primary, standbys);
    const r = await ctl('switchover', '--force', '--format', 'json');
    expect(r.code, r.stderr).toBe(0);
    const old = primary;
    primary = await waitPrimary(old);
    await insertRange(301, 400);
    await waitFor('subscribers at 400 rows after the switchover', async () => (await subscribersEqual(400)) || null, 60_000);
    await waitFor('pg_recvlogical at 400 rows', async () => (recvIds().length >= 400) || null, 60_000);
    await sleep(1500);
    expect(recvIds()).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  });

  it('shows every logical slot with its lag in pghactl slots', async () => {
    const r = await ctl('slots', '--format', 'json');
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ member: string; slot: string; role: string; lag_bytes: number | null }>;
    expect(rows.filter((x) => x.role === 'leader').map((x) => x.slot).sort()).toEqual(['recv_slot', 'sub_multi', 'sub_proxy']);
    expect(new Set(rows.map((x) => x.member)).size).toBe(3);
  });

  it('refuses bad inputs before anything is stored', async () => {
    const before = await (await fetch(`http://127.0.0.1:${primary.apiPort}/config`)).json();
    const plugin = await patchConfig(primary, { permanent_slots: { bad: { type: 'logical', plugin: 'no_such_plugin', database: 'app' } } });
    expect(plugin.status).toBe(400);
    expect(plugin.body.error).toBe('PGHA_LOGICAL_PLUGIN_UNKNOWN');
    const db = await patchConfig(primary, { permanent_slots: { bad: { type: 'logical', plugin: 'pgoutput', database: 'no_such_db' } } });
    expect(db.body.error).toBe('PGHA_LOGICAL_DATABASE_UNKNOWN');
    const clash = await ctl('edit-config', '--set', 'permanent_slots.node2.type=physical');
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toMatch(/PGHA_SLOT_NAME_CLASH.*member node2/);
    expect(await (await fetch(`http://127.0.0.1:${primary.apiPort}/config`)).json()).toEqual(before);
  });

  it('drops a slot removed from the configuration on every member', async () => {
    recv?.kill('SIGKILL');
    const r = await ctl('edit-config', '--set', 'permanent_slots.recv_slot=null');
    expect(r.code, r.stderr).toBe(0);
    for (const n of cluster.nodes) {
      await waitFor(`recv_slot gone from ${n.name}`, async () => ((await logicalSlots(n)).map((s) => s.name).join(',') === 'sub_multi,sub_proxy' ? true : null), 30_000);
    }
  });
});
