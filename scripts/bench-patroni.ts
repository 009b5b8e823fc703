// `npm run bench:patroni [-- --runs N]`: the same events and write probe as `npm run bench`, against
// Patroni from Debian's `patroni` package (3.0.2 on Debian 12) in the same kind of 3-node loopback
// cluster (one etcd, HAProxy with the same template), at Patroni's defaults and at the aggressive
// timing ttl 10 / loop_wait 1 / retry_timeout 4 (valid: loop_wait + 2 x retry_timeout <= ttl).
// Writes docs/benchmarks-patroni.md. Needs root (apt-get install patroni) to run.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { chownSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { renderHaproxyConfig } from '../src/proxy/haproxy.ts';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { startEtcd } from '../test/support/etcd.ts';
import { PASSWORDS, REPO, postmasterPid, sleep, waitFor } from '../test/support/cluster.ts';
import { Probe, stats } from './bench-lib.ts';
import { chartEvents, renderChart, type ChartStats, type PatroniFigures } from './bench-chart.ts';

const args = parseArgs({ options: { runs: { type: 'string', default: '5' }, idle: { type: 'string', default: '30' } } }).values;
const RUNS = Number(args.runs);
const IDLE_S = Number(args.idle);
const RW = 25200;
const execFileAsync = promisify(execFile);
const user = lookupOsUser('postgres');

interface PNode { name: string; pgPort: number; apiPort: number; dir: string; cfg: string; proc: ChildProcess | null }

function settingsLabel(t: { ttl: number; loop_wait: number; retry_timeout: number }): string {
  return `ttl ${t.ttl} / loop_wait ${t.loop_wait} / retry_timeout ${t.retry_timeout}`;
}

