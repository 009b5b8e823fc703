// npm run bench:systemd -- [--runs N] [--md docs/benchmarks.md]
// Failover under a real systemd (the lab of lab/nspawn.ts: three Debian 12 containers,
// pgha from the shipped unit file): a container killed outright, a container powered off by its
// systemd, and the watchdog killing a leader whose agent was SIGSTOPped. Each event N times against
// the primary of the moment, a writer on it; the time until another member takes a write.
// Writes its section into --md between the markers of bench-lib.ts (`npm run bench` keeps it).
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stats, withSystemdBlock } from './bench-lib.ts';
import { NspawnLab, REPO, type Machine } from '../lab/nspawn.ts';
import { waitFor } from '../lab/util.ts';
import { api, freezeAgent, measureFault, watchdogContext, watchdogKills, waitCluster, waitStandby, type FaultResult } from '../lab/nspawn-events.ts';

const args = parseArgs({ options: { runs: { type: 'string', default: '5' }, md: { type: 'string', default: 'docs/benchmarks.md' } } }).values;
const RUNS = Number(args.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${args.runs}`);

interface Row { event: string; failover: number[]; extra: number[]; lost: number; acked: number }
const rows: Row[] = [
  { event: 'container killed (SIGKILL to its PID 1, a host crash)', failover: [], extra: [], lost: 0, acked: 0 },
  { event: 'container powered off (systemctl poweroff in it)', failover: [], extra: [], lost: 0, acked: 0 },
  { event: 'watchdog kill (leader agent SIGSTOPped alone)', failover: [], extra: [], lost: 0, acked: 0 },
];

const lab = new NspawnLab({ nodes: 3, log: (m) => console.log(m) });
// Measured here once: the image comes from the cache, or debootstrap builds it.
const t0 = performance.now();
try {
  await lab.start();
  console.log(`lab up in ${Math.round((performance.now() - t0) / 1000)} s`);
  for (const m of lab.machines) {
    const r = lab.systemctl(m, 'enable', '--now', 'pgha');
    if (r.code !== 0) throw new Error(`${m.name}: systemctl enable --now pgha: ${r.stderr}`);
    // One member at a time, as in the test (docs/systemd.md#what-the-lab-found). Bootstrap or a
    // clone of this small database takes seconds; 120 s is a member that never joins.
    if (m === lab.machines[0]) await waitFor('the first primary', async () => (await api(m, '/primary')) === 200, 120_000, 200);
    else await waitStandby(m, 120_000);
  }
  let seq = 0;
  const record = (row: Row, r: FaultResult, extra?: number) => {
    row.failover.push(r.failoverMs);
    if (extra !== undefined) row.extra.push(extra);
    row.lost += r.lost.length;
    console.log(`${row.event}: ${r.newPrimary.name} writable after ${Math.round(r.failoverMs)} ms${extra === undefined ? '' : ` (unit killed after ${Math.round(extra)} ms)`}, ${r.lost.length} lost`);
  };
  const comeBack = async (m: Machine) => {
    lab.boot(m);
    await lab.waitBooted(m);
    // Booting and rejoining take ~10 s here; 120 s is a member that never comes back.
    await waitStandby(m, 120_000);
  };
  for (let k = 0; k < RUNS; k++) {
    let leader = await waitCluster(lab, 120_000);
    record(rows[0]!, await measureFault(lab, leader, `t${++seq}`, () => lab.killMachine(leader)));
    await comeBack(leader);
    leader = await waitCluster(lab, 120_000);
    record(rows[1]!, await measureFault(lab, leader, `t${++seq}`, async () => { lab.exec(leader, ['systemctl', 'poweroff', '--no-block']); }));
    // A clean power-off stops every unit in order: seconds; 60 s is a hung shutdown.
    await lab.waitGone(leader, 60_000);
    await comeBack(leader);
    leader = await waitCluster(lab, 120_000);
    let killed = 0;
    record(rows[2]!, await measureFault(lab, leader, `t${++seq}`, async () => { killed = (await freezeAgent(lab, leader)).killedMs; }), killed);
    await waitStandby(leader, 120_000);
  }
  for (const m of lab.machines) {
    console.log(`${m.name}: ${watchdogKills(lab, m)} watchdog kill(s) in its journal`);
    for (const c of watchdogContext(lab, m)) console.log(`--\n${c}`);
  }
} finally {
  await lab.destroy();
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const table = rows.map((r) => {
  const f = stats(r.failover);
  return `| ${r.event} | ${f.n} | ${s(f.min)} | ${s(f.median)} | ${s(f.max)} | ${r.lost} |`;
});
const wd = stats(rows[2]!.extra);
const md = `## Under a real systemd (containers)

Produced by \`npm run bench:systemd -- --runs ${RUNS}\` on ${new Date().toISOString().slice(0, 10)}.
Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB. Three Debian 12 containers
booted by \`systemd-nspawn -b\` (systemd 252 as PID 1) on a bridge, each running pgha from the shipped
\`systemd/pgha.service\` (unchanged) with PostgreSQL 15; etcd on the host. pgha defaults (ttl 2 s,
loop_wait 0.5 s, retry_timeout 0.75 s, fence_margin 0.5 s), asynchronous replication, no HAProxy.

**Failover** = from the fault until another member takes a write (a fresh connection straight to
each member, tried every 50 ms); a writer committed a row every 10 ms on the old primary until then.

| event | runs | min | median | max | acknowledged writes lost |
|---|---|---|---|---|---|
${table.join('\n')}

Watchdog kill: from the SIGSTOP until every process of the old unit (agent, fencing process,
postmaster, backends) was gone: min ${s(wd.min)}, median ${s(wd.median)}, max ${s(wd.max)} (WatchdogSec=1000ms,
counted from the agent's last WATCHDOG=1, which came up to 250 ms before the SIGSTOP).
A killed container fails over like a crashed host: the leader key expires after the ttl. A powered-off
container stops pgha.service in order, which hands over at once (the key is released). The watchdog
kill is a crash of the unit: the key expires too. How each line of the unit was proven:
[systemd.md](systemd.md).
`;
const file = resolve(REPO, args.md ?? 'docs/benchmarks.md');
writeFileSync(file, withSystemdBlock(readFileSync(file, 'utf8'), md));
console.log(md);
console.log(`written to ${file}`);
