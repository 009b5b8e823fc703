// `npm run bench -- --suite witness` (or `npm run bench:witness`): the commit latency the lease
// witness adds. One PostgreSQL 15 primary (no agent, no standby: only the witness's own cost),
// single-row INSERT autocommit transactions from one pgbench client over the Unix socket, in
// alternating rounds: synchronous_standby_names '' (no witness) and 'FIRST 1 (pgha_lease_witness)'
// with the witness (src/agent/witness-client.ts, the agent's own code) holding a valid lease.
// Per-transaction latencies from pgbench's log; p50 and p99 per round, medians over the rounds.
// Also the witness's resident memory. Writes docs/benchmarks-witness.md.
// Run it alone (under the integration lock): other load on the machine lengthens every figure.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WitnessProcess } from '../src/agent/witness-client.ts';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { WITNESS_NAME } from '../src/witness/names.ts';
import { REPO, sleep } from '../lab/util.ts';
import { allocatePorts } from '../lab/ports.ts';

const BIN = '/usr/lib/postgresql/15/bin';
const PORT = allocatePorts(1); // the primary's PostgreSQL
const ROUNDS = Number(process.env.PGHA_BENCH_ROUNDS ?? 8);
const SECONDS = Number(process.env.PGHA_BENCH_SECONDS ?? 8);
const REPL_PW = 'bench-witness-pw';

const user = lookupOsUser('postgres');
const dir = mkdtempSync(join(tmpdir(), 'pgha-bench-witness-'));
chownSync(dir, user.uid, user.gid);
const data = join(dir, 'data');

function asPostgres(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { uid: user.uid, gid: user.gid, cwd: dir, encoding: 'utf8', input, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
}
const psql = (sql: string): string => asPostgres(`${BIN}/psql`, ['-h', dir, '-p', String(PORT), '-U', 'postgres', '-d', 'postgres', '-Atqc', sql]).trim();

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One pgbench round: latencies in ms of every transaction (pgbench -l logs microseconds). */
function round(tag: string): { p50: number; p99: number; tps: number; n: number } {
  const logDir = mkdtempSync(join(dir, `log-${tag}-`));
  chownSync(logDir, user.uid, user.gid);
  asPostgres(`${BIN}/pgbench`, ['-h', dir, '-p', String(PORT), '-U', 'postgres', '-n', '-c', '1', '-T', String(SECONDS), '-f', join(dir, 'insert.sql'), '-l', '--log-prefix', join(logDir, 'tx'), 'postgres']);
  const lat: number[] = [];
  for (const f of readdirSync(logDir)) {
    for (const line of readFileSync(join(logDir, f), 'utf8').split('\n')) {
      const cols = line.split(' ');
      if (cols.length >= 3) lat.push(Number(cols[2]) / 1000);
    }
  }
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), tps: lat.length / SECONDS, n: lat.length };
}