async function runSetting(timing: { ttl: number; loop_wait: number; retry_timeout: number }, etcdPort: number) {
  const base = mkdtempSync(join(tmpdir(), 'pgha-patroni-'));
  chownSync(base, user.uid, user.gid);
  const etcd = await startEtcd({ clientPort: etcdPort, peerPort: etcdPort + 1 });
  const nodes: PNode[] = [1, 2, 3].map((i) => ({ name: `p${i}`, pgPort: 5500 + i, apiPort: 8090 + i, dir: join(base, `p${i}`), cfg: join(base, `p${i}.yml`), proc: null }));
  let haproxy: ChildProcess | null = null;
  let probe: Probe | null = null;
  const start = (n: PNode) => {
    const log = createWriteStream(join(base, `${n.name}.log`), { flags: 'a' });
    n.proc = spawn('/usr/bin/patroni', [n.cfg], { uid: user.uid, gid: user.gid, cwd: base, env: { PATH: '/usr/bin:/bin', HOME: base, LANG: 'C.UTF-8' }, stdio: ['ignore', 'pipe', 'pipe'] });
    n.proc.stdout?.pipe(log);
    n.proc.stderr?.pipe(log);
  };
  const probeApi = (n: PNode, path: string) => fetch(`http://127.0.0.1:${n.apiPort}${path}`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);
  const primary = async () => { for (const n of nodes) if ((await probeApi(n, '/primary')) === 200) return n; return null; };
  const healthy = () => waitFor('healthy Patroni cluster', async () => {
    const p = await primary();
    const reps = (await Promise.all(nodes.map((n) => probeApi(n, '/replica')))).filter((c) => c === 200).length;
    return p !== null && reps === 2 ? p : null;
  }, 180_000, 250);
  try {
    for (const n of nodes) {
      mkdirSync(n.dir, { mode: 0o700 });
      chownSync(n.dir, user.uid, user.gid);
      writeFileSync(n.cfg, stringify({
        scope: 'pbench', name: n.name, namespace: '/patroni-bench/',
        restapi: { listen: `127.0.0.1:${n.apiPort}`, connect_address: `127.0.0.1:${n.apiPort}` },
        etcd3: { hosts: [`127.0.0.1:${etcdPort}`] },
        bootstrap: {
          dcs: { ...timing, maximum_lag_on_failover: 1048576, postgresql: { use_pg_rewind: true, parameters: { wal_log_hints: 'on', shared_buffers: '16MB', max_connections: 30 } } },
          initdb: [{ encoding: 'UTF8' }, 'data-checksums'],
          pg_hba: ['local all all scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256', 'host replication replicator 127.0.0.1/32 scram-sha-256'],
        },
        postgresql: {
          listen: `127.0.0.1:${n.pgPort}`, connect_address: `127.0.0.1:${n.pgPort}`, data_dir: join(n.dir, 'data'),
          bin_dir: '/usr/lib/postgresql/15/bin', pgpass: join(n.dir, 'pgpass'),
          authentication: { superuser: { username: 'postgres', password: PASSWORDS.superuser }, replication: { username: 'replicator', password: PASSWORDS.replication }, rewind: { username: 'rewinder', password: PASSWORDS.rewind } },
          parameters: { unix_socket_directories: n.dir },
        },
      }), { mode: 0o600 });
      chownSync(n.cfg, user.uid, user.gid);
    }
    for (const n of nodes) start(n);
    const p0 = await healthy();
    const hcfg = join(base, 'haproxy.cfg');
    writeFileSync(hcfg, renderHaproxyConfig({ readWritePort: RW, readOnlyPort: RW + 1, checkIntervalMs: 250, members: nodes.map((n) => ({ name: n.name, pgHost: '127.0.0.1', pgPort: n.pgPort, apiHost: '127.0.0.1', apiPort: n.apiPort })) }));
    haproxy = spawn('/usr/sbin/haproxy', ['-db', '-f', hcfg], { stdio: 'ignore' });
    execFileSync('/usr/bin/psql', ['-h', '127.0.0.1', '-p', String(p0.pgPort), '-U', 'postgres', '-d', 'postgres', '-c', 'create table bench_probe (id int primary key)'], { env: { ...process.env, PGPASSWORD: PASSWORDS.superuser } });
    const writer = new Probe(RW);
    probe = writer;
    writer.start();
    await waitFor('probe writing', async () => writer.attempts.some((a) => a.ok), 30_000);
    const crash: number[] = [];
    const sw: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const p = await healthy();
      await sleep(1000);
      const t = performance.now();
      p.proc?.kill('SIGKILL');
      const pid = postmasterPid(join(p.dir, 'data'));
      if (pid !== null) { try { for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) process.kill(Number(c), 'SIGKILL'); } catch { /* gone */ } process.kill(pid, 'SIGKILL'); }
      await waitFor('writes again', async () => writer.attempts.some((a) => a.ok && a.start > t), 180_000, 50);
      crash.push(writer.outage(t, performance.now()));
      process.stdout.write(`patroni ${settingsLabel(timing)} crash #${i + 1}: ${Math.round(crash.at(-1) ?? 0)} ms\n`);
      start(p);
    }
    for (let i = 0; i < RUNS; i++) {
      const p = await healthy();
      await sleep(1000);
      const t = performance.now();
      // Beside the probe, not execFileSync: a blocked probe would count patronictl's own run time as outage.
      const ctl = execFileAsync('/usr/bin/patronictl', ['-c', nodes[0]!.cfg, 'switchover', '--leader', p.name, '--force']);
      let switchedAt = 0;
      // A Patroni switchover takes seconds; 60 s means it did not happen.
      await waitFor('writes again', async () => {
        if (switchedAt === 0) { const q = await primary(); if (q !== null && q !== p) switchedAt = performance.now(); return false; }
        return writer.attempts.some((a) => a.ok && a.start > switchedAt);
      }, 60_000, 50);
      await ctl;
      sw.push(writer.outage(t, performance.now()));
      process.stdout.write(`patroni ${settingsLabel(timing)} switchover #${i + 1}: ${Math.round(sw.at(-1) ?? 0)} ms\n`);
    }
    await writer.stop();
    // Idle: resident memory and CPU of the three Patroni processes.
    const ticks = () => nodes.map((n) => { const f = readFileSync(`/proc/${n.proc?.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []; return Number(f[11]) + Number(f[12]); });
    const t0 = ticks();
    await sleep(IDLE_S * 1000);
    const t1 = ticks();
    const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
    const cpu = t1.map((v, i) => ((v - (t0[i] ?? 0)) / hz / IDLE_S) * 100);
    const rss = nodes.map((n) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${n.proc?.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
    return { label: settingsLabel(timing), timing, crash: stats(crash), switchover: stats(sw), rss, cpu };
  } finally {
    await probe?.stop();
    haproxy?.kill('SIGKILL');
    for (const n of nodes) {
      n.proc?.kill('SIGKILL');
      const pid = postmasterPid(join(n.dir, 'data'));
      if (pid !== null) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await etcd.stop();
    if (process.env.PGHA_KEEP_TEST_DIRS !== '1') rmSync(base, { recursive: true, force: true });
    else process.stdout.write(`kept ${base}\n`);
  }
}

async function main(): Promise<void> {
  if (!existsSync('/usr/bin/patroni')) throw new Error('Patroni is not installed: apt-get install patroni');
  const version = execFileSync('/usr/bin/patroni', ['--version']).toString().trim();
  const results = [];
  results.push(await runSetting({ ttl: 30, loop_wait: 10, retry_timeout: 10 }, 24429));
  results.push(await runSetting({ ttl: 10, loop_wait: 1, retry_timeout: 4 }, 24439));
  const s = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(x / 1000).toFixed(2)} s`);
  const md = `# Patroni, measured the same way

Produced by \`npm run bench:patroni -- --runs ${RUNS} --idle ${IDLE_S}\` on ${new Date().toISOString().slice(0, 10)}, on the same machine and with the
same write probe, HAProxy template (checks every 250 ms) and etcd 3.4 as \`npm run bench\` ([benchmarks.md](benchmarks.md)).
${version} from Debian's package, etcd3 API, asynchronous replication, use_pg_rewind on.

| Patroni settings | crash failover median (min-max) | switchover median (min-max) | idle RSS per agent | idle CPU per agent |
|---|---|---|---|---|
${results.map((r) => `| ${r.label} | ${s(r.crash.median)} (${s(r.crash.min)}-${s(r.crash.max)}) | ${s(r.switchover.median)} (${s(r.switchover.min)}-${s(r.switchover.max)}) | ${r.rss.map((x) => x.toFixed(0)).join(', ')} MB | ${r.cpu.map((x) => x.toFixed(2)).join(', ')} % |`).join('\n')}

Crash failover = SIGKILL of the leader's Patroni process and its PostgreSQL (postmaster and children).
Switchover = \`patronictl switchover --leader <leader> --force\` (Patroni picks the candidate).
`;
  writeFileSync(resolve(REPO, 'docs/benchmarks-patroni.md'), md);
  // Beside pgha's figures in docs/benchmarks.json, where `npm run bench` keeps them and charts them.
  const jsonPath = resolve(REPO, 'docs/benchmarks.json');
  const json = existsSync(jsonPath) ? (JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>) : {};
  const patroni: PatroniFigures = { version, date: new Date().toISOString(), settings: results.map((r) => ({ timing: r.timing, crash: r.crash, switchover: r.switchover, rss: r.rss, cpu: r.cpu })) };
  writeFileSync(jsonPath, `${JSON.stringify({ ...json, patroni }, null, 2)}\n`);
  // Redraw the chart with Patroni beside pgha's last figures.
  const pghaRows = (json as { events?: Array<ChartStats & { name: string }> }).events;
  if (pghaRows !== undefined) writeFileSync(resolve(REPO, 'docs/benchmarks.svg'), renderChart(chartEvents(pghaRows, patroni)));
  process.stdout.write(`\n${md}`);
}

main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
