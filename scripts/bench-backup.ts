// npm run bench:backup -- [--mb 200] [--runs 3] [--rpo-seconds 30] [--archive-timeout 5]
// Backups with pgBackRest on a real three-node cluster (TestCluster, loopback, one host):
//  1. archiving RPO: the age of the last archived WAL file, sampled every second from /status
//     under a steady write load (20 commits/s), with archive_timeout;
//  2. time to restore the database to a point in time from the repository (pgbackrest restore
//     --type=time into a fresh directory, recovery to the target, accepting writes);
//  3. a replica built from the backup (create_replica_methods: pgbackrest) against one built with
//     pg_basebackup, on the same database: pghactl reinit until the member streams again.
// The database is filled to --mb megabytes first. Writes docs/benchmarks-backup.md.
import { execFileSync, execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { TestCluster, type NodeHandle } from '../lab/loopback.ts';
import { REPO, waitFor } from '../lab/util.ts';
import { makeRepo, scratchRestore, withBackup } from '../lab/backup.ts';
import type { ArchiveHealth } from '../src/backup/health.ts';

const a = parseArgs({ options: {
  mb: { type: 'string', default: '200' }, runs: { type: 'string', default: '3' },
  'rpo-seconds': { type: 'string', default: '30' }, 'archive-timeout': { type: 'string', default: '5' },
} }).values;
const MB = Number(a.mb);
const RUNS = Number(a.runs);
const RPO_S = Number(a['rpo-seconds']);
const ARCHIVE_TIMEOUT = Number(a['archive-timeout']);
for (const [k, v] of Object.entries({ mb: MB, runs: RUNS, 'rpo-seconds': RPO_S, 'archive-timeout': ARCHIVE_TIMEOUT })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
}

const median = (xs: number[]) => { const s = [...xs].sort((x, y) => x - y); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const repo = makeRepo();
// node2 rebuilds from the repository, node3 with pg_basebackup; node1 bootstraps.
const cluster = new TestCluster({
  etcdPort: 27320, pgPortBase: 6040, apiPortBase: 9040, ttl: 3,
  dcs: { postgresql: { parameters: { shared_buffers: '64MB', max_connections: 30, archive_timeout: ARCHIVE_TIMEOUT } } },
  configure: (i, cfg) => withBackup(repo.path, 6040, { create_replica_methods: i === 3 ? ['basebackup'] : ['pgbackrest', 'basebackup'] })(i, cfg),
});
const ctl = (...args: string[]) => new Promise<string>((resolve, reject) => {
  // A backup or a rebuild of a few hundred MB: a minute or two; 20 min is a stuck one.
  execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 1_200_000 }, (err, out, errOut) => (err === null ? resolve(out) : reject(new Error(`${args.join(' ')}: ${errOut}`))));
});
const healthy = () => cluster.waitHealthy(600_000, { intervalMs: 250 });

