// npm run bench:backup -- [--scale 70] [--runs 2] [--rpo-seconds 30] [--archive-timeout 5]
// (also: npm run bench -- --suite backup ...)
// Backups with pgBackRest on a real three-node cluster (TestCluster, loopback, one host), on a
// database filled with `pgbench -i -s <scale>` (scale 70: about 1 GB) and one full backup of it:
//  1. archiving RPO: the age of the last archived WAL file (now() - pg_stat_archiver's
//     last_archived_time on the primary), sampled every second under a steady write load
//     (20 commits/s), with archive_timeout;
//  2. a new replica: the member's agent stopped, its data directory removed, the agent started,
//     until it streams: from the backup (create_replica_methods: pgbackrest, node2) against
//     pg_basebackup (node3); then `pghactl reinit node2`, which keeps its data and restores
//     --delta over it;
//  3. point-in-time restore of the database: (a) pgbackrest restore --type=time into a fresh
//     directory, recovery to the target and promotion, until it accepts writes (one member's
//     restore step); (b) a whole new three-member cluster bootstrapped from the stanza to that
//     time (bootstrap.method: pgbackrest), from starting its agents until the primary runs and
//     both standbys stream; (c) `pghactl restore --time` of the running cluster to that time,
//     until it returns and until the cluster is healthy.
// Writes docs/benchmarks-backup.md.
import { execFile, execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { TestCluster, type NodeHandle } from '../lab/loopback.ts';
import { PASSWORDS, REPO, waitFor } from '../lab/util.ts';
import { makeRepo, scratchRestore, withBackup } from '../lab/backup.ts';
import { allocatePorts } from '../lab/ports.ts';

const a = parseArgs({ options: {
  scale: { type: 'string', default: '70' }, runs: { type: 'string', default: '2' },
  'rpo-seconds': { type: 'string', default: '30' }, 'archive-timeout': { type: 'string', default: '5' },
} }).values;
const SCALE = Number(a.scale);
const RUNS = Number(a.runs);
const RPO_S = Number(a['rpo-seconds']);
const ARCHIVE_TIMEOUT = Number(a['archive-timeout']);
for (const [k, v] of Object.entries({ scale: SCALE, runs: RUNS, 'rpo-seconds': RPO_S, 'archive-timeout': ARCHIVE_TIMEOUT })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
}

const median = (xs: number[]) => { const s = [...xs].sort((x, y) => x - y); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const repo = makeRepo();
const dcs = { postgresql: { parameters: { shared_buffers: '64MB', max_connections: 30, archive_timeout: ARCHIVE_TIMEOUT } } };
// Ports allocated (lab/ports.ts): node i's PostgreSQL on PG + i, which pgBackRest's peers need up
// front; the scratch restores' PostgreSQL on SCRATCH_PG.
const PG = allocatePorts(3) - 1;
const SCRATCH_PG = allocatePorts(1);
// node1 leads; node2 rebuilds from the repository, node3 with pg_basebackup.
const cluster = new TestCluster({
  pgPortBase: PG, ttl: 3, dcs,
  configure: (i, cfg) => withBackup(repo.path, PG, { create_replica_methods: i === 3 ? ['basebackup'] : ['pgbackrest', 'basebackup'] })(i, cfg),
});
// 3b: a new cluster restored from the first one's stanza (itest) into its own (staging).
let staging: TestCluster | null = null;

const ctl = (...args: string[]) => new Promise<string>((resolve, reject) => {
  // A backup or a rebuild of a gigabyte: a minute or two; 20 min is a stuck one.
  execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 1_200_000 }, (err, out, errOut) => (err === null ? resolve(out) : reject(new Error(`${args.join(' ')}: ${errOut}`))));
});
const healthy = (c: TestCluster) => c.waitHealthy(900_000, { intervalMs: 250 });
const streaming = (c: TestCluster, n: NodeHandle) => waitFor(`${n.name} streaming`, async () => (await c.probe(n, '/replica?replication_state=streaming')) === 200, 900_000, 250);

