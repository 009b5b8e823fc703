// `npm run bench [-- --runs N --idle SECONDS]`: measures pgha on this machine with a real 3-node
// cluster (etcd, three agents, HAProxy) and a write probe that commits one row every 15 ms
// through the HAProxy read-write port. The write outage of an event is the time from the last
// acknowledged write before it to the first acknowledged write after it, as the client sees it.
// Results are printed and written to docs/benchmarks.md.
import { execFileSync, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { renderHaproxyConfig } from '../src/proxy/haproxy.ts';
import { REPO, TestCluster, sleep, waitFor, type NodeHandle } from '../test/support/cluster.ts';
import { CLK_TCK, Probe, cpuTicks, patroniBlock, rssMb, stats } from './bench-lib.ts';

const args = parseArgs({ options: { runs: { type: 'string', default: '10' }, idle: { type: 'string', default: '60' }, out: { type: 'string', default: 'docs/benchmarks.md' }, only: { type: 'string' } } }).values;
const RUNS = Number(args.runs);
const IDLE_S = Number(args.idle);
const RW = 25100;

const cluster = new TestCluster({ etcdPort: 24399, pgPortBase: 5470, apiPortBase: 8050 });
let haproxy: ReturnType<typeof spawn> | null = null;

async function primary(not?: NodeHandle): Promise<NodeHandle> {
  return waitFor('a primary', async () => { const p = await cluster.primary(); return p !== null && p !== not ? p : null; }, 60_000, 50);
}
async function healthy(): Promise<NodeHandle> {
  return waitFor('healthy cluster', async () => ((await cluster.replicas(true)).length === 2 ? cluster.primary() : null), 90_000, 200);
}
async function measure(name: string, event: (p: NodeHandle) => Promise<void>, heal: (old: NodeHandle) => Promise<void>): Promise<{ name: string; outages: number[] }> {
  const outages: number[] = [];
  if (args.only !== undefined && !name.includes(args.only)) return { name, outages };
  for (let i = 0; i < RUNS; i++) {
    const p = await healthy();
    await sleep(1000);
    const t = performance.now();
    events.push({ name, t });
    await event(p);
    await waitFor('writes again', async () => probe.attempts.some((a) => a.ok && a.start > t), 60_000, 20);
    outages.push(probe.outage(t));
    process.stdout.write(`${name} #${i + 1}: ${Math.round(outages.at(-1) ?? 0)} ms\n`);
    await heal(p);
  }
  return { name, outages };
}

function agentRss(): number[] {
  return cluster.nodes.map((n) => rssMb(n.agent?.pid ?? 0));
}
function agentCpuTicks(): number[] {
  return cluster.nodes.map((n) => cpuTicks(n.agent?.pid ?? 0));
}

const probe = new Probe(RW);
const events: Array<{ name: string; t: number }> = [];

async function main(): Promise<void> {
  await cluster.startEtcd();
  cluster.startAll();
  await healthy();
  const file = join(cluster.dir, 'haproxy.cfg');
  writeFileSync(file, renderHaproxyConfig({ readWritePort: RW, readOnlyPort: RW + 1, checkIntervalMs: 250, members: cluster.nodes.map((n) => ({ name: n.name, pgHost: '127.0.0.1', pgPort: n.pgPort, apiHost: '127.0.0.1', apiPort: n.apiPort })) }));
  haproxy = spawn('/usr/sbin/haproxy', ['-db', '-f', file], { stdio: 'ignore' });
  const p0 = await primary();
  await cluster.query(p0, 'create table bench_probe (id int primary key, at timestamptz default now())');
  probe.start();
  await waitFor('probe writing', async () => probe.attempts.some((a) => a.ok), 20_000);

  const results = [];
  results.push(await measure('crash failover (SIGKILL agent + PostgreSQL)', async (p) => cluster.killNode(p), async (old) => {
    cluster.startAgent(old);
  }));
  results.push(await measure('postmaster SIGKILL (agent alive)', async (p) => { cluster.killPostmaster(p, 'SIGKILL'); }, async () => undefined));
  results.push(await measure('switchover (pghactl switchover --force)', async () => {
    execFileSync(process.execPath, [join(REPO, 'bin/pghactl.js'), '-c', cluster.nodes[0]!.configPath, 'switchover', '--force'], { stdio: ['ignore', 'ignore', 'inherit'] });
  }, async () => undefined));

  await healthy();
  await probe.stop();
  const final = await primary();
  const have = new Set((await cluster.query(final, 'select id from bench_probe')).rows.map((r: { id: number }) => r.id));
  const lost = probe.acked().filter((id) => !have.has(id));
  const lostBy = new Map<string, number>();
  for (const id of lost) {
    const at = probe.attempts.find((a) => a.id === id)?.end ?? 0;
    const ev = events.filter((e) => e.t <= at + 5000).at(-1)?.name ?? 'before any event';
    lostBy.set(ev, (lostBy.get(ev) ?? 0) + 1);
  }

  // Idle: no probe, three agents looping.
  await sleep(2000);
  const t0 = agentCpuTicks();
  await sleep(IDLE_S * 1000);
  const t1 = agentCpuTicks();
  const cpu = t1.map((v, i) => ((v - (t0[i] ?? 0)) / CLK_TCK / IDLE_S) * 100);
  const rss = agentRss();

  const rows = results.map((r) => ({ name: r.name, lost: lostBy.get(r.name) ?? 0, ...stats(r.outages) }));
  const ms = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(x / 1000).toFixed(2)} s`);
  const md = `# Benchmarks

Produced by \`npm run bench -- --runs ${RUNS} --idle ${IDLE_S}\` on ${new Date().toISOString().slice(0, 10)}.
Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Debian 12, PostgreSQL 15, etcd 3.4, HAProxy 2.6,
Node ${process.versions.node}; everything on loopback on this one machine (3 PostgreSQL, 3 agents, 1 etcd, HAProxy).
Settings: pgha defaults (ttl 3 s, loop_wait 0.5 s, retry_timeout 1 s, fence_margin 0.75 s), asynchronous replication,
HAProxy checks every 250 ms (fastinter 125 ms, fall 2, rise 1).

Write probe: one client commits one row every 15 ms through the HAProxy read-write port, reconnecting after
any error. **Outage** = time from the last acknowledged write before the event to the first acknowledged write
after it, as that client sees it (so it includes HAProxy noticing the new primary).

| event | runs | min | median | p90 | max | acknowledged writes lost |
|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.name} | ${r.n} | ${ms(r.min)} | ${ms(r.median)} | ${ms(r.p90)} | ${ms(r.max)} | ${r.lost} |`).join('\n')}

