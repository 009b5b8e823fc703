// `npm run bench [-- --runs N --rebuild-runs N --idle SECONDS --only WORD --sync on --tls]`: measures pgha on this machine with a real 3-node
// cluster (etcd, three agents, HAProxy) and a write probe that commits one row every 15 ms
// through the HAProxy read-write port. The write outage of an event is the time from the last
// acknowledged write before it to the first acknowledged write after it, as the client sees it.
// Results are printed and written to docs/benchmarks.md.
// `npm run bench -- --suite NAME [ARGS]` runs a feature's own benchmark instead,
// scripts/bench-NAME.ts (for example --suite pgbouncer), which writes docs/benchmarks-NAME.md.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { cpus, tmpdir, totalmem } from 'node:os';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dynamicConfigSchema } from '../src/config/schema.ts';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { tlsEverywhere } from '../lab/tls.ts';
import { TestCluster, type NodeHandle } from '../lab/loopback.ts';
import { REPO, postmasterPid, sleep, waitFor } from '../lab/util.ts';
import { childPids } from '../src/postgres/datadir.ts';
import { CLK_TCK, benchProbe, cpuTicks, patroniBlock, rssMb, stats, systemdBlock } from './bench-lib.ts';
import { chartEvents, renderChart, type PatroniFigures } from './bench-chart.ts';

