// `npm run bench:standby [-- --runs 3 --seconds 20]`: what a standby cluster costs and how fast
// it takes over. Two sites on loopback (lab/two-sites.ts): site A, 3 members with its own etcd,
// and site B, a 2-member standby cluster of A reaching it through a libpq multi-host string.
//  1. Replication delay (first run only): a write probe (lab/probe.ts) commits one row at a time
//     on A's primary, pausing 20 ms after each, for --seconds; three observers poll
//     `max(id)` on B's standby leader, B's other member and one standby of A (one session each,
//     back to back with a 5 ms pause). Delay of a write: from its acknowledgement on A to the
//     midpoint of the first poll that saw it.
//  2. Promotion after losing site A (every run): SIGKILL every member of A (agent and PostgreSQL),
//     then `pghactl -c b.yml promote-cluster --format json` at once; a write probe on each B member
//     (a row every 10 ms, reconnecting after each refusal) records the first acknowledged write.
//     Time: from the command's start to that acknowledgement, and to the command's exit.
// Each run sets both sites up afresh. Writes docs/benchmarks-standby.md as a whole.
// Run it under the integration lock: other load on the machine changes the figures.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { LoopbackCluster, NodeHandle } from '../lab/loopback.ts';
import { WriteProbe } from '../lab/probe.ts';
import { ctl, standbyLeader, twoSites, type TwoSites } from '../lab/two-sites.ts';
import { REPO, sleep, superuserClient, waitFor } from '../lab/util.ts';
import { gitHead, stats } from './bench-lib.ts';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '20' } } });
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const DOC = `${REPO}docs/benchmarks-standby.md`;

interface Observer { label: string; delays: number[]; unseen: number }
interface Delay { writes: number; rate: number; observers: Observer[] }
interface Promotion { run: number; firstWriteMs: number; commandMs: number; exit: number; leader: string; ackOn: string; behind: string }

