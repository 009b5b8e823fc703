// `npm run bench:idle [-- --runs N --idle SECONDS --window SECONDS --loop-waits 0.5,1 --out FILE]`:
// the idle footprint of a pgha member (its agent and its fencing process) in a real 3-member
// cluster at the defaults, with HAProxy checking every agent's REST API every 250 ms and the
// systemd watchdog notifications on (NOTIFY_SOCKET + WATCHDOG_USEC=1000000, as
// systemd/pgha.service sets them; a receiver here counts the WATCHDOG=1 datagrams).
//
// Per member, read from /proc after `--idle` seconds: resident memory (VmRSS) and proportional
// set size (Pss: shared pages split between the processes mapping them) of the agent and of its
// fencing process, and CPU time over the last `--window` seconds of the idle period (utime +
// stime of the agent, its reaped children included, and of the fencing process). Medians over
// members and runs, for each loop_wait. The agents are started by bin/pgha.js, whatever code it
// loads. Writes docs/benchmarks-idle.md (and .json beside it).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dynamicConfigSchema } from '../src/config/schema.ts';
import { childPids } from '../src/postgres/datadir.ts';
import { TestCluster, type NodeHandle } from '../lab/loopback.ts';
import { REPO, sleep } from '../lab/util.ts';
import { allocatePorts } from '../lab/ports.ts';
import { CLK_TCK, cpuTicks, rssMb, stats } from './bench-lib.ts';

const args = parseArgs({ options: {
  runs: { type: 'string', default: '1' }, idle: { type: 'string', default: '60' }, window: { type: 'string', default: '30' },
  'loop-waits': { type: 'string', default: '0.5,1' }, out: { type: 'string', default: 'docs/benchmarks-idle.md' },
} }).values;
const RUNS = Number(args.runs);
const IDLE_S = Number(args.idle);
const WINDOW_S = Math.min(Number(args.window), IDLE_S);
const LOOP_WAITS = (args['loop-waits'] ?? '0.5,1').split(',').map(Number);
const DEFAULTS = dynamicConfigSchema.parse({});
/** systemd/pgha.service: WatchdogSec=1000ms. */
const WATCHDOG_USEC = 1_000_000;
// Ports of this bench: allocated (lab/ports.ts); TestCluster allocates each run's etcd, PostgreSQL
// and REST API ports; HAProxy's read-write port here (read-only the next one).
const HAPROXY_RW = allocatePorts(2);

// A stand-in for systemd's notify socket: binds it, lets the agent (user postgres) write to it,
// counts READY=1 and WATCHDOG=1 (SIGUSR1 restarts the WATCHDOG=1 count: the window begins), and
// prints the counts when it gets SIGTERM. Perl, like
// bin/notify-socket.pl (Node has no unix datagram sockets).
const RECEIVER = `
use strict; use Socket;
my ($path) = @ARGV; my %n = (READY => 0, WATCHDOG => 0); my $stop = 0;
$SIG{TERM} = sub { $stop = 1 }; $SIG{USR1} = sub { $n{WATCHDOG} = 0 };
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
unlink $path; bind($s, pack_sockaddr_un($path)) or die "bind: $!"; chmod 0666, $path;
print "listening\\n"; STDOUT->flush;
while (!$stop) { my $m; next unless defined recv($s, $m, 4096, 0); $n{READY}++ if $m =~ /^READY=1$/m; $n{WATCHDOG}++ if $m =~ /^WATCHDOG=1$/m; }
print "READY=$n{READY} WATCHDOG=$n{WATCHDOG}\\n";
`;

interface Receiver { child: ChildProcess; out: Promise<string>; listening: Promise<void> }
function startReceiver(path: string): Receiver {
  const child = spawn('/usr/bin/perl', ['-e', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  let ready: () => void = () => undefined;
  const listening = new Promise<void>((r) => { ready = r; });
  child.stdout?.on('data', (d: Buffer) => { text += d.toString(); if (text.includes('listening')) ready(); });
  const out = new Promise<string>((r) => child.once('exit', () => { ready(); r(text); }));
  return { child, out, listening };
}

/** Pss of one process in MB (smaps_rollup), NaN if unreadable. */
function pssMb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? Number.NaN) / 1024;
  } catch { return Number.NaN; }
}