if (process.argv[2] === '--suite') {
  const name = process.argv[3] ?? '';
  const script = join(import.meta.dirname, `bench-${name}.ts`);
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !existsSync(script)) {
    const known = readdirSync(import.meta.dirname).filter((f) => /^bench-[a-z0-9-]+\.ts$/.test(f) && !['bench-lib.ts', 'bench-chart.ts'].includes(f)).map((f) => f.slice(6, -3));
    console.error(`--suite: no benchmark named ${JSON.stringify(name)}; known: ${known.join(', ')}`);
    process.exit(2);
  }
  const run = spawnSync(process.execPath, [script, ...process.argv.slice(4)], { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}
const args = parseArgs({ options: { 'rebuild-runs': { type: 'string', default: '3' }, runs: { type: 'string', default: '10' }, idle: { type: 'string', default: '60' }, out: { type: 'string', default: 'docs/benchmarks.md' }, only: { type: 'string' }, sync: { type: 'string', default: 'off' }, tls: { type: 'boolean', default: false } } }).values;
const RUNS = Number(args.runs);
const IDLE_S = Number(args.idle);
const REBUILD_RUNS = Number(args['rebuild-runs']);
const RW = 25100;

// pgha's defaults (src/config/schema.ts), not the integration tests' fixed timing.
const DEFAULTS = dynamicConfigSchema.parse({});
// --sync on: the same events with synchronous_mode on (FIRST 1), where no acknowledged write may be lost.
if (args.sync !== 'on' && args.sync !== 'off') throw new Error(`--sync must be on or off, got ${args.sync}`);
const SYNC = args.sync === 'on';
// --tls: every link encrypted as docs/security.md sets it up (etcd with client certificates and
// auth, the agents' API on HTTPS with verify_client required and HAProxy's check-ssl, PostgreSQL
// ssl with verify-full and channel binding between members), to compare failover times.
const TLS_ETCD_PASSWORD = 'bench-etcd-pw';
const pkiDir = args.tls ? mkdtempSync(join(tmpdir(), 'pgha-bench-tls-')) : null;
const pgUser = lookupOsUser('postgres');
const tls = pkiDir === null ? null : tlsEverywhere(pkiDir, TLS_ETCD_PASSWORD, pgUser.uid, pgUser.gid);
const cluster = new TestCluster({
  etcdPort: 24399, pgPortBase: 5470, apiPortBase: 8050,
  ttl: DEFAULTS.ttl, loopWait: DEFAULTS.loop_wait, retryTimeout: DEFAULTS.retry_timeout, fenceMargin: DEFAULTS.fence_margin,
  ...(SYNC ? { dcs: { synchronous_mode: 'on' } } : {}),
  ...(tls === null ? {} : {
    etcdMembers: 1, etcdTls: tls.etcdTls, configure: tls.configure,
    apiTls: { caFile: tls.caFile, certFile: tls.admin.cert, keyFile: tls.admin.key },
  }),
});
let haproxy: ReturnType<typeof spawn> | null = null;

async function primary(not?: NodeHandle): Promise<NodeHandle> {
  return waitFor('a primary', async () => { const p = await cluster.primary(); return p !== null && p !== not ? p : null; }, 60_000, 50);
}
async function healthy(): Promise<NodeHandle> {
  return cluster.waitHealthy(90_000);
}
/**
 * Runs `event` RUNS times. `recovered` says when the event is over (by default: a write
 * acknowledged after it started); the outage is then the longest gap between two consecutive
 * acknowledged writes from the last one before the event to that moment.
 */
async function measure(
  name: string, event: (p: NodeHandle) => Promise<void>, heal: (old: NodeHandle) => Promise<void>,
  recovered: (old: NodeHandle, t: number) => Promise<boolean> = async (_, t) => probe.attempts.some((a) => a.ok && a.start > t),
): Promise<{ name: string; outages: number[] }> {
  const outages: number[] = [];
  if (args.only !== undefined && !name.includes(args.only)) return { name, outages };
  for (let i = 0; i < RUNS; i++) {
    const p = await healthy();
    await sleep(1000); // the point: a second of steady acknowledgements before the event
    const t = performance.now();
    events.push({ name, t });
    await event(p);
    // Failover takes seconds; 60 s means the event did not recover at all.
    await waitFor('writes again', () => recovered(p, t), 60_000, 20);
    outages.push(probe.outage(t, performance.now()));
    process.stdout.write(`${name} #${i + 1}: ${Math.round(outages.at(-1) ?? 0)} ms\n`);
    await heal(p);
  }
  return { name, outages };
}

/**
 * Standby rebuilt after failover: SIGKILL the primary's agent and PostgreSQL, wait for the new
 * primary, then time from the old primary's agent start to its PostgreSQL streaming from the new
 * one. 'pg_rewind': as it comes back (the agent rewinds it); 'clone': its data directory emptied
 * first (what a lost disk or `pghactl reinit` leads to: a fresh pg_basebackup). Which one the
 * agent really did is read from its log.
 */
async function rebuild(method: 'pg_rewind' | 'clone'): Promise<{ method: string; ms: number[]; did: string[] }> {
  const ms: number[] = [];
  const did: string[] = [];
  if (args.only !== undefined && !'rebuild'.includes(args.only)) return { method, ms, did };
  for (let i = 0; i < REBUILD_RUNS; i++) {
    const p = await healthy();
    await sleep(1000);
    events.push({ name: `rebuild (${method})`, t: performance.now() });
    cluster.killNode(p);
    await primary(p);
    if (method === 'clone') {
      // The dead postmaster must be gone before its files are removed (init reaps it).
      await waitFor('old postmaster gone', async () => postmasterPid(p.dataDir) === null, 10_000, 20);
      for (const f of readdirSync(p.dataDir)) rmSync(join(p.dataDir, f), { recursive: true, force: true });
    }
    const logBefore = cluster.logs(p).length;
    const t = performance.now();
    cluster.startAgent(p);
    // A rebuild of this small database takes seconds; 120 s means it did not finish.
    await waitFor('old primary streaming again', async () => (await cluster.probe(p, '/replica?replication_state=streaming')) === 200, 120_000, 20);
    ms.push(performance.now() - t);
    const log = cluster.logs(p).slice(logBefore);
    did.push(/"event":"clone"/.test(log) ? 'clone' : /"event":"rewind"/.test(log) ? 'pg_rewind' : 'neither');
    process.stdout.write(`rebuild (${method}) #${i + 1}: ${Math.round(ms.at(-1) ?? 0)} ms (${did.at(-1)})\n`);
  }
  return { method, ms, did };
}

/** The databases' size on the primary, and one member's data directory on disk (with WAL). */
async function dataSizes(): Promise<{ dbMb: number; dirMb: number }> {
  const p = await healthy();
  const r = await cluster.query(p, 'select sum(pg_database_size(oid))::bigint as b from pg_database');
  const du = execFileSync('du', ['-sk', p.dataDir]).toString().split('\t')[0];
  return { dbMb: Number((r.rows[0] as { b: string }).b) / 2 ** 20, dirMb: Number(du) / 1024 };
}

const agentPid = (n: NodeHandle): number => n.agent?.pid ?? 0;
/** Resident memory of each agent's fencing process (its child running bin/pgha-fencer.pl under perl). */
function fencerRss(): number[] {
  return cluster.nodes.map((n) => {
    const f = childPids(agentPid(n)).find((k) => { try { return readFileSync(`/proc/${k}/cmdline`, 'utf8').includes('fencer'); } catch { return false; } });
    return f === undefined ? Number.NaN : rssMb(f);
  });
}


const execFileAsync = promisify(execFile);
const probe = benchProbe(RW);
const events: Array<{ name: string; t: number }> = [];

async function main(): Promise<void> {
  await cluster.startEtcd();
  if (tls !== null) cluster.etcdCluster!.enableAuth(TLS_ETCD_PASSWORD);
  cluster.startAll();
  await healthy();
  haproxy = cluster.startHaproxy({ readWritePort: RW, readOnlyPort: RW + 1, ...(tls === null ? {} : { apiTls: { caFile: tls.caFile, crtFile: tls.haproxyPem } }) });
  const p0 = await primary();
  await cluster.query(p0, 'create table bench_probe (id int primary key, at timestamptz default now())');
  probe.start();
  await waitFor('probe writing', async () => probe.attempts.some((a) => a.ok), 20_000);

  const results = [];
  results.push(await measure('crash failover (SIGKILL agent + PostgreSQL)', async (p) => cluster.killNode(p), async (old) => {
    cluster.startAgent(old);
  }));
  // A hung host: the whole node stopped (no connection reset reaches anyone); thawed once another
  // member is primary, when its fenced agent rejoins as a standby.
  results.push(await measure('hung host (SIGSTOP agent, fencer and PostgreSQL)', async (p) => cluster.signalNode(p, 'SIGSTOP'), async (old) => {
    cluster.signalNode(old, 'SIGCONT');
  }, async (old, t) => (await cluster.primary()) !== old && probe.attempts.some((a) => a.ok && a.start > t)));
  results.push(await measure('postmaster SIGKILL (agent alive)', async (p) => { cluster.killPostmaster(p, 'SIGKILL'); }, async () => undefined));
  // pghactl runs beside the probe (not execFileSync, which would stall the probe for pghactl's
  // own start-up and count it as outage); the switchover is over once another member is primary
  // and a write started after that was acknowledged.
  let switchedAt = 0;
  results.push(await measure('switchover (pghactl switchover --force)', async () => {
    switchedAt = 0;
    // --no-wait: return once requested, as when these figures were first measured; the probe
    // below sees the outcome.
    await execFileAsync(process.execPath, [join(REPO, 'bin/pghactl.js'), '-c', cluster.nodes[0]!.configPath, 'switchover', '--force', '--no-wait']);
  }, async () => undefined, async (old) => {
    if (switchedAt === 0) { const q = await cluster.primary(); if (q !== null && q !== old) switchedAt = performance.now(); return false; }
    return probe.attempts.some((a) => a.ok && a.start > switchedAt);
  }));

  const rebuilds = [await rebuild('pg_rewind'), await rebuild('clone')];
  const sizes = await dataSizes();

  await healthy();
  await probe.stop();
  const final = await primary();
  const have = new Set((await cluster.query(final, 'select id from bench_probe')).rows.map((r: { id: number }) => r.id));
  const { lost, byEvent: lostBy } = probe.lostByEvent(have, events);

  // Idle: no probe, three agents looping.
  await sleep(2000);
  const t0 = cluster.nodes.map((n) => cpuTicks(agentPid(n)));
  await sleep(IDLE_S * 1000);
  const t1 = cluster.nodes.map((n) => cpuTicks(agentPid(n)));
  const cpu = t1.map((v, i) => ((v - (t0[i] ?? 0)) / CLK_TCK / IDLE_S) * 100);
  const rss = cluster.nodes.map((n) => rssMb(agentPid(n)));
  const fencers = fencerRss();

  const rows = results.map((r) => ({ name: r.name, lost: lostBy.get(r.name) ?? 0, ...stats(r.outages) }));
  const outMd = resolve(REPO, args.out ?? 'docs/benchmarks.md');
  const outJson = outMd.replace(/\.md$/, '.json');
  const outSvg = outMd.replace(/\.md$/, '.svg');
  // Patroni's figures, if `npm run bench:patroni` stored them in the JSON file: kept and charted.
  const previous = existsSync(outJson) ? (JSON.parse(readFileSync(outJson, 'utf8')) as { patroni?: PatroniFigures }) : {};
  writeFileSync(outSvg, renderChart(chartEvents(rows, previous.patroni)));
  const ms = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(x / 1000).toFixed(2)} s`);
  const md = `# Benchmarks${SYNC ? ': synchronous mode' : ''}${tls === null ? '' : ': TLS on every link'}
${SYNC ? '\nThe same events as [benchmarks.md](benchmarks.md), with `synchronous_mode: on`.\n' : ''}
Produced by \`npm run bench -- ${process.argv.slice(2).join(' ') || `--runs ${RUNS} --idle ${IDLE_S}`}\` on ${new Date().toISOString().slice(0, 10)}.
Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Debian 12, PostgreSQL 15, etcd 3.4, HAProxy 2.6,
Node ${process.versions.node}; everything on loopback on this one machine (3 PostgreSQL, 3 agents, 1 etcd, HAProxy).
Settings: pgha defaults (ttl ${DEFAULTS.ttl} s, loop_wait ${DEFAULTS.loop_wait} s, retry_timeout ${DEFAULTS.retry_timeout} s, fence_margin ${DEFAULTS.fence_margin} s), ${SYNC ? 'synchronous_mode on (FIRST 1)' : 'asynchronous replication'},
HAProxy checks every 250 ms (fastinter 125 ms, fall 2, rise 1).${tls === null ? '' : `
TLS (--tls): etcd over TLS with client certificates and etcd authentication, the agents' REST API on HTTPS with
verify_client required (HAProxy checks with check-ssl and a client certificate), PostgreSQL ssl = on with
sslmode=verify-full and channel_binding=require between members; clients write through HAProxy without TLS.`}

Write probe: one client commits one row every 15 ms through the HAProxy read-write port, reconnecting after
any error. **Outage** = the longest time between two consecutive acknowledged writes, from the last one
before the event until the event is over (a write acknowledged after it; for a switchover, after another
member became primary), as that client sees it (so it includes HAProxy noticing the new primary).
\`pghactl switchover\` runs beside the probe, so its own start-up is not counted.

![Write outage per event: median bar, min-max whisker, p90 tick${previous.patroni ? ', pgha against Patroni' : ''}](${basename(outSvg)})

| event | runs | min | median | p90 | max | acknowledged writes lost |
|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.name} | ${r.n} | ${ms(r.min)} | ${ms(r.median)} | ${ms(r.p90)} | ${ms(r.max)} | ${r.lost} |`).join('\n')}

