// Shared by the benchmarks: the write probe and the statistics.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import pg from 'pg';
import { PASSWORDS, sleep } from '../lab/util.ts';

interface Attempt { id: number; start: number; end: number; ok: boolean }

/** Commits one row every 15 ms through HAProxy, reconnecting after any error. */
export class Probe {
  readonly #port: number;
  constructor(port: number) {
    this.#port = port;
  }
  attempts: Attempt[] = [];
  #stop = false;
  #id = 0;
  #done: Promise<void> | null = null;
  start(): void { this.#done = this.#run(); }
  async stop(): Promise<void> { this.#stop = true; await this.#done; }
  async #client(): Promise<pg.Client> {
    const c = new pg.Client({ host: '127.0.0.1', port: this.#port, user: 'postgres', password: PASSWORDS.superuser, database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 1000 });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }
  async #run(): Promise<void> {
    let c: pg.Client | null = null;
    while (!this.#stop) {
      const id = ++this.#id;
      const start = performance.now();
      try {
        c ??= await this.#client();
        await c.query('insert into bench_probe(id) values ($1)', [id]);
        this.attempts.push({ id, start, end: performance.now(), ok: true });
      } catch {
        this.attempts.push({ id, start, end: performance.now(), ok: false });
        void c?.end().catch(() => undefined);
        c = null;
      }
      await sleep(15);
    }
    await c?.end().catch(() => undefined);
  }
  /**
   * Outage of an event that started at t and was over at `until`: the longest time between two
   * consecutive acknowledged writes, from the last acknowledgement before t to `until` (ms).
   */
  outage(t: number, until: number): number {
    const acks = this.attempts.filter((a) => a.ok && a.end <= until).map((a) => a.end);
    const first = acks.findLastIndex((e) => e <= t);
    if (first < 0 || first === acks.length - 1) return Number.NaN;
    let gap = 0;
    for (let k = first + 1; k < acks.length; k++) gap = Math.max(gap, (acks[k] ?? 0) - (acks[k - 1] ?? 0));
    return gap;
  }
  /**
   * The outage from `from` up to the acknowledgement of the first write started at or after `to`
   * (ms). For an event that stops writes at once (a crash) `to` is when it began; for one that
   * stops them a little later (a switchover that first sends a request and waits for the answer
   * while writes still succeed) it is when the event was over.
   */
  longestGap(from: number, to: number): number {
    const end = this.attempts.find((a) => a.ok && a.start >= to)?.end;
    return end === undefined ? Number.NaN : this.outage(from, end);
  }
  acked(): number[] { return this.attempts.filter((a) => a.ok).map((a) => a.id); }

  /**
   * Acknowledged ids missing from `have` (the final primary's rows), each charged to the last
   * event that started before its acknowledgement or up to 5 s after it (a write acknowledged
   * just before a crash is lost by that crash).
   */
  lostByEvent(have: ReadonlySet<number>, events: ReadonlyArray<{ name: string; t: number }>): { lost: number[]; byEvent: Map<string, number> } {
    const lost = this.acked().filter((id) => !have.has(id));
    const byEvent = new Map<string, number>();
    for (const id of lost) {
      const end = this.attempts.find((a) => a.id === id)?.end ?? 0;
      const ev = events.filter((e) => e.t <= end + 5000).at(-1)?.name ?? 'before any event';
      byEvent.set(ev, (byEvent.get(ev) ?? 0) + 1);
    }
    return { lost, byEvent };
  }
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