const out: string[] = [];
try {
  await cluster.startEtcd();
  // node1 first, so that it bootstraps and leads.
  cluster.startAgent(cluster.nodes[0]!);
  await waitFor('node1 leads', async () => (await cluster.primary()) === cluster.nodes[0], 120_000, 250);
  cluster.startAgent(cluster.nodes[1]!);
  cluster.startAgent(cluster.nodes[2]!);
  let p = await healthy(cluster);
  console.log(`pgbench -i -s ${SCALE}`);
  const t0 = performance.now();
  // pgbench's initialization of scale 70 (7 million rows, keys, vacuum): a minute or two here; 20 min is a stuck one.
  execFileSync('/usr/lib/postgresql/15/bin/pgbench', ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(p.pgPort), '-U', 'postgres', 'postgres'],
    { env: { PATH: '/usr/bin:/bin', PGPASSWORD: PASSWORDS.superuser }, stdio: 'ignore', timeout: 1_200_000 });
  const fillS = (performance.now() - t0) / 1000;
  const { size } = (await cluster.query(p, 'select pg_database_size(current_database())::bigint as size')).rows[0] as { size: string };
  const mb = Number(size) / 1048576;
  console.log(`database: ${mb.toFixed(0)} MB in ${fillS.toFixed(0)} s`);
  const b0 = performance.now();
  await ctl('backup', '--type', 'full');
  const backupS = (performance.now() - b0) / 1000;
  console.log(`full backup: ${backupS.toFixed(1)} s`);
  await healthy(cluster);

  // 1. RPO under a steady write load.
  await cluster.query(p, 'create table ticks(id serial, at timestamptz default clock_timestamp())');
  let writing = true;
  const writer = (async () => { while (writing) { await cluster.query(p, 'insert into ticks default values').catch(() => undefined); await new Promise((r) => setTimeout(r, 50)); } })();
  const ages: number[] = [];
  for (let s = 0; s < RPO_S; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    const r = (await cluster.query(p, 'select extract(epoch from now() - last_archived_time)::float8 as age from pg_stat_archiver').catch(() => null))?.rows[0] as { age: number | null } | undefined;
    if (r?.age !== null && r?.age !== undefined) ages.push(r.age);
  }
  writing = false;
  await writer;
  const { t } = (await cluster.query(p, "select (max(at) - interval '2 seconds')::text as t from ticks")).rows[0] as { t: string };
  const { n: rowsAtT } = (await cluster.query(p, 'select count(*)::int as n from ticks where at <= $1::timestamptz', [t])).rows[0] as { n: number };
  await cluster.query(p, 'select pg_switch_wal()');

  // 2. New replicas (empty data directory) and the delta reinit, node1 leading.
  const node = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;
  const fresh = async (n: NodeHandle) => {
    await cluster.stopAgent(n);
    rmSync(n.dataDir, { recursive: true, force: true });
    const s0 = performance.now();
    cluster.startAgent(n);
    await streaming(cluster, n);
    return performance.now() - s0;
  };
  const fromBackup: number[] = [];
  const basebackup: number[] = [];
  const delta: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    fromBackup.push(await fresh(node('node2')));
    console.log(`new replica from the backup: ${Math.round(fromBackup.at(-1)!)} ms`);
    basebackup.push(await fresh(node('node3')));
    console.log(`new replica with pg_basebackup: ${Math.round(basebackup.at(-1)!)} ms`);
    const d0 = performance.now();
    await ctl('reinit', 'node2', '--force', '--timeout', '1200');
    delta.push(performance.now() - d0);
    console.log(`reinit node2 (delta restore): ${Math.round(delta.at(-1)!)} ms`);
  }
  const deltaLogged = (cluster.logs(node('node2')).match(/"event":"replica restored","delta":true/g) ?? []).length;
  p = await healthy(cluster);

  // 3a. Point-in-time restore of the database into a fresh directory (one member's restore step).
  const restoreMs: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    const s0 = performance.now();
    const s = await scratchRestore(p, cluster.dir, SCRATCH_PG, ['--type=time', `--target=${t}`, '--target-action=promote']);
    restoreMs.push(performance.now() - s0);
    const got = ((await s.query('select count(*)::int as n from ticks'))[0] as { n: number }).n;
    await s.stop();
    if (got !== rowsAtT) throw new Error(`PITR restore: ${got} rows, ${rowsAtT} expected`);
    console.log(`PITR restore ${k + 1}: ${Math.round(restoreMs.at(-1)!)} ms`);
  }

  // 3b. A new cluster bootstrapped from the stanza to the same time, until healthy.
  const stagingPg = allocatePorts(3) - 1;
  staging = new TestCluster({
    pgPortBase: stagingPg, ttl: 3, dcs,
    configure: (i, cfg) => {
      withBackup(repo.path, stagingPg, { stanza: 'staging' })(i, cfg);
      cfg.bootstrap.method = 'pgbackrest';
      cfg.bootstrap.pgbackrest = { stanza: 'itest', target: { time: t } };
    },
  });
  await staging.startEtcd();
  const c0 = performance.now();
  staging.startAll();
  const sp = await healthy(staging);
  const clusterMs = performance.now() - c0;
  const { n: stagingRows } = (await staging.query(sp, 'select count(*)::int as n from ticks')).rows[0] as { n: number };
  if (stagingRows !== rowsAtT) throw new Error(`staging cluster: ${stagingRows} rows, ${rowsAtT} expected`);
  const restoredLog = /"event":"bootstrap restored"[^\n]*"ms":(\d+)/.exec(staging.logs(sp));
  console.log(`staging cluster healthy: ${Math.round(clusterMs)} ms (restore and promotion ${restoredLog?.[1] ?? '?'} ms)`);
  await staging.destroy();
  staging = null;

  // 3c. pghactl restore of the running cluster to the same time, until healthy again.
  // Its failure is reported in the table rather than losing the other figures.
  let inPlace = '';
  try {
    const r0 = performance.now();
    // pghactl restore reads "+00" offsets only as "+00:00" (Date.parse): the same instant.
    await ctl('restore', '--time', t.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'), '--force', '--timeout', '1200');
    const ctlRestoreMs = performance.now() - r0;
    p = await healthy(cluster);
    const healthyRestoreMs = performance.now() - r0;
    const { n: restoredRows } = (await cluster.query(p, 'select count(*)::int as n from ticks')).rows[0] as { n: number };
    if (restoredRows !== rowsAtT) throw new Error(`${restoredRows} rows, ${rowsAtT} expected`);
    inPlace = `${(ctlRestoreMs / 1000).toFixed(1)} s; ${(healthyRestoreMs / 1000).toFixed(1)} s`;
  } catch (err) {
    inPlace = `failed: ${(err as Error).message.split('\n')[0]!.slice(0, 200)}`;
  }
  console.log(`pghactl restore: ${inPlace}`);

  const fmt = (ms: number[]) => (ms.length === 0 ? 'n/a' : `${(median(ms) / 1000).toFixed(1)} s (${ms.length} runs: ${ms.map((x) => (x / 1000).toFixed(1)).join(', ')})`);
  out.push('# Benchmarks: backups with pgBackRest', '',
    `Command: \`npm run bench:backup -- --scale ${SCALE} --runs ${RUNS} --rpo-seconds ${RPO_S} --archive-timeout ${ARCHIVE_TIMEOUT}\` (scripts/bench-backup.ts; also \`npm run bench -- --suite backup\`), under the integration lock.`,
    `Machine: ${cpus().length} cores (nproc ${execFileSync('nproc').toString().trim()}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, ${new Date().toISOString()}.`,
    'Three members and a posix repository on one host (loopback), pgBackRest 2.45 (process_max 1, lz4), PostgreSQL 15, shared_buffers 64MB.', '',
    `Database: ${mb.toFixed(0)} MB (\`pgbench -i -s ${SCALE}\`, ${fillS.toFixed(0)} s), one full backup of it (${backupS.toFixed(0)} s), then:`, '',
    '| measurement | median |', '|---|---|',
    `| archiving RPO: age of the last archived WAL (now() - pg_stat_archiver.last_archived_time on the primary) under 20 commits/s, archive_timeout ${ARCHIVE_TIMEOUT} s, sampled every second for ${RPO_S} s | ${ages.length === 0 ? 'n/a' : `${median(ages).toFixed(1)} s (max ${Math.max(...ages).toFixed(1)} s)`} |`,
    `| new replica from the backup (create_replica_methods: pgbackrest; empty data directory, agent started) until streaming | ${fmt(fromBackup)} |`,
    `| new replica with pg_basebackup (create_replica_methods: basebackup; same) until streaming | ${fmt(basebackup)} |`,
    `| \`pghactl reinit\` of the member that already has the data (delta restore, ${deltaLogged} of ${RUNS} logged as delta) until streaming | ${fmt(delta)} |`,
    `| point-in-time restore, one member's step: pgbackrest restore --type=time into a fresh directory, recovery to the target, promotion, accepting writes | ${fmt(restoreMs)} |`,
    `| point-in-time restore, whole cluster in place: \`pghactl restore --time\` of the running cluster (restore --delta on the leader, recovery, promotion, both other members rebuilt through reinit: node2 with create_replica_methods pgbackrest first, node3 with basebackup), until pghactl returns; until the cluster is healthy (1 run) | ${inPlace} |`,
    `| point-in-time restore, whole cluster: a new three-member cluster with bootstrap.method: pgbackrest to the same time, from starting its agents until the primary runs and both standbys stream (1 run; its restore and promotion: ${restoredLog === null ? '?' : `${(Number(restoredLog[1]) / 1000).toFixed(1)} s`}) | ${(clusterMs / 1000).toFixed(1)} s |`, '',
    'Reading: the RPO is how far the archive lags behind the primary: with a steady load a WAL file is switched every archive_timeout and archived at once, so the age stays below archive_timeout plus the archive-push time. ' +
    'The new replicas from the backup replay the WAL written since the backup from the archive before streaming. ' +
    'The delta restore reads and checksums every file of the kept directory and copies only those that differ from the backup. All on one host with the database in the page cache: the copies run at memory and loopback speed, so the figures compare the methods rather than predict a networked repository.', '',
    `Each restore's row count was checked against the rows committed up to the target (${rowsAtT}).`, '');
  writeFileSync(new URL('../docs/benchmarks-backup.md', import.meta.url), out.join('\n'));
  console.log(out.join('\n'));
} finally {
  await staging?.destroy();
  await cluster.destroy();
  repo.remove();
}