const cmdline = (pid: number): string => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '); } catch { return ''; } };
/** The agent's fencing process: its child whose command line names the fencer. */
const fencerPid = (agent: number): number | null => childPids(agent).find((c) => /fencer/.test(cmdline(c))) ?? null;
/** CPU ticks of a process, 0 once it is gone (its time is then lost to the figure: reported as NaN by the caller). */
const ticks = (pid: number | null, children = false): number => { if (pid === null) return Number.NaN; try { return cpuTicks(pid, children); } catch { return Number.NaN; } };

interface Sample {
  loopWait: number; run: number; member: string;
  agentRss: number; agentPss: number; fencerRss: number; fencerPss: number;
  agentCpu: number; fencerCpu: number; watchdogPerS: number; ready: number; agentCmd: string; fencerCmd: string;
}

/**
 * The ttl at this loop_wait: the default, or the smallest whole number of seconds (etcd leases)
 * that keeps the configuration rule loop_wait + retry_timeout + fence_margin <= ttl with the
 * other defaults (loop_wait 1 needs ttl 3). The ttl changes no work per loop at idle.
 */
const ttlFor = (loopWait: number): number => Math.max(DEFAULTS.ttl, Math.ceil(loopWait + DEFAULTS.retry_timeout + DEFAULTS.fence_margin));

async function oneRun(loopWait: number, run: number): Promise<Sample[]> {
  const receivers = new Map<string, Receiver>();
  // The notify sockets live in a directory of their own that the agents (user postgres) can enter.
  const sockets = mkdtempSync(join(tmpdir(), 'pgha-idle-notify-'));
  chmodSync(sockets, 0o755);
  const cluster = new TestCluster({
    ttl: ttlFor(loopWait), loopWait, retryTimeout: DEFAULTS.retry_timeout, fenceMargin: DEFAULTS.fence_margin,
    env: (i) => ({ NOTIFY_SOCKET: join(sockets, `node${i}.notify`), WATCHDOG_USEC: String(WATCHDOG_USEC) }),
  });
  try {
    for (const n of cluster.nodes) {
      const r = startReceiver(join(sockets, `${n.name}.notify`));
      receivers.set(n.name, r);
      cluster.onDestroy(() => r.child.kill('SIGKILL'));
      await r.listening;
    }
    await cluster.startEtcd();
    cluster.startAll();
    // Bootstrap (initdb, two clones) takes 10-30 s on this machine; 120 s means it failed. An
    // agent that exited (a refused configuration) ends the wait at once.
    const end = performance.now() + 120_000;
    while ((await cluster.healthy()) === null) {
      const dead = cluster.nodes.find((n) => n.agent === null);
      if (dead !== undefined) throw new Error(`the agent of ${dead.name} exited: ${cluster.logs(dead).trim().split('\n').slice(-2).join('\n')}`);
      if (performance.now() > end) throw new Error('timed out after 120 s waiting for a primary and two streaming replicas');
      await sleep(250);
    }
    cluster.startHaproxy({ readWritePort: HAPROXY_RW, readOnlyPort: HAPROXY_RW + 1 });
    const agents = cluster.nodes.map((n) => ({ n, pid: n.agent?.pid ?? 0 }));
    await sleep((IDLE_S - WINDOW_S) * 1000);
    const fencers = agents.map((a) => fencerPid(a.pid));
    const t0 = agents.map((a, i) => ({ a: ticks(a.pid, true), f: ticks(fencers[i] ?? null) }));
    for (const r of receivers.values()) r.child.kill('SIGUSR1');
    const started = performance.now();
    await sleep(WINDOW_S * 1000);
    const secs = (performance.now() - started) / 1000;
    const samples = agents.map((a, i): Sample => {
      const f = fencerPid(a.pid);
      const sameFencer = f === (fencers[i] ?? null);
      return {
        loopWait, run, member: a.n.name,
        agentRss: rssMb(a.pid), agentPss: pssMb(a.pid),
        fencerRss: f === null ? Number.NaN : rssMb(f), fencerPss: f === null ? Number.NaN : pssMb(f),
        agentCpu: ((ticks(a.pid, true) - (t0[i]?.a ?? 0)) / CLK_TCK / secs) * 100,
        fencerCpu: sameFencer ? ((ticks(f) - (t0[i]?.f ?? 0)) / CLK_TCK / secs) * 100 : Number.NaN,
        watchdogPerS: 0, ready: 0, agentCmd: cmdline(a.pid), fencerCmd: f === null ? '' : cmdline(f),
      };
    });
    // Which member was the leader matters little at idle, but is shown.
    const leader = (await cluster.primary())?.name;
    for (const s of samples) if (s.member === leader) s.member += ' (leader)';
    const t1 = performance.now();
    for (const r of receivers.values()) r.child.kill('SIGTERM');
    for (const [i, n] of cluster.nodes.entries()) {
      const text = await (receivers.get(n.name)?.out ?? Promise.resolve(''));
      const s = samples[i]!;
      s.ready = Number(/READY=(\d+)/.exec(text)?.[1] ?? 0);
      s.watchdogPerS = Number(/WATCHDOG=(\d+)/.exec(text)?.[1] ?? 0) / ((t1 - started) / 1000);
    }
    return samples;
  } finally {
    // A clean stop (SIGTERM) first, so an agent run with --cpu-prof (PGHA_NODE_FLAGS) writes its
    // profile; a clean stop takes about a second, 10 s means it hangs (destroy() SIGKILLs it).
    await Promise.all(cluster.nodes.map((n) => cluster.stopAgent(n, 'SIGTERM', 10_000)));
    await cluster.destroy();
    rmSync(sockets, { recursive: true, force: true });
  }
}

