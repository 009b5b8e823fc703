// `npm run bench:etcd-leader [-- --kills 20 --failsafe on|off]`: what losing the etcd *leader*
// costs a pgha cluster at pgha's default timing (ttl 2, loop_wait 0.5, retry_timeout 0.75,
// fence_margin 0.5) and etcd's default timing (heartbeat 100 ms, election timeout 1000 ms).
// A 3-member etcd (lab/etcd.ts), three agents and HAProxy on loopback, a write probe through
// HAProxy (lab/probe.ts). Each round: find the etcd leader (Maintenance Status of every member),
// SIGKILL it, wait 3 s (etcd elects a new leader 1 to 2 s after the kill), restart it, wait for
// etcd and the cluster to be healthy. Per kill: how long etcd had no leader (as the surviving
// members report it), fences (the agents' "fencing:" log lines), failovers (the primary or its
// timeline changed), the longest write gap. `--failsafe` sets bootstrap.dcs.failsafe_mode (absent:
// the default). Writes its section of docs/benchmarks-etcd-leader.md (one per --failsafe value).
// Run it under the integration lock: other load on the machine changes the figures.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { LoopbackCluster, type NodeHandle } from '../lab/loopback.ts';
import { etcdLeaderIndex, etcdStatus } from '../lab/etcd.ts';
import { allocatePorts } from '../lab/ports.ts';
import { REPO, sleep } from '../lab/util.ts';
import { benchProbe, gitHead, stats } from './bench-lib.ts';

const { values: args } = parseArgs({ options: { kills: { type: 'string', default: '20' }, failsafe: { type: 'string' } } });
const KILLS = Number(args.kills);
const FAILSAFE = args.failsafe === undefined ? undefined : args.failsafe === 'on';
const LABEL = FAILSAFE === undefined ? 'defaults' : `failsafe_mode ${FAILSAFE ? 'on' : 'off'}`;
const DOC = `${REPO}docs/benchmarks-etcd-leader.md`;

interface Kill { i: number; member: string; noLeaderMs: number; majorityNoLeaderMs: number; fences: number; failover: boolean; gapMs: number }

const fenceLines = (c: LoopbackCluster, n: NodeHandle): number => c.logs(n).split('\n').filter((l) => l.includes('fencing: stopping PostgreSQL')).length;
const fences = (c: LoopbackCluster): number => c.nodes.reduce((s, n) => s + fenceLines(c, n), 0);

async function primaryState(c: LoopbackCluster): Promise<string> {
  const p = await c.primary();
  if (p === null) return 'none';
  const st = await c.status(p);
  return `${p.name}/tl${String(st?.timeline ?? '?')}`;
}

/**
 * From the kill until a surviving member reports itself the leader (ms), polled every 20 ms; and
 * until both surviving members (a majority of three) first reported no leader at all (NaN: never
 * before a new leader), the earliest a reading of etcd's own state could prove an election.
 */
async function electionTime(endpoints: string[], killedAt: number, limitMs: number): Promise<{ elected: number; majorityNoLeader: number }> {
  let majorityNoLeader = Number.NaN;
  for (;;) {
    const st = await Promise.all(endpoints.map((e) => etcdStatus(e, 300)));
    const now = performance.now() - killedAt;
    if (Number.isNaN(majorityNoLeader) && st.every((s) => s !== null && s.leader === '0')) majorityNoLeader = now;
    if (st.some((s) => s !== null && s.leader !== '0' && s.memberId === s.leader)) return { elected: now, majorityNoLeader };
    if (now > limitMs) return { elected: Number.NaN, majorityNoLeader };
    await sleep(20);
  }
}