Acknowledged writes: ${probe.acked().length}; lost (acknowledged but missing on the final primary): **${lost.length}**.
${SYNC || tls !== null ? '' : '\nThe same events in synchronous mode: [benchmarks-sync.md](benchmarks-sync.md) (`npm run bench -- --sync on --rebuild-runs 0 --idle 5 --out docs/benchmarks-sync.md`); with TLS on every link: [benchmarks-tls.md](benchmarks-tls.md) (`npm run bench -- --tls --runs 5 --rebuild-runs 0 --idle 5 --out docs/benchmarks-tls.md`, compared with a run without TLS in [performance.md](performance.md#tls-on-every-link)).\n'}
Standby rebuilt after a crash failover: from the old primary's agent start to its PostgreSQL streaming
from the new primary (databases ${sizes.dbMb.toFixed(0)} MB, data directory with WAL ${sizes.dirMb.toFixed(0)} MB):

| rebuild | runs | min | median | max | what the agent did |
|---|---|---|---|---|---|
${rebuilds.map((r) => { const s = stats(r.ms); return `| ${r.method === 'clone' ? 'fresh clone (data directory emptied first)' : 'as it comes back (pg_rewind)'} | ${s.n} | ${ms(s.min)} | ${ms(s.median)} | ${ms(s.max)} | ${[...new Set(r.did)].join(', ')} |`; }).join('\n')}