/** Poll `select max(id)` on `n` until stopped; the time each id was first seen (performance.now() midpoints). */
function watch(n: NodeHandle): { stop: () => Promise<Map<number, number>> } {
  const seen = new Map<number, number>();
  let stop = false;
  const done = (async () => {
    // 2 s per query: a healthy loopback poll takes a millisecond; a longer one is a stall to report, not to wait out.
    const c = superuserClient({ host: '127.0.0.1', port: n.pgPort, connectMs: 2000, queryMs: 2000 });
    await c.connect();
    let max = 0;
    try {
      while (!stop) {
        const t0 = performance.now();
        const r = await c.query<{ m: number | null }>('select max(id) as m from bench_delay');
        const t1 = performance.now();
        const m = Number(r.rows[0]?.m ?? 0);
        for (let id = max + 1; id <= m; id++) seen.set(id, (t0 + t1) / 2);
        max = Math.max(max, m);
        await sleep(5);
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return { stop: async () => { stop = true; await done; return seen; } };
}

async function tableOn(site: LoopbackCluster, nodes: NodeHandle[], table: string): Promise<void> {
  for (const n of nodes) {
    // Replication of one DDL takes milliseconds; 15 s covers a loaded machine.
    await waitFor(`${table} on ${n.name}`, async () => (await site.rows<{ t: string | null }>(n, `select to_regclass('${table}')::text as t`))[0]?.t != null, 15_000, 100);
  }
}

async function measureDelay(s: TwoSites, bLeader: NodeHandle): Promise<Delay> {
  const a = await s.siteA.waitHealthy(30_000);
  const aStandby = s.siteA.nodes.find((n) => n !== a)!;
  const bOther = s.bNodes.find((n) => n !== bLeader)!;
  await s.siteA.query(a, 'create table bench_delay (id int primary key)');
  await tableOn(s.siteB, s.bNodes, 'bench_delay');
  await tableOn(s.siteA, [aStandby], 'bench_delay');
  const targets: [string, NodeHandle][] = [['site B standby leader', bLeader], ['site B other member (cascading)', bOther], ['site A standby (same site)', aStandby]];
  const watchers = targets.map(([, n]) => watch(n));
  // 1 s to connect and per insert, as the other benchmarks' probe; 20 ms pause: about 40 writes/s.
  const probe = new WriteProbe({ port: a.pgPort, table: 'bench_delay', connectMs: 1000, queryMs: 1000, pauseMs: 20 }).start();
  await sleep(SECONDS * 1000);
  await probe.stop();
  // Let the last writes arrive everywhere (milliseconds when replication is healthy).
  await sleep(2000);
  const seen = await Promise.all(watchers.map((w) => w.stop()));
  const acks = probe.acks();
  const observers = targets.map(([label], i) => {
    const m = seen[i]!;
    const delays = acks.filter((x) => m.has(x.id)).map((x) => m.get(x.id)! - x.end);
    return { label, delays, unseen: acks.length - delays.length };
  });
  return { writes: acks.length, rate: acks.length / SECONDS, observers };
}

async function measurePromotion(run: number, s: TwoSites): Promise<Promotion> {
  const a = await s.siteA.waitHealthy(30_000);
  await s.siteA.query(a, 'create table bench_promote (id int primary key)');
  await tableOn(s.siteB, s.bNodes, 'bench_promote');
  // The primary site is lost: every member of A dies at once (agents and PostgreSQL).
  for (const n of s.siteA.nodes) s.siteA.killNode(n);
  const t0 = performance.now();
  // One probe per B member, distinct ids; 10 ms between attempts, reconnecting after each refusal.
  const probes = s.bNodes.map((n, i) => new WriteProbe({ port: n.pgPort, table: 'bench_promote', firstId: (i + 1) * 1_000_000, connectMs: 1000, queryMs: 1000, pauseMs: 10 }).start());
  const r = await ctl(s.siteB, 'promote-cluster', '--format', 'json');
  const commandMs = performance.now() - t0;
  // The command waits until B's leader answers /primary; its first write follows within milliseconds. 30 s: a stuck promotion.
  const end = performance.now() + 30_000;
  const firstAck = () => probes.map((p, i) => ({ i, a: p.acks()[0] })).filter((x) => x.a !== undefined).sort((x, y) => x.a!.end - y.a!.end)[0];
  while (firstAck() === undefined && performance.now() < end) await sleep(50);
  await Promise.all(probes.map((p) => p.stop()));
  const f = firstAck();
  let leader = '?';
  let behind = '?';
  try {
    const body = JSON.parse(r.stdout) as { leader?: string; behind_bytes?: number | null };
    leader = String(body.leader ?? '?');
    behind = body.behind_bytes == null ? 'unknown' : String(body.behind_bytes);
  } catch {
    console.error(`promote-cluster (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  return { run, firstWriteMs: f === undefined ? Number.NaN : f.a!.end - t0, commandMs, exit: r.code, leader, ackOn: f === undefined ? 'none' : s.bNodes[f.i]!.name, behind };
}

async function main(): Promise<void> {
  let delay: Delay | null = null;
  const promotions: Promotion[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const s = twoSites({ ttl: 3 });
    try {
      await s.start();
      const bLeader = await standbyLeader(s.siteB, s.bNodes, 90_000);
      if (run === 1) {
        delay = await measureDelay(s, bLeader);
        console.log(JSON.stringify({ writes: delay.writes, observers: delay.observers.map((o) => ({ label: o.label, ...stats(o.delays), p99: pct(o.delays, 0.99), unseen: o.unseen })) }));
      }
      const p = await measurePromotion(run, s);
      promotions.push(p);
      console.log(JSON.stringify(p));
    } finally {
      await s.destroy();
    }
  }
  write(delay!, promotions);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] ?? Number.NaN;
}

function write(delay: Delay, ps: Promotion[]): void {
  const ms = (x: number) => (Number.isNaN(x) ? 'none' : Math.abs(x) < 10 ? x.toFixed(1) : String(Math.round(x)));
  const first = stats(ps.map((p) => p.firstWriteMs));
  const cmd = stats(ps.map((p) => p.commandMs));
  const sh = (c: string) => execFileSync(c[0] === 'n' ? 'nproc' : 'uname', c[0] === 'n' ? [] : ['-r']).toString().trim();
  const text = [
    '# Benchmark: standby clusters',
    '',
    'Written by `scripts/bench-standby.ts`. Two sites on loopback (`lab/two-sites.ts`): site A, a 3-member',
    'cluster with its own etcd, and site B, a 2-member standby cluster of A (its own etcd) that reaches A',
    'through a libpq multi-host string of A\'s three ports; ttl 3, loop_wait 0.5. Everything shares one',
    'machine, so "between sites" here has loopback latency: a real WAN link adds its round trip to every',
    'figure of the delay.',
    '',
    `\`npm run bench:standby -- --runs ${RUNS} --seconds ${SECONDS}\`, ${new Date().toISOString().slice(0, 16)} UTC, commit ${gitHead()}; ` +
      `\`nproc\` ${sh('nproc')}, kernel ${sh('uname')}.`,
    '',
    '## Replication delay under a steady write load',
    '',
    `A write probe committed one row at a time on A's primary with a 20 ms pause after each, for ${SECONDS} s`,
    `(${delay.writes} acknowledged writes, about ${Math.round(delay.rate)} per second). Three observers polled`,
    '`select max(id)` back to back (5 ms pause) on one session each. Delay of a write: from its',
    'acknowledgement on A to the midpoint of the first poll that saw it. A few are below zero (min shown in',
    'the table): the WAL may reach a standby before the acknowledgement reaches the client, and the probe',
    'and the observers share one Node event loop on a busy machine. This is the window of acknowledged',
    'writes that losing site A loses.',
    '',
    '| observer | writes seen | min (ms) | median (ms) | p90 (ms) | p99 (ms) | max (ms) |',
    '|---|---|---|---|---|---|---|',
    ...delay.observers.map((o) => {
      const st = stats(o.delays);
      return `| ${o.label} | ${o.delays.length} of ${delay.writes} | ${ms(st.min)} | ${ms(st.median)} | ${ms(st.p90)} | ${ms(pct(o.delays, 0.99))} | ${ms(st.max)} |`;
    }),
    '',
    '## promote-cluster after losing site A',
    '',
    'Each run sets both sites up afresh, then SIGKILLs every member of site A (agents and PostgreSQL:',
    'the site is lost, its ports refuse connections) and at once runs `pghactl -c b.yml promote-cluster',
    '--format json` (no `--force`: A is not writable). A write probe on each B member (one row every 10 ms,',
    'reconnecting after each refusal) records the first acknowledged write. Times from the command\'s',
    'start; the command exits once B\'s leader answers `/primary` (it polls every 200 ms). A lost site that',
    'drops packets instead of refusing connections was not measured.',
    '',
    `**First acknowledged write on site B: median ${ms(first.median)} ms** (min ${ms(first.min)}, max ${ms(first.max)}); ` +
      `the command exits after a median ${ms(cmd.median)} ms.`,
    '',
    '| run | exit | leader | first write on | first write (ms) | command (ms) | behind_bytes |',
    '|---|---|---|---|---|---|---|',
    ...ps.map((p) => `| ${p.run} | ${p.exit} | ${p.leader} | ${p.ackOn} | ${ms(p.firstWriteMs)} | ${ms(p.commandMs)} | ${p.behind} |`),
    '',
  ].join('\n');
  writeFileSync(DOC, text);
  console.log(`first write median ${ms(first.median)} ms; wrote ${DOC}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
