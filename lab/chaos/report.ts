// The chaos report (docs/chaos-report.md, docs/chaos-report-systemd.md): which backend, faults by kind, outages, lost writes, split-brain
// windows, per run, with the command that reproduces each run.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { ALL_FAULT_KINDS } from './faults.ts';
import { formatSchedule, violations, type RunResult } from './runner.ts';

const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sec = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-');

/** The backend line of the report: which backend produced it, in its own words. */
export function backendLine(runs: Pick<RunResult, 'backend' | 'backendDescription'>[]): string {
  const seen = new Map(runs.map((r) => [r.backend, r.backendDescription]));
  return [...seen].map(([b, d]) => `Backend: **${b}** (${d}).`).join(' ');
}

/**
 * Lost acknowledged writes (asynchronous mode allows some) by the fault that lost them: the first
 * fault that had not yet converged when the write was acknowledged. Each line: the fault, how many,
 * when they were acknowledged relative to the fault's start, and their timelines.
 */
export function lostByFault(r: Pick<RunResult, 'events' | 'verdict'>): string[] {
  const lost = r.verdict?.lost ?? [];
  const groups = new Map<number, typeof lost>();
  for (const w of lost) {
    const e = r.events.find((x) => w.completeMs <= x.atMs + Math.max(x.holdMs, x.convergedMs ?? x.holdMs));
    const k = e?.index ?? Number.MAX_SAFE_INTEGER; // after the last fault: listed last
    groups.set(k, [...(groups.get(k) ?? []), w]);
  }
  return [...groups].sort(([a], [b]) => a - b).map(([i, ws]) => {
    const e = r.events.find((x) => x.index === i);
    const rel = ws.map((w) => w.completeMs - (e?.atMs ?? 0));
    const tlis = [...new Set(ws.map((w) => w.tli))].sort().join(', ');
    if (e === undefined) return `after the last fault: ${ws.length}, timeline ${tlis}`;
    return `fault ${i + 1} (${e.kind} on ${e.target}, primary ${e.primaryBefore} -> ${e.primaryAfter ?? '?'}): ${ws.length}, acknowledged ${sec(Math.min(...rel))} to ${sec(Math.max(...rel))} s after the fault began, timeline ${tlis}`;
  });
}

export function renderReport(runs: RunResult[], command: string, machine = ''): string {
  const all = runs.flatMap((r) => r.events);
  const lines: string[] = [];
  const realWatchdog = runs.every((r) => r.backend === 'systemd');
  lines.push(realWatchdog ? '# Chaos report: systemd backend' : '# Chaos report', '');
  let commit = 'unknown';
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { /* not a git checkout */ }
  lines.push(`Produced by \`${command}\` at commit ${commit} on ${new Date().toISOString().slice(0, 10)}, on this machine (${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}${machine === '' ? '' : `, ${machine}`}),`,
    'PostgreSQL 15, etcd 3.4 (3 members), HAProxy 2.6 from Debian.', backendLine(runs),
    'How it works and what each rule means: [docs/chaos.md](chaos.md).', '');
  lines.push('## Summary', '', '| run | synchronous_mode | faults | writes attempted | acknowledged | unknown | lost acknowledged | split-brain windows | converged | result |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    const v = r.verdict;
    const bad = violations(r);
    lines.push(`| seed ${r.seed} | ${r.syncMode} | ${r.events.length} | ${r.ops} | ${v?.acked ?? '-'} | ${v?.unknown ?? '-'} | ${v?.lost.length ?? '-'} | ${v?.splitBrain.length ?? '-'} | ${r.converged ? 'yes' : 'no'} | ${bad.length === 0 ? 'pass' : 'FAIL'} |`);
  }
  lines.push('', '## Faults by kind', '', '| fault | count | write outage median (s) | max (s) | converged median (s) | double-/primary samples | unprovoked handovers after | watchdog kills (primary / other) |', '|---|---|---|---|---|---|---|---|');
  for (const k of ALL_FAULT_KINDS) {
    const ev = all.filter((e) => e.kind === k);
    if (ev.length === 0) continue;
    const out = ev.map((e) => e.outage?.ms).filter((x): x is number => x !== undefined);
    const conv = ev.map((e) => e.convergedMs).filter((x): x is number => x !== null);
    const unprovoked = runs.flatMap((r) => r.events.filter((e, i) => e.kind === k && r.events[i + 1]?.unprovokedHandover === true)).length;
    const onPrimary = ev.reduce((a, e) => a + e.watchdogKills.filter((n) => n === e.primaryBefore).length, 0);
    const onOther = ev.reduce((a, e) => a + e.watchdogKills.filter((n) => n !== e.primaryBefore).length, 0);
    lines.push(`| ${k} | ${ev.length} | ${sec(median(out))} | ${sec(Math.max(...out))} | ${sec(median(conv))} | ${ev.reduce((a, e) => a + e.doublePrimarySamples, 0)} | ${unprovoked} | ${onPrimary} / ${onOther} |`);
  }
  lines.push('', 'The write outage runs from the last acknowledged write before the fault to the first after it, as the clients saw it,',
    'and includes the hold time of faults that leave the primary in place (a partition shorter than the TTL, a full disk).',
    realWatchdog
      ? 'Watchdog kills: the container\'s own systemd logged `Watchdog timeout` for pgha.service (WatchdogSec=1000ms, WatchdogSignal=SIGKILL,'
      : 'Watchdog kills: the emulated systemd watchdog (WatchdogSec=1000ms) SIGKILLed a node\'s agent and PostgreSQL because the agent',
    realWatchdog
      ? 'KillMode=mixed: the agent, then everything left in the unit), counted from the end of the previous fault to the end of this one.'
      : 'sent no WATCHDOG=1 in time, counted from the end of the previous fault to the end of this one.', '');
  for (const r of runs) {
    lines.push(`## Run: ${r.backend} backend, seed ${r.seed}, synchronous_mode ${r.syncMode}`, '', `Reproduce: \`${r.command}\` (${sec(r.durationMs)} s).`, '');
    const bad = violations(r);
    if (bad.length > 0) lines.push('**Violations:**', '', ...bad.map((b) => `- ${b}`), '');
    if (r.verdict !== null) {
      lines.push(`Lost acknowledged writes: ${r.verdict.lost.length}; divergent: ${r.verdict.divergent.length}; late acknowledgements (harmless unless lost): ${r.verdict.lateAcks}; timelines: ${r.verdict.timelines.join(', ')}.`,
        `Acknowledged writes per client (1-4 through HAProxy, 5 through a libpq multi-host string): ${Object.entries(r.verdict.ackedByClient).map(([c, n]) => `${c}: ${n}`).join(', ')}.`, '');
      const byFault = lostByFault(r);
      if (byFault.length > 0) lines.push('Lost acknowledged writes by fault:', '', ...byFault.map((l) => `- ${l}`), '');
    }
    lines.push('<details><summary>Schedule</summary>', '', '```', formatSchedule(r), '```', '</details>', '');
  }
  return `${lines.join('\n')}\n`;
}