/** The command line as run, without --out (where this file was written is not a setting). */
function shownArgs(): string {
  const a = process.argv.slice(2);
  const i = a.findIndex((x) => x === '--out' || x.startsWith('--out='));
  if (i >= 0) a.splice(i, a[i] === '--out' ? 2 : 1);
  return a.join(' ') || `--runs ${RUNS} --idle ${IDLE_S} --window ${WINDOW_S}`;
}

const f1 = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(1));
const f2 = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(2));
const med = (xs: number[]) => stats(xs).median;

async function main(): Promise<void> {
  const all: Sample[] = [];
  for (const lw of LOOP_WAITS) {
    for (let r = 1; r <= RUNS; r++) {
      const s = await oneRun(lw, r);
      for (const x of s) process.stdout.write(`loop_wait ${lw} run ${r} ${x.member}: agent ${f1(x.agentRss)} MB (pss ${f1(x.agentPss)}), fencer ${f1(x.fencerRss)} MB (pss ${f1(x.fencerPss)}), cpu agent ${f2(x.agentCpu)} % fencer ${f2(x.fencerCpu)} %, READY ${x.ready}\n`);
      all.push(...s);
    }
  }
  const rows = LOOP_WAITS.map((lw) => {
    const s = all.filter((x) => x.loopWait === lw);
    return {
      loopWait: lw, n: s.length,
      agentRss: med(s.map((x) => x.agentRss)), agentPss: med(s.map((x) => x.agentPss)),
      fencerRss: med(s.map((x) => x.fencerRss)), fencerPss: med(s.map((x) => x.fencerPss)),
      memberRss: med(s.map((x) => x.agentRss + x.fencerRss)), memberPss: med(s.map((x) => x.agentPss + x.fencerPss)),
      agentCpu: med(s.map((x) => x.agentCpu)), fencerCpu: med(s.map((x) => x.fencerCpu)),
      memberCpu: med(s.map((x) => x.agentCpu + (Number.isNaN(x.fencerCpu) ? 0 : x.fencerCpu))),
      cpuRange: [Math.min(...s.map((x) => x.agentCpu)), Math.max(...s.map((x) => x.agentCpu))],
      rssRange: [Math.min(...s.map((x) => x.agentRss + x.fencerRss)), Math.max(...s.map((x) => x.agentRss + x.fencerRss))],
    };
  });
  const outMd = resolve(REPO, args.out ?? 'docs/benchmarks-idle.md');
  const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  const sample0 = all[0];
  const md = `# Idle footprint of a member

Produced by \`npm run bench:idle -- ${shownArgs()}\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.
Machine: ${cpus().length} x ${cpu} (\`nproc\` ${cpus().length}), ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.versions.node}.
Run under the integration lock (\`flock /tmp/pgha-integration.lock\`), so no other pgha test ran meanwhile, but
the machine was otherwise shared with other work: CPU figures are upper bounds of a quiet machine's.

Setup: a real 3-member cluster on loopback (etcd 3.4, PostgreSQL 15, three agents started by \`bin/pgha.js\`),
pgha defaults (ttl ${DEFAULTS.ttl} s, retry_timeout ${DEFAULTS.retry_timeout} s, fence_margin ${DEFAULTS.fence_margin} s) at each loop_wait below
(at loop_wait 1 s with ttl ${ttlFor(1)} s: the configuration refuses loop_wait + retry_timeout + fence_margin > ttl),
HAProxy checking \`GET /primary\` and \`GET /replica\` of every agent every 250 ms, and the systemd watchdog
notifications on (NOTIFY_SOCKET and WATCHDOG_USEC=${WATCHDOG_USEC} as \`systemd/pgha.service\` sets them; a receiver
stands in for systemd). Resident memory (VmRSS) and proportional set size (Pss) from \`/proc\` after
${IDLE_S} s idle; CPU = utime + stime (the agent's reaped children included) over the last ${WINDOW_S} s of that period,
in % of one core. Medians over ${RUNS} run(s) x 3 members.

| loop_wait | samples | agent RSS | fencer RSS | member RSS (agent + fencer) | member PSS | agent CPU | fencer CPU | member CPU | member RSS min-max | agent CPU min-max |
|---|---|---|---|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.loopWait} s | ${r.n} | ${f1(r.agentRss)} MB | ${f1(r.fencerRss)} MB | **${f1(r.memberRss)} MB** | ${f1(r.memberPss)} MB | ${f2(r.agentCpu)} % | ${f2(r.fencerCpu)} % | **${f2(r.memberCpu)} %** | ${f1(r.rssRange[0] ?? Number.NaN)}-${f1(r.rssRange[1] ?? Number.NaN)} MB | ${f2(r.cpuRange[0] ?? Number.NaN)}-${f2(r.cpuRange[1] ?? Number.NaN)} % |`).join('\n')}

Goals (issue 16): member RSS <= 60 MB, member CPU <= 0.6 % of one core at loop_wait 0.5 s.

Every sample:

| loop_wait | run | member | agent RSS / PSS | fencer RSS / PSS | agent CPU | fencer CPU | READY=1 | WATCHDOG=1 per s |
|---|---|---|---|---|---|---|---|---|
${all.map((x) => `| ${x.loopWait} s | ${x.run} | ${x.member} | ${f1(x.agentRss)} / ${f1(x.agentPss)} MB | ${f1(x.fencerRss)} / ${f1(x.fencerPss)} MB | ${f2(x.agentCpu)} % | ${f2(x.fencerCpu)} % | ${x.ready} | ${f1(x.watchdogPerS)} |`).join('\n')}

Processes measured (first sample): agent \`${sample0?.agentCmd.trim() ?? ''}\`; fencer \`${sample0?.fencerCmd.trim() ?? ''}\`.
`;
  writeFileSync(outMd, md);
  writeFileSync(outMd.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), args: process.argv.slice(2), rows, samples: all }, null, 2)}\n`);
  process.stdout.write(`${md}\nwritten to ${outMd}\n`);
}

main().then(() => process.exit(0), (err: unknown) => { process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`); process.exit(1); });