async function main(): Promise<void> {
  const rw = allocatePorts(2);
  const cluster = new LoopbackCluster({
    etcdMembers: 3, ttl: 2, loopWait: 0.5, retryTimeout: 0.75, fenceMargin: 0.5,
    ...(FAILSAFE === undefined ? {} : { dcs: { failsafe_mode: FAILSAFE } }),
  });
  const kills: Kill[] = [];
  try {
    await cluster.startEtcd();
    const etcd = cluster.etcdCluster!;
    cluster.startAll();
    const p0 = await cluster.waitHealthy(120_000);
    cluster.startHaproxy({ readWritePort: rw, readOnlyPort: rw + 1 });
    await cluster.query(p0, 'create table bench_probe (id int primary key, at timestamptz default now())');
    // A few seconds of quiet: the standbys' first loops and HAProxy's first checks settle.
    await sleep(3000);
    const probe = benchProbe(rw).start();
    await sleep(1000);
    for (let k = 1; k <= KILLS; k++) {
      const leader = await etcdLeaderIndex(etcd.endpoints);
      if (leader === null) throw new Error('no etcd leader found before a kill');
      const before = await primaryState(cluster);
      const f0 = fences(cluster);
      const t = performance.now();
      await etcd.kill(leader);
      const others = etcd.endpoints.filter((_, j) => j !== leader);
      const { elected: noLeaderMs, majorityNoLeader: majorityNoLeaderMs } = await electionTime(others, t, 10_000);
      // Hold the loss 3 s from the kill: past the longest election seen here (about 2 s).
      await sleep(Math.max(0, 3000 - (performance.now() - t)));
      etcd.restart(leader);
      // A restarted member rejoins in well under a second; 30 s covers a loaded machine.
      const end = performance.now() + 30_000;
      while ((await Promise.all(etcd.endpoints.map((e) => etcdStatus(e, 500)))).some((s) => s === null || s.leader === '0')) {
        if (performance.now() > end) throw new Error('etcd did not recover after a restart');
        await sleep(100);
      }
      await cluster.waitHealthy(60_000);
      // One more second of writes so that the gap after the heal is closed by an acknowledgement.
      await sleep(1000);
      const after = await primaryState(cluster);
      const gapMs = probe.longestGapWithin(t, performance.now());
      const kill: Kill = { i: k, member: `m${leader + 1}`, noLeaderMs, majorityNoLeaderMs, fences: fences(cluster) - f0, failover: before !== after, gapMs };
      kills.push(kill);
      console.log(JSON.stringify({ ...kill, before, after }));
    }
    await probe.stop();
  } finally {
    await cluster.destroy();
  }
  writeSection(kills);
}

function writeSection(kills: Kill[]): void {
  const gaps = stats(kills.map((k) => k.gapMs));
  const elect = stats(kills.map((k) => k.noLeaderMs));
  const fenced = kills.filter((k) => k.fences > 0).length;
  const failovers = kills.filter((k) => k.failover).length;
  const ms = (x: number) => (Number.isNaN(x) ? 'never' : String(Math.round(x)));
  const rows = kills.map((k) => `| ${k.i} | ${k.member} | ${ms(k.noLeaderMs)} | ${ms(k.majorityNoLeaderMs)} | ${k.fences} | ${k.failover ? 'yes' : 'no'} | ${Math.round(k.gapMs)} |`);
  const section = [
    `<!-- run: ${LABEL} -->`,
    `## ${LABEL === 'defaults' ? 'At the defaults' : `With ${LABEL}`}`,
    '',
    `\`npm run bench:etcd-leader -- --kills ${KILLS}${FAILSAFE === undefined ? '' : ` --failsafe ${FAILSAFE ? 'on' : 'off'}`}\`, ${new Date().toISOString().slice(0, 16)} UTC, commit ${gitHead()}; ` +
      `${cpus().length} cores (\`nproc\` ${execFileSync('nproc').toString().trim()}), kernel ${execFileSync('uname', ['-r']).toString().trim()}.`,
    '',
    `**${fenced} of ${kills.length} kills fenced the primary, ${failovers} failed over.** Longest write gap per kill: median ${Math.round(gaps.median)} ms, ` +
      `p90 ${Math.round(gaps.p90)} ms, max ${Math.round(gaps.max)} ms. etcd without a leader after the kill: median ${Math.round(elect.median)} ms, max ${Math.round(elect.max)} ms.`,
    '',
    '| kill | etcd leader killed | new etcd leader after (ms) | both survivors report no leader after (ms) | fence log lines | failover | longest write gap (ms) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    `<!-- /run: ${LABEL} -->`,
  ].join('\n');
  const head = [
    '# Benchmark: losing the etcd leader',
    '',
    'Written by `scripts/bench-etcd-leader.ts`. A 3-member etcd at its default timing (heartbeat 100 ms,',
    'election timeout 1000 ms) and a 3-node pgha cluster at its default timing (ttl 2, loop_wait 0.5,',
    'retry_timeout 0.75, fence_margin 0.5) on loopback, a write probe through HAProxy (one row every',
    '15 ms). Each kill: the etcd leader (found by Maintenance Status) is SIGKILLed, restarted 3 s later,',
    'and etcd and the cluster are waited for until healthy. "New etcd leader": from the kill until a',
    'surviving member reports itself the leader (Maintenance Status, polled every 20 ms); "both survivors',
    'report no leader": the first poll where both did ("never": one still named the dead leader until the',
    'election). Fence log lines: the agents\' `fencing: stopping PostgreSQL` lines (one fence may log two).',
    'Failover: the primary or its timeline changed. Write gap: the longest time between two',
    'acknowledged writes from the kill until one second after the cluster was healthy again.',
    '',
  ].join('\n');
  let text = existsSync(DOC) ? readFileSync(DOC, 'utf8') : head;
  const re = new RegExp(`<!-- run: ${LABEL} -->[\\s\\S]*?<!-- /run: ${LABEL} -->`);
  text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(DOC, text);
  console.log(`${fenced}/${kills.length} fenced, ${failovers} failovers, gap median ${Math.round(gaps.median)} ms max ${Math.round(gaps.max)} ms; wrote ${DOC}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
