// bootstrap.method: pgbackrest with real pgBackRest 2.45, PostgreSQL 15 and etcd: a "staging"
// cluster bootstraps from a "production" cluster's stanza in a shared repository (production is
// only read). Bad inputs (no backup yet, a missing stanza, a time before the oldest backup, a
// restore point that does not exist) fail clearly, leave the data directory empty and
// /initialize unwritten; then a fixed configuration bootstraps to a named restore point: exactly
// the rows up to it, the other members stream, and it archives to its own stanza. Last, a reinit
// with create_replica_methods [pgbackrest, ...] restores --delta over the kept data directory:
// same system identifier, streaming afterwards.
import { execFile } from 'node:child_process';
import { chownSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import type { ArchiveHealth } from '../../src/backup/health.ts';
import { parseInfo, type StanzaInfo } from '../../src/backup/info.ts';
import { REPO, TestCluster, waitFor, type NodeHandle } from '../support/cluster.ts';
import { asPostgres, makeRepo, withBackup } from '../support/backup.ts';
import { allocatePorts } from '../../lab/ports.ts';

const repo = makeRepo();
const user = lookupOsUser('postgres');
// The PostgreSQL ports are allocated here: each node's backup.peers section names them.
const PROD_PG = allocatePorts(3) - 1;
const STAGING_PG = allocatePorts(3) - 1;
const prod = new TestCluster({ pgPortBase: PROD_PG, ttl: 3, configure: withBackup(repo.path, PROD_PG, { stanza: 'prod' }) });
const staging = new TestCluster({
  pgPortBase: STAGING_PG, ttl: 3,
  configure: (i, cfg) => {
    withBackup(repo.path, STAGING_PG, { stanza: 'staging', create_replica_methods: ['pgbackrest', 'basebackup'] })(i, cfg);
    cfg.bootstrap.method = 'pgbackrest';
    cfg.bootstrap.pgbackrest = { stanza: 'prod' };
  },
});
const p1 = prod.nodes[0]!;
const s1 = staging.nodes[0]!;

interface Run { code: number; stdout: string; stderr: string }
function ctl(config: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // A backup or a reinit of the small test database: seconds; 120 s covers a loaded machine.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', config, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

/** Rewrite bootstrap.pgbackrest in every staging member's YAML. */
function setSource(source: Record<string, unknown>): void {
  for (const n of staging.nodes) {
    const cfg = parse(readFileSync(n.configPath, 'utf8')) as Record<string, any>;
    cfg.bootstrap.pgbackrest = source;
    writeFileSync(n.configPath, stringify(cfg), { mode: 0o600 });
    chownSync(n.configPath, user.uid, user.gid);
  }
}

async function initializeKey(): Promise<string> {
  const r = await asPostgres('/usr/bin/etcdctl', ['--endpoints', staging.etcdEndpoint, 'get', '/pgha-test/itest/initialize', '--print-value-only'], 10_000, { ETCDCTL_API: '3' });
  return r.stdout.trim();
}

async function info(n: NodeHandle, stanza: string): Promise<StanzaInfo> {
  const r = await asPostgres('/usr/bin/pgbackrest', [`--config=${n.dataDir}.pgbackrest/pgbackrest.conf`, `--stanza=${stanza}`, '--output=json', 'info'], 30_000);
  return parseInfo(r.stdout)[0]!;
}

/**
 * Start staging's first member with the current source, wait for the failure the log must name,
 * stop it, and check that it left nothing behind: an empty data directory, no /initialize.
 */
async function failsWith(message: RegExp): Promise<void> {
  const before = staging.logs(s1).length;
  staging.startAgent(s1);
  try {
    // A refusal before the restore: a second; a failed recovery: a restore and a start, seconds.
    await waitFor(`the bootstrap to fail with ${String(message)}`, async () => {
      const lines = staging.logs(s1).slice(before).split('\n').filter((l) => l.includes('"event":"bootstrap failed"'));
      return lines.some((l) => l.includes('PGHA_BOOTSTRAP_SOURCE') && message.test(l));
    }, 60_000, 200);
  } finally {
    await staging.stopAgent(s1);
  }
  expect(existsSync(s1.dataDir) ? readdirSync(s1.dataDir) : []).toEqual([]);
  // A claim is bound to the agent's lease: gone within the TTL (3 s) of the stop at most.
  await waitFor('no /initialize', async () => (await initializeKey()) === '', 10_000, 250);
}

async function healthyStaging(): Promise<NodeHandle> {
  // A restore-bootstrap of the small database and two clones: seconds; 110 s covers a loaded machine.
  return waitFor('a healthy staging cluster', async () => {
    const p = await staging.primary();
    return p !== null && (await staging.replicas(true)).length === 2 ? p : null;
  }, 110_000, 250);
}

let beforeBackup = '';

beforeAll(async () => {
  await prod.startEtcd();
  await staging.startEtcd();
  prod.startAgent(p1);
  // Bootstrap, stanza-create and check of one member: seconds; 90 s covers a loaded machine.
  await waitFor('production primary with its stanza checked', async () => {
    if ((await prod.primary()) !== p1) return false;
    return ((await prod.status(p1))?.archive as ArchiveHealth | undefined)?.check?.ok === true;
  }, 90_000, 250);
  await prod.query(p1, 'create table t(id int primary key)');
  // An ALTER SYSTEM archiving setting of the source (harmless here) must not reach the copy.
  await prod.query(p1, "alter system set archive_library = ''");
  beforeBackup = ((await prod.query(p1, 'select clock_timestamp()::text as t')).rows[0] as { t: string }).t;
}, 120_000);

afterAll(async () => {
  await staging.destroy();
  await prod.destroy();
  repo.remove();
});

describe('bootstrap.method: pgbackrest', () => {
  it('fails clearly on a stanza without a backup and on a missing stanza, leaving nothing behind', async () => {
    setSource({ stanza: 'prod' });
    await failsWith(/stanza prod has no backup/);
    setSource({ stanza: 'nope' });
    await failsWith(/stanza nope does not exist/);
  });

  it('fails clearly on a time before the oldest backup and on a restore point that is not in the archive', async () => {
    const insert = async (from: number, to: number) => { await prod.query(p1, 'insert into t select generate_series($1::int, $2::int)', [from, to]); };
    await insert(1, 10);
    const b = await ctl(p1.configPath, 'backup', '--type', 'full');
    expect(b.code, b.stderr).toBe(0);
    await insert(11, 20);
    const rp = await ctl(p1.configPath, 'restore-point', 'rp20');
    expect(rp.code, rp.stderr).toBe(0);
    await insert(21, 30);
    await prod.query(p1, 'select pg_switch_wal()');
    setSource({ stanza: 'prod', target: { time: beforeBackup } });
    await failsWith(/target time .* is before the end of the oldest usable backup/);
    setSource({ stanza: 'prod', target: { name: 'no-such-point' } });
    await failsWith(/recovery of stanza prod failed.*recovery ended before configured recovery target was reached/);
  });

  it('a fixed configuration bootstraps to the restore point: exactly its rows, the members stream, its own stanza archives', async () => {
    setSource({ stanza: 'prod', target: { name: 'rp20' } });
    staging.startAll();
    // Whichever member wins the /initialize race restores; the others clone from it.
    const p = await healthyStaging();
    expect(staging.logs(p)).toMatch(/"event":"bootstrap restored"/);
    expect((await staging.query(p, 'select count(*)::int as n, max(id) as m from t')).rows[0]).toEqual({ n: 20, m: 20 });
    const sysid = ((await prod.query(p1, 'select system_identifier::text as id from pg_control_system()')).rows[0] as { id: string }).id;
    expect(await initializeKey()).toBe(sysid);
    // The configured passwords work over TCP (the harness connects with them) and recovery's options are gone.
    expect((await staging.query(p, "select count(*)::int as n from pg_file_settings where sourcefile like '%postgresql.auto.conf' and (name like 'recovery_target%' or name in ('restore_command', 'archive_library'))")).rows[0]).toEqual({ n: 0 });
    await staging.query(p, 'insert into t values (1000)');
    for (const n of staging.nodes.filter((x) => x !== p)) {
      await waitFor(`row 1000 on ${n.name}`, async () => (await staging.query(n, 'select 1 from t where id = 1000')).rowCount === 1, 20_000);
    }
    // stanza-create and check on the new timeline: seconds after the bootstrap.
    const a = await waitFor('staging check passed', async () => { const h = (await staging.status(p))?.archive as ArchiveHealth | undefined; return h?.check?.ok === true ? h : null; }, 60_000, 250);
    expect(a.last_archived_wal).toMatch(/^00000002/);
    const own = await info(p, 'staging');
    expect(own.status, 'the stanza exists (no backup of its own yet)').toBe('no valid backups');
    expect(own.wal_max).toMatch(/^00000002/);
    // Production's archive got nothing of staging's timeline.
    expect((await info(p1, 'prod')).wal_max).toMatch(/^00000001/);
    const prodArchive = `${repo.path}/archive/prod`;
    const ids = readdirSync(prodArchive, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.flatMap((d) => readdirSync(`${prodArchive}/${d}`))).not.toContain('00000002.history');
  });

  it('a reinit restores --delta over the kept data directory: same system identifier, streaming afterwards', async () => {
    const p = await healthyStaging();
    const b = await ctl(s1.configPath, 'backup', '--type', 'full');
    expect(b.code, b.stderr).toBe(0);
    const target = staging.nodes.find((n) => n !== p)!;
    const idOf = async (n: NodeHandle) => ((await staging.query(n, 'select system_identifier::text as id from pg_control_system()')).rows[0] as { id: string }).id;
    const before = await idOf(target);
    const logStart = staging.logs(target).length;
    const r = await ctl(s1.configPath, 'reinit', target.name, '--force', '--timeout', '120');
    expect(r.code, r.stderr).toBe(0);
    const log = staging.logs(target).slice(logStart);
    expect(log).toMatch(/"event":"delta restore planned"/);
    expect(log).toMatch(/"event":"replica restored","delta":true/);
    expect(log).not.toMatch(/"event":"delta restore failed"/);
    expect(await idOf(target)).toBe(before);
    await staging.query(p, 'insert into t values (2000)');
    await waitFor('row 2000 on the delta-restored member', async () => (await staging.query(target, 'select 1 from t where id = 2000')).rowCount === 1, 20_000);
    await healthyStaging();
  });
});
