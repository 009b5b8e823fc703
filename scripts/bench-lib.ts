// Shared by the benchmarks: the write probe's settings and the statistics.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { WriteProbe } from '../lab/probe.ts';
import { REPO } from '../lab/util.ts';

/** The benchmarks' write probe (lab/probe.ts): one row every 15 ms through HAProxy, reconnecting after any error. */
export type Probe = WriteProbe;

export function benchProbe(port: number): Probe {
  // 1 s to connect and per insert: a healthy loopback commit takes milliseconds, so a second is a
  // write the cluster could not take (counted in the outage).
  return new WriteProbe({ port, table: 'bench_probe', connectMs: 1000, queryMs: 1000, pauseMs: 15 });
}

export function stats(xs: number[]): { min: number; median: number; p90: number; max: number; n: number } {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] ?? Number.NaN;
  return { min: s[0] ?? Number.NaN, median: q(0.5), p90: q(0.9), max: s.at(-1) ?? Number.NaN, n: s.length };
}



// Idle cost of an agent, read from /proc the same way for pgha and Patroni.

/** Resident memory of one process, in MB (VmRSS). */
export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** CPU time of one process so far, in clock ticks: utime + stime, plus cutime + cstime with `children` (its reaped children). */
export function cpuTicks(pid: number, children = false): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** Every process now: pid -> parent pid and command line. */
export function processTable(): Map<number, { ppid: number; cmd: string }> {
  const table = new Map<number, { ppid: number; cmd: string }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      table.set(Number(e), { ppid, cmd });
    } catch { /* exited meanwhile */ }
  }
  return table;
}

/** `roots` and all their descendants, except the subtrees of processes `skip` says no to. */
export function processTree(roots: number[], skip: (cmd: string) => boolean = () => false, table = processTable()): number[] {
  const out = new Set<number>();
  const todo = roots.filter((p) => table.has(p));
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (out.has(p) || skip(table.get(p)?.cmd ?? '')) continue;
    out.add(p);
    for (const [c, v] of table) if (v.ppid === p) todo.push(c);
  }
  return [...out];
}

// docs/benchmarks.md holds the Patroni comparison between these two lines: `npm run bench:patroni`
// replaces what is between them, `npm run bench` regenerates the rest and keeps them.
export const PATRONI_BEGIN = '<!-- patroni: written by npm run bench:patroni -->';
export const PATRONI_END = '<!-- /patroni -->';

/** The block of a markdown text between two marker lines (markers included), or '' if there is none. */
function markedBlock(text: string, begin: string, end: string): string {
  const a = text.indexOf(begin);
  const b = text.indexOf(end, a);
  return a < 0 || b < 0 ? '' : text.slice(a, b + end.length);
}

/** The marked Patroni block of a markdown text (markers included), or '' if there is none. */
export function patroniBlock(text: string): string {
  return markedBlock(text, PATRONI_BEGIN, PATRONI_END);
}

// The systemd lab's measurements (`npm run bench:systemd`) live between these two lines, kept by
// `npm run bench` the same way.
export const SYSTEMD_BEGIN = '<!-- systemd: written by npm run bench:systemd -->';
export const SYSTEMD_END = '<!-- /systemd -->';

/** The marked systemd block of a markdown text (markers included), or '' if there is none. */
export function systemdBlock(text: string): string {
  return markedBlock(text, SYSTEMD_BEGIN, SYSTEMD_END);
}

/** `text` with its marked systemd block replaced by `section` (appended if there was none). */
export function withSystemdBlock(text: string, section: string): string {
  const block = `${SYSTEMD_BEGIN}\n${section.trim()}\n${SYSTEMD_END}`;
  const old = systemdBlock(text);
  return old === '' ? `${text.trimEnd()}\n\n${block}\n` : text.replace(old, () => block);
}

/** `text` with its marked Patroni block replaced by `section` (appended if there was none). */
export function withPatroniBlock(text: string, section: string): string {
  const block = `${PATRONI_BEGIN}\n${section.trim()}\n${PATRONI_END}`;
  const old = patroniBlock(text);
  return old === '' ? `${text.trimEnd()}\n\n${block}\n` : text.replace(old, () => block);
}

/** The commit a benchmark ran at, for its report ("unknown" outside a git checkout). */
export function gitHead(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
  } catch {
    return 'unknown';
  }
}