async function main(): Promise<void> {
  asPostgres(`${BIN}/initdb`, ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256']);
  appendFileSync(join(data, 'postgresql.conf'), `port = ${PORT}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nwal_sender_timeout = '5s'\n`);
  appendFileSync(join(data, 'pg_hba.conf'), 'host replication repl all scram-sha-256\n');
  writeFileSync(join(dir, 'insert.sql'), 'insert into bench_witness(v) values (1);\n');
  chownSync(join(dir, 'insert.sql'), user.uid, user.gid);
  asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-l', join(dir, 'log'), '-w', 'start']);
  const logger = pino({ level: 'warn' });
  let witness: WitnessProcess | null = null;
  try {
    psql(`create role repl replication login password '${REPL_PW}'; create table bench_witness(id bigserial primary key, v int)`);
    witness = new WitnessProcess({
      start: { host: '127.0.0.1', port: PORT, user: 'repl', password: REPL_PW, applicationName: WITNESS_NAME, ssl: false, tls: {} },
      logger, now: () => performance.now(),
    });
    // "open": the lease never runs out during the bench (the rule is the same clock check either way).
    witness.hold();
    const rows: Array<{ mode: string; p50: number; p99: number; tps: number; n: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of ['off', 'on'] as const) {
        psql(`alter system set synchronous_standby_names = '${mode === 'on' ? `FIRST 1 (${WITNESS_NAME})` : ''}'`);
        psql('select pg_reload_conf()');
        // The reload reaches every backend within milliseconds; 300 ms leaves room on a busy machine.
        await sleep(300);
        if (mode === 'on' && psql(`select sync_state from pg_stat_replication where application_name = '${WITNESS_NAME}'`) !== 'sync') throw new Error('the witness is not a synchronous standby');
        const r = round(`${mode}-${i}`);
        rows.push({ mode, ...r });
        console.log(`round ${i + 1} witness ${mode}: p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms, ${r.tps.toFixed(0)} tps`);
      }
    }
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${witness.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
    const of = (m: string, k: 'p50' | 'p99' | 'tps'): number => median(rows.filter((r) => r.mode === m).map((r) => r[k]));
    const [p50Off, p50On, p99Off, p99On] = [of('off', 'p50'), of('on', 'p50'), of('off', 'p99'), of('on', 'p99')];
    // Paired: each round's "on" against the "off" just before it, which cancels slow drifts of the machine's load.
    const pairs = Array.from({ length: ROUNDS }, (_, i) => ({ off: rows[2 * i]!, on: rows[2 * i + 1]! }));
    const dP50 = median(pairs.map((p) => p.on.p50 - p.off.p50));
    const dP99 = median(pairs.map((p) => p.on.p99 - p.off.p99));
    const uname = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
    const md = `# Benchmark: the lease witness's commit latency

Command: \`npm run bench -- --suite witness\` (scripts/bench-witness.ts). Machine: ${cpus().length} cores
(\`nproc\`), Linux ${uname}, ${new Date().toISOString().slice(0, 10)}. PostgreSQL 15, default settings (fsync on),
on the local disk; one pgbench client over the Unix socket running single-row \`INSERT\` autocommit
transactions for ${SECONDS} s per round, ${ROUNDS} rounds per mode, alternating; per-transaction
latency from pgbench's log. Only the witness's own cost: no standby, no agent.

- **off**: \`synchronous_standby_names = ''\` (asynchronous, no witness).
- **on**: \`synchronous_standby_names = 'FIRST 1 (${WITNESS_NAME})'\` with the witness
  (\`src/witness/main.ts\`, started by the agent's own \`WitnessProcess\`) streaming over loopback TCP
  with SCRAM, holding a valid lease: each COMMIT waits for its standby status update.

| witness | p50 (ms) | p99 (ms) | transactions/s |
|---|---|---|---|
| off | ${p50Off.toFixed(3)} | ${p99Off.toFixed(3)} | ${of('off', 'tps').toFixed(0)} |
| on | ${p50On.toFixed(3)} | ${p99On.toFixed(3)} | ${of('on', 'tps').toFixed(0)} |
| added (difference of the medians) | ${(p50On - p50Off).toFixed(3)} | ${(p99On - p99Off).toFixed(3)} | |
| added (median of the paired differences) | ${dP50.toFixed(3)} | ${dP99.toFixed(3)} | |

Medians over the rounds. Every round:

| round | witness | p50 (ms) | p99 (ms) | transactions |
|---|---|---|---|---|
${rows.map((r, i) => `| ${Math.floor(i / 2) + 1} | ${r.mode} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.n} |`).join('\n')}

The witness process (Node ${process.version}) held ${rss.toFixed(0)} MB resident at the end.
`;
    writeFileSync(join(REPO, 'docs/benchmarks-witness.md'), md);
    console.log(md);
  } finally {
    witness?.close();
    try { asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-m', 'immediate', 'stop']); } catch { /* not running */ }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
