// PgBouncer in front of a real cluster (etcd, three agents, HAProxy, PgBouncer routed through
// HAProxy's read-write port): 20 planned switchovers under 8 clients of short transactions cost
// the clients no error, only a wait (reported); a pooler that never answers delays a switchover
// by pause_timeout at most and is reported by the agent's log, GET /poolers and pghactl.
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import { TestCluster } from '../../lab/loopback.ts';
import { PASSWORDS, REPO, waitFor } from '../../lab/util.ts';
import { startPgbouncer, type PgbouncerHandle } from '../../lab/pgbouncer.ts';
import { createLoadTable, startLoad } from '../../lab/pooler-load.ts';
import { allocatePorts } from '../../lab/ports.ts';

// HAProxy's two listeners, PgBouncer and the never-answering pooler: allocated (lab/ports.ts).
const HAPROXY_RW = allocatePorts(2);
const HAPROXY_RO = HAPROXY_RW + 1;
const POOLER = allocatePorts(2);
const HUNG = POOLER + 1;
const ADMIN = { user: 'pgha_admin', password: 'pooler-admin-secret' };
const PAUSE_TIMEOUT_S = 1;
const SWITCHOVERS = 20;

// The admin password in a file of its own (as /etc/pgha/pooler.pass), readable by the agents.
const SECRETS = mkdtempSync(join(tmpdir(), 'pgha-pooler-'));
const PASS_FILE = join(SECRETS, 'pooler.pass');
const pooler = (name: string, port: number) => ({ name, host: '127.0.0.1', port, user: ADMIN.user, password_file: PASS_FILE });
const cluster = new TestCluster({
  configure: (_i, cfg) => {
    cfg['pgbouncer'] = {
      poolers: [pooler('pool1', POOLER)],
      pause_timeout: PAUSE_TIMEOUT_S, call_timeout: 1, resume_timeout: 10, route_check: `127.0.0.1:${HAPROXY_RW}`,
    };
  },
});
let bouncer: PgbouncerHandle | null = null;
let hung: Server | null = null;
const hungSockets: Socket[] = [];

interface Run { code: number; stdout: string; stderr: string }
function ctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

/** A leader answering /primary and two streaming standbys: the next switchover has a candidate. */
async function settled(): Promise<string> {
  return (await cluster.waitHealthy(60_000, { intervalMs: 100 })).name;
}

async function switchover(): Promise<{ from: string; to: string; seconds: number; stdout: string }> {
  const from = await settled();
  const r = await ctl('switchover', '--force');
  if (r.code !== 0) throw new Error(`pghactl switchover failed (${r.code}): ${r.stderr}`);
  const to = (await cluster.primary())?.name ?? '?';
  // human.ts seconds(): "610 ms" under a second, "1.57 s" above.
  const took = /took ([\d.]+) (ms|s)\b/.exec(r.stdout);
  const seconds = took === null ? NaN : Number(took[1]) / (took[2] === 'ms' ? 1000 : 1);
  return { from, to, seconds, stdout: r.stdout };
}

beforeAll(async () => {
  writeFileSync(PASS_FILE, `${ADMIN.password}\n`, { mode: 0o600 });
  const pgUser = lookupOsUser('postgres');
  chownSync(SECRETS, pgUser.uid, pgUser.gid);
  chownSync(PASS_FILE, pgUser.uid, pgUser.gid);
  await cluster.startEtcd();
  cluster.startAll();
  cluster.startHaproxy({ readWritePort: HAPROXY_RW, readOnlyPort: HAPROXY_RO });
  bouncer = await startPgbouncer({
    dir: join(cluster.dir, 'pgbouncer'), port: POOLER, server: { host: '127.0.0.1', port: HAPROXY_RW },
    admin: ADMIN, users: { postgres: PASSWORDS.superuser },
  });
  await settled();
  await waitFor('a write through PgBouncer', async () => { await createLoadTable(POOLER, 'pool_load'); return true; }, 30_000, 250);
}, 120_000);

afterAll(async () => {
  for (const s of hungSockets) s.destroy();
  hung?.close();
  await bouncer?.stop();
  await cluster.destroy();
  rmSync(SECRETS, { recursive: true, force: true });
});