Idle agents over ${IDLE_S} s: resident memory ${rss.map((r) => `${r.toFixed(0)} MB`).join(', ')}; CPU ${cpu.map((c) => `${c.toFixed(2)} %`).join(', ')} of one core.
Each agent's fencing process: resident memory ${fencers.map((r) => `${r.toFixed(0)} MB`).join(', ')} (perl running bin/pgha-fencer.pl; idle footprint in detail: [benchmarks-idle.md](benchmarks-idle.md)).

What limits the numbers:
- crash failover: the dead leader's key must expire first: ttl (${DEFAULTS.ttl} s) after its last renewal, which was up to
  loop_wait (${DEFAULTS.loop_wait} s) before the crash, and etcd revokes expired leases on a 500 ms tick. Then the winner
  promotes (about 0.1 s) and HAProxy needs one good check (every 125 ms while the server is down).
  ttl 2 is etcd's minimum lease with its default election timeout; \`npm run soak\` measures false failovers.
- postmaster crash: the agent notices at once (its health connection drops and wakes the loop), then
  pg_ctl start runs crash recovery (which ends with a checkpoint) and HAProxy needs one good check.
- switchover: the old leader's clean stop (about 0.1 s), the candidate's promotion (about 0.1 s) and HAProxy:
  a client that reconnects in between is refused by the stopped server, which marks it down at once
  (observe layer4), and is redispatched after HAProxy's retry delay (min(timeout connect, 1 s) = 0.2 s).