const out: string[] = [];
try {
  await cluster.startEtcd();
  cluster.startAll();
  let p = await healthy();
  console.log(`filling ${MB} MB`);
  await cluster.query(p, 'create table fill(id bigint, pad text)');
  // About 1 kB per row: MB * 1000 rows, inserted 5 MB per statement (the harness client allows
  // a statement 5 s).
  for (let k = 0; k < MB * 1000; k += 5000) {
    await cluster.query(p, `insert into fill select g, repeat(md5(g::text), 28) from generate_series(${k + 1}, ${Math.min(MB * 1000, k + 5000)}) g`);
  }
  const { size } = (await cluster.query(p, 'select pg_database_size(current_database())::bigint as size')).rows[0] as { size: string };
  console.log(`database: ${(Number(size) / 1048576).toFixed(0)} MB`);
  await ctl('backup', '--type', 'full');

  // 1. RPO under a steady write load.
  await cluster.query(p, 'create table ticks(id serial, at timestamptz default clock_timestamp())');
  let writing = true;
  const writer = (async () => { while (writing) { await cluster.query(p, 'insert into ticks default values').catch(() => undefined); await new Promise((r) => setTimeout(r, 50)); } })();
  const ages: number[] = [];
  for (let s = 0; s < RPO_S; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    const h = (await cluster.status(p))?.archive as ArchiveHealth | undefined;
    if (h?.last_archived_age_s !== null && h?.last_archived_age_s !== undefined) ages.push(h.last_archived_age_s);
  }
  writing = false;
  await writer;

  // 2. Point-in-time restore of the database (a target 2 s before the end of the writes).
  const { t } = (await cluster.query(p, "select (max(at) - interval '2 seconds')::text as t from ticks")).rows[0] as { t: string };
  await cluster.query(p, 'select pg_switch_wal()');
  await new Promise((r) => setTimeout(r, 2000));
  const restoreMs: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    const t0 = performance.now();
    const s = await scratchRestore(p, cluster.dir, 6090, ['--type=time', `--target=${t}`, '--target-action=promote']);
    restoreMs.push(performance.now() - t0);
    await s.stop();
    console.log(`PITR restore ${k + 1}: ${Math.round(restoreMs.at(-1)!)} ms`);
  }

  // 3. Replica from the backup (node2) against pg_basebackup (node3), same database: node1 leads.
  p = await healthy();
  if (p.name !== 'node1') {
    await ctl('switchover', '--candidate', 'node1', '--force');
    await waitFor('node1 leads', async () => (await cluster.primary())?.name === 'node1', 60_000, 250);
    p = await healthy();
  }
  const node = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;
  const fromBackup: number[] = [];
  const basebackup: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    for (const [name, into] of [['node2', fromBackup], ['node3', basebackup]] as const) {
      if (node(name) === p) continue;
      const t0 = performance.now();
      await ctl('reinit', name, '--force', '--timeout', '1200');
      into.push(performance.now() - t0);
      console.log(`reinit ${name}: ${Math.round(into.at(-1)!)} ms`);
    }
  }

  const fmt = (ms: number[]) => (ms.length === 0 ? 'n/a' : `${(median(ms) / 1000).toFixed(1)} s (${ms.length} runs: ${ms.map((x) => (x / 1000).toFixed(1)).join(', ')})`);
  out.push('# Benchmarks: backups with pgBackRest', '',
    `Command: \`npm run bench:backup -- --mb ${MB} --runs ${RUNS} --rpo-seconds ${RPO_S} --archive-timeout ${ARCHIVE_TIMEOUT}\` (scripts/bench-backup.ts), under the integration lock.`,
    `Machine: ${cpus().length} cores (nproc ${execFileSync('nproc').toString().trim()}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, ${new Date().toISOString()}.`,
    'Three members and a posix repository on one host (loopback), pgBackRest 2.45, PostgreSQL 15, lz4.', '',
    `Database: ${(Number(size) / 1048576).toFixed(0)} MB (--mb ${MB}; the issue asks for 1 GB, which did not fit the time of this run: pass --mb 1024).`, '',
    '| measurement | median |', '|---|---|',
    `| archiving RPO: age of the last archived WAL under 20 commits/s, archive_timeout ${ARCHIVE_TIMEOUT} s (sampled every second for ${RPO_S} s) | ${ages.length === 0 ? 'n/a' : `${median(ages).toFixed(1)} s (max ${Math.max(...ages).toFixed(1)} s)`} |`,
    `| restore of the database to a point in time (pgbackrest restore --type=time into a fresh directory, recovery, accepting writes) | ${fmt(restoreMs)} |`,
    `| replica from the backup (pghactl reinit, create_replica_methods: pgbackrest) until streaming | ${fmt(fromBackup)} |`,
    `| replica with pg_basebackup (pghactl reinit, create_replica_methods: basebackup) until streaming | ${fmt(basebackup)} |`, '',
    'Reading of the RPO row: `/status` computes the age at the request from `pg_stat_archiver`, which the agent reads every 5 s, so a sample can overstate the age by up to 5 s; the archive itself lags by about `archive_timeout` under a light load.', '',
    'Not measured: a whole-cluster PITR (`pghactl restore`) back to a healthy cluster, which is not built yet (docs/backup.md).', '');
  writeFileSync(new URL('../docs/benchmarks-backup.md', import.meta.url), out.join('\n'));
  console.log(out.join('\n'));
} finally {
  await cluster.destroy();
  repo.remove();
}