describe('PgBouncer around switchovers', () => {
  it(`${SWITCHOVERS} switchovers under 8 clients of short transactions: no client error, only a wait`, async () => {
    const load = startLoad({ port: POOLER, clients: 8, table: 'pool_load', pauseMs: 5 });
    const runs: Array<{ from: string; to: string; seconds: number }> = [];
    let printed = '';
    try {
      for (let i = 0; i < SWITCHOVERS; i++) {
        const s = await switchover();
        runs.push(s);
        printed = s.stdout;
      }
      await settled();
    } finally {
      const r = await load.stop();
      const sorted = [...r.latenciesMs].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
      console.log(`pgbouncer: ${runs.length} switchovers, ${r.committed} transactions, ${r.errors.length} client errors, longest transaction ${Math.round(r.maxMs)} ms, median ${median.toFixed(1)} ms; handovers ${runs.map((x) => x.seconds.toFixed(2)).join(' ')} s`);
      expect(r.errors).toEqual([]);
      expect(r.committed).toBeGreaterThan(SWITCHOVERS * 8);
    }
    expect(runs.every((x) => x.from !== x.to)).toBe(true);
    expect(runs.every((x) => Number.isFinite(x.seconds))).toBe(true);
    // pghactl names the pooler it paused.
    expect(printed).toMatch(/poolers paused: pool1 \(\d+ ms\)/);
  }, 200_000);

  it('a pooler that never answers delays a switchover by pause_timeout at most, and is reported', async () => {
    // Accepts TCP and never says a word: the startup packet is never answered.
    hung = createServer((s) => { hungSockets.push(s); s.on('error', () => undefined); });
    await new Promise<void>((r) => hung!.listen(HUNG, '127.0.0.1', () => r()));
    for (const n of cluster.nodes) {
      const cfg = parse(readFileSync(n.configPath, 'utf8')) as Record<string, any>;
      cfg['pgbouncer'].poolers.push(pooler('hung', HUNG));
      writeFileSync(n.configPath, stringify(cfg));
      n.agent?.kill('SIGHUP');
    }
    await waitFor('every agent reloaded pgbouncer', async () => cluster.nodes.every((n) => /configuration reloaded: applied pgbouncer/.test(cluster.logs(n))), 10_000);
    const load = startLoad({ port: POOLER, clients: 8, table: 'pool_load', pauseMs: 5 });
    const s = await switchover();
    const r = await load.stop();
    console.log(`pgbouncer with a hung pooler: handover ${s.seconds.toFixed(2)} s, longest transaction ${Math.round(r.maxMs)} ms, ${r.errors.length} client errors`);
    // The hung pooler costs pause_timeout (1 s) on top of a switchover (about 0.5 s here).
    expect(s.seconds).toBeLessThan(PAUSE_TIMEOUT_S + 3);
    expect(s.stdout).toMatch(/poolers paused: pool1 \(\d+ ms\); NOT paused: hung \(.*no answer within 1000 ms\)/);
    expect(r.errors).toEqual([]);
    const old = cluster.nodes.find((n) => n.name === s.from)!;
    const body = await (await fetch(`${cluster.apiBase(old)}/poolers`)).json() as { reports: Array<{ step: string; outcomes: Array<{ pooler: string; command: string; ok: boolean; ms: number }> }> };
    const pause = body.reports.filter((x) => x.step === 'pause').at(-1)!;
    const h = pause.outcomes.find((o) => o.pooler === 'hung')!;
    expect(h).toMatchObject({ command: 'PAUSE', ok: false });
    expect(h.ms).toBeLessThan(PAUSE_TIMEOUT_S * 1000 + 500);
    expect(pause.outcomes.find((o) => o.pooler === 'pool1')).toMatchObject({ ok: true });
    expect(cluster.logs(old)).toMatch(/"event":"pooler failed".*PAUSE hung/);
    // The admin password never reaches a log.
    for (const n of cluster.nodes) expect(cluster.logs(n)).not.toContain(ADMIN.password);
  }, 90_000);

  it('after a failover the new leader RECONNECTs the poolers, and clients go on through them', async () => {
    const from = await settled();
    const load = startLoad({ port: POOLER, clients: 4, table: 'pool_load', pauseMs: 5 });
    // The clients commit through the pooler before the crash; 10 s covers a loaded machine.
    await waitFor('the load committing', async () => load.now().committed >= 8, 10_000, 20);
    const killedAt = Date.now();
    cluster.killNode(cluster.nodes.find((n) => n.name === from)!);
    const to = await waitFor('a new primary', async () => { const p = await cluster.primary(); return p !== null && p.name !== from ? p : null; }, 30_000);
    const committed = load.now().committed;
    await waitFor('transactions through PgBouncer again', async () => load.now().committed > committed + 20, 15_000);
    const r = await load.stop();
    console.log(`pgbouncer failover: ${r.errors.length} client errors (transactions in flight on the killed primary), last error ${r.errors.length === 0 ? '-' : `${r.errors.at(-1)!.at - killedAt} ms after the kill`}`);
    // The report is written once every pooler answered or missed its bound: the hung one costs
    // two call_timeouts (RECONNECT, RESUME) after pool1 resumed.
    type Report = { step: string; at: string; waitedMs: number | null; outcomes: Array<{ pooler: string; command: string; ok: boolean }> };
    const resume = await waitFor('the new leader\'s resume report', async () => {
      const body = await (await fetch(`${cluster.apiBase(to)}/poolers`)).json() as { reports: Report[] };
      return body.reports.filter((x) => x.step === 'resume' && Date.parse(x.at) >= killedAt).at(-1) ?? null;
    }, 10_000);
    expect(resume.waitedMs).not.toBeNull();
    expect(resume.outcomes.filter((o) => o.pooler === 'pool1')).toMatchObject([{ command: 'RECONNECT', ok: true }, { command: 'RESUME', ok: true }]);
  }, 60_000);
});