Acknowledged writes: ${probe.acked().length}; lost (acknowledged but missing on the final primary): **${lost.length}**.

Idle agents over ${IDLE_S} s: resident memory ${rss.map((r) => `${r.toFixed(0)} MB`).join(', ')}; CPU ${cpu.map((c) => `${c.toFixed(2)} %`).join(', ')} of one core.

What limits the numbers:
- crash failover: the dead leader's key must expire first: ttl (3 s) after its last renewal, which was up to
  loop_wait (0.5 s) before the crash, and etcd revokes expired leases on a 500 ms tick. Then the winner
  promotes (about 0.1 s) and HAProxy needs one good check (every 125 ms while the server is down).
  A ttl of 2 s would cut about a second, with less room for a slow etcd before a healthy leader fences itself.
- postmaster crash: the agent notices on its next loop (up to 0.5 s), then crash recovery and restart in place.
- switchover: the old leader's clean stop (about 0.1 s), the candidate's promotion (about 0.1 s) and HAProxy:
  a client that reconnects in between is refused by the stopped server, which marks it down at once
  (observe layer4), and is redispatched after HAProxy's retry delay (min(timeout connect, 1 s) = 0.5 s).

The side-by-side with Patroni is the section below, written by \`npm run bench:patroni\`.
Not measured yet: synchronous mode, a hung host (SIGSTOP) and partitions (they need the
fault-injection namespaces), and rebuild times.
`;
  const mdFile = resolve(REPO, args.out ?? 'docs/benchmarks.md');
  // Keep the Patroni comparison that `npm run bench:patroni` wrote into this file.
  const patroni = existsSync(mdFile) ? patroniBlock(readFileSync(mdFile, 'utf8')) : '';
  writeFileSync(mdFile, patroni === '' ? md : `${md}\n${patroni}\n`);
  // For `pghactl availability --from-drill docs/benchmarks.json`: the crash-failover median.
  const crash = rows[0];
  if (crash !== undefined && !Number.isNaN(crash.median)) {
    const file = resolve(REPO, (args.out ?? 'docs/benchmarks.md').replace(/\.md$/, '.json'));
    // Keep what `npm run bench:patroni` merged in under "patroni".
    const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { patroni?: unknown }) : {};
    const json = { source: 'npm run bench', date: new Date().toISOString(), events: rows, summary: { median_outage_s: crash.median / 1000 }, idle: { seconds: IDLE_S, rss_mb: rss, cpu_pct: cpu }, ...(previous.patroni === undefined ? {} : { patroni: previous.patroni }) };
    writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  }
  process.stdout.write(`\n${md}`);
}

main()
  .catch((err: unknown) => { console.error(err); process.exitCode = 1; })
  .finally(async () => {
    await probe.stop().catch(() => undefined);
    haproxy?.kill('SIGKILL');
    await cluster.destroy();
  });
