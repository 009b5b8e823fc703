// `npm run bench:pgbouncer`: the event "switchover through PgBouncer". A real cluster (etcd, three
// agents, HAProxy) with PgBouncer (transaction pooling) in front of HAProxy's read-write port, the
// agents configured to PAUSE/RESUME it (pgbouncer.route_check = HAProxy's read-write port). Under
// 8 clients of short transactions through PgBouncer, and beside them the write probe of
// `npm run bench` straight through HAProxy, it runs RUNS planned switchovers and records, for each:
// the client errors and the longest transaction through PgBouncer, and the HAProxy outage and
// failed writes the direct probe saw. Writes docs/benchmarks-pgbouncer.md.
// Run it alone (under the integration lock): other load on the machine lengthens every figure.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchProbe, stats } from './bench-lib.ts';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { TestCluster } from '../lab/loopback.ts';
import { PASSWORDS, REPO, queryOnce, sleep, superuserClient, waitFor } from '../lab/util.ts';
import { startPgbouncer } from '../lab/pgbouncer.ts';
import { createLoadTable, startLoad } from '../lab/pooler-load.ts';
import { allocatePorts } from '../lab/ports.ts';

const RUNS = Number(process.env.PGHA_BENCH_RUNS ?? 10);
// Ports allocated (lab/ports.ts): HAProxy read-write (read-only the next one), then PgBouncer.
const RW = allocatePorts(3);
const POOLER = RW + 2;
const ADMIN = { user: 'pgha_admin', password: 'bench-pooler-admin' };
const AUTH = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`;

interface Run { errors: number; longestMs: number; haproxyOutageMs: number; haproxyFailed: number; handoverMs: number; routeWaitMs: number }

const secrets = mkdtempSync(join(tmpdir(), 'pgha-bench-pooler-'));
const passFile = join(secrets, 'admin.pass');
const cluster = new TestCluster({
  configure: (_i, cfg) => {
    cfg['pgbouncer'] = {
      poolers: [{ name: 'bench', host: '127.0.0.1', port: POOLER, user: ADMIN.user, password_file: passFile }],
      route_check: `127.0.0.1:${RW}`,
    };
  },
});

async function settled(): Promise<string> {
  return (await cluster.waitHealthy(60_000, { intervalMs: 100 })).name;
}

async function main(): Promise<void> {
  const pgUser = lookupOsUser('postgres');
  writeFileSync(passFile, `${ADMIN.password}\n`, { mode: 0o600 });
  chownSync(secrets, pgUser.uid, pgUser.gid);
  chownSync(passFile, pgUser.uid, pgUser.gid);
  await cluster.startEtcd();
  cluster.startAll();
  cluster.startHaproxy({ readWritePort: RW, readOnlyPort: RW + 1 });
  const bouncer = await startPgbouncer({ dir: join(cluster.dir, 'pgbouncer'), port: POOLER, server: { host: '127.0.0.1', port: RW }, admin: ADMIN, users: { postgres: PASSWORDS.superuser } });
  cluster.onDestroy(() => void bouncer.stop());
  await settled();
  await waitFor('a write through PgBouncer', async () => { await createLoadTable(POOLER, 'bench_pool'); return true; }, 30_000, 250);
  await queryOnce(superuserClient({ host: '127.0.0.1', port: RW, connectMs: 2000, queryMs: 5000 }), 'create table if not exists bench_probe (id int primary key)');

  const load = startLoad({ port: POOLER, clients: 8, table: 'bench_pool', pauseMs: 5 });
  const probe = benchProbe(RW);
  probe.start();
  // Both the probe and the load commit before the first switchover; 30 s covers a loaded machine.
  await waitFor('the probe and the load committing', async () => probe.acks().length > 0 && load.now().committed > 0, 30_000, 50);
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const from = await settled();
    await sleep(500);
    const before = load.now();
    const t = performance.now();
    const r = await fetch(`${cluster.apiBase(cluster.nodes.find((n) => n.name === from)!)}/switchover`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: AUTH }, body: JSON.stringify({ leader: from }),
    });
    if (!r.ok) throw new Error(`POST /switchover: ${r.status} ${await r.text()}`);
    const to = await waitFor('a new primary', async () => { const p = await cluster.primary(); return p !== null && p.name !== from ? p.name : null; }, 30_000, 20);
    const handoverMs = performance.now() - t;
    await settled();
    await sleep(500);
    const after = load.now();
    const window = after.latenciesMs.slice(before.latenciesMs.length);
    const until = performance.now();
    const failed = probe.attempts.filter((a) => !a.ok && a.start >= t - 50 && a.start <= until).length;
    // The new leader's RESUME waited this long after its promotion for HAProxy to route to it:
    // what routing PgBouncer to the leader directly could save at most.
    const reports = await (await fetch(`${cluster.apiBase(cluster.nodes.find((n) => n.name === to)!)}/poolers`)).json() as { reports: Array<{ step: string; waitedMs?: number | null }> };
    const routeWaitMs = reports.reports.filter((x) => x.step === 'resume').at(-1)?.waitedMs ?? Number.NaN;
    runs.push({ errors: after.errors.length - before.errors.length, longestMs: Math.max(0, ...window), haproxyOutageMs: probe.outage(t, until), haproxyFailed: failed, handoverMs, routeWaitMs });
    process.stdout.write(`switchover ${i + 1}/${RUNS} ${from} -> ${to}: ${runs.at(-1)!.errors} errors via PgBouncer, longest transaction ${Math.round(runs.at(-1)!.longestMs)} ms; HAProxy outage ${Math.round(runs.at(-1)!.haproxyOutageMs)} ms, ${failed} failed direct writes\n`);
  }
  await probe.stop();
  const total = await load.stop();
  writeFileSync(join(REPO, 'docs/benchmarks-pgbouncer.md'), render(runs, total.committed, total.errors.length));
  process.stdout.write('wrote docs/benchmarks-pgbouncer.md\n');
}

function render(runs: Run[], committed: number, errors: number): string {
  const ms = (x: number) => `${Math.round(x)} ms`;
  const row = (name: string, xs: number[]) => { const s = stats(xs); return `| ${name} | ${s.n} | ${ms(s.min)} | ${ms(s.median)} | ${ms(s.p90)} | ${ms(s.max)} |`; };
  const sh = (cmd: string, args: string[]) => execFileSync(cmd, args).toString().trim();
  return `# Benchmark: switchover through PgBouncer