${featureBenchmarks()}
Where the time and the memory go, and what was tried: [performance.md](performance.md). False failovers
at the default timing: \`npm run soak\` (results there).

The side-by-side with Patroni is the section below, written by \`npm run bench:patroni\` (which also stores its
figures in benchmarks.json; the chart above shows them beside pgha's). Write outages under a hung host, partitions,
etcd loss and a full disk, in synchronous and asynchronous mode, come from the fault-injection suite:
[chaos-report.md](chaos-report.md). Not measured: rebuilds of a large database (the bench's is small).
`;
  // Keep the Patroni comparison and the systemd lab's figures (npm run bench:patroni,
  // npm run bench:systemd) that were written into this file.
  const old = existsSync(outMd) ? readFileSync(outMd, 'utf8') : '';
  const kept = [patroniBlock(old), systemdBlock(old)].filter((b) => b !== '');
  writeFileSync(outMd, [md, ...kept].join('\n') + (kept.length > 0 ? '\n' : ''));
  // For `pghactl availability --from-drill docs/benchmarks.json`: the crash-failover median.
  const crash = rows[0];
  if (crash !== undefined && !Number.isNaN(crash.median)) {
    const json = { source: 'npm run bench', date: new Date().toISOString(), events: rows, summary: { kind: 'crash-failover', median_outage_s: crash.median / 1000, synchronous_mode: SYNC ? 'on' : 'off' },
      idle: { seconds: IDLE_S, rss_mb: rss, cpu_pct: cpu }, ...(previous.patroni ? { patroni: previous.patroni } : {}) };
    writeFileSync(outJson, `${JSON.stringify(json, null, 2)}\n`);
  }
  process.stdout.write(`\n${md}`);
}

/** Links to the feature benchmarks (`npm run bench -- --suite NAME`) whose results exist in docs/. */
function featureBenchmarks(): string {
  const docs = join(REPO, 'docs');
  const names = readdirSync(docs).filter((f) => /^benchmarks-[a-z0-9-]+\.md$/.test(f) && !['benchmarks-sync.md', 'benchmarks-tls.md'].includes(f));
  if (names.length === 0) return '';
  return `Feature benchmarks, each produced by \`npm run bench -- --suite NAME\` (scripts/bench-NAME.ts):\n${names.map((f) => `- [${f.slice(11, -3)}](${f})`).join('\n')}\n`;
}

main()
  .catch((err: unknown) => { console.error(err); process.exitCode = 1; })
  .finally(async () => {
    await probe.stop().catch(() => undefined);
    haproxy?.kill('SIGKILL');
    await cluster.destroy();
    if (pkiDir !== null) rmSync(pkiDir, { recursive: true, force: true });
  });

// Ctrl-C or SIGTERM: stop everything the bench started before exiting.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    haproxy?.kill('SIGKILL');
    void cluster.destroy().finally(() => {
      if (pkiDir !== null) rmSync(pkiDir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}