Written by \`npm run bench:pgbouncer\` (scripts/bench-pgbouncer.ts) on ${new Date().toISOString().slice(0, 10)}:
${sh('nproc', [])} cores, Linux ${sh('uname', ['-r'])}, PgBouncer 1.18 (Debian), PostgreSQL 15, HAProxy checks every 250 ms,
ttl 3 s, loop_wait 0.5 s, the pgbouncer defaults (pause_timeout 2 s, call_timeout 1 s) with
route_check on HAProxy's read-write port. Run under the integration lock (no other integration
test at the same time; other helpers' unit tests may have shared the 2 cores).

The same ${runs.length} planned switchovers (\`POST /switchover\`), seen two ways at once:
- **through PgBouncer**: 8 clients, each one session to PgBouncer (transaction pooling, which
  routes to HAProxy's read-write port) running \`BEGIN; UPDATE; SELECT; COMMIT\` every 5 ms;
- **straight through HAProxy**: the write probe of \`npm run bench\` (one insert every 15 ms on one
  session, reconnecting after an error).

| | goal | result |
|---|---|---|
| client errors through PgBouncer (all runs) | 0 | **${runs.reduce((a, r) => a + r.errors, 0)}** (${committed} transactions committed; ${errors} errors over the whole run) |
| longest transaction through PgBouncer (worst run) | < 1 s | **${ms(Math.max(...runs.map((r) => r.longestMs)))}** |
| failed write attempts straight through HAProxy (all runs; the probe retries every 15 ms) | | ${runs.reduce((a, r) => a + r.haproxyFailed, 0)} |

Per switchover (min / median / p90 / max over the runs):

| measure | runs | min | median | p90 | max |
|---|---|---|---|---|---|
${row('longest transaction through PgBouncer', runs.map((r) => r.longestMs))}
${row('HAProxy outage (direct probe: longest gap between acknowledged writes)', runs.map((r) => r.haproxyOutageMs))}
${row('handover (request to new /primary 200)', runs.map((r) => r.handoverMs))}
${row('new leader: promotion to HAProxy routing to it (RESUME waited)', runs.map((r) => r.routeWaitMs))}

Through PgBouncer a switchover is a wait: PAUSE lets the in-flight transactions finish, queued
queries wait while the old primary stops and the candidate promotes, and RESUME comes once a
connection through HAProxy reaches the new primary. The longest transaction is that wait plus the
transaction itself. The last row is the part of that wait that routing PgBouncer to the leader
directly (instead of through HAProxy) could save at most. Straight through HAProxy the same
switchover costs each open session an error (its server is stopped) and the write probe sees the
outage above. See docs/pgbouncer.md.
`;
}

main().then(
  async () => { await cluster.destroy(); rmSync(secrets, { recursive: true, force: true }); process.exit(0); },
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    await cluster.destroy();
    rmSync(secrets, { recursive: true, force: true });
    process.exit(1);
  },
);
