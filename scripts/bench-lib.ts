// Shared by the benchmarks: the write probe and the statistics.
import pg from 'pg';
import { PASSWORDS, sleep } from '../test/support/cluster.ts';

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
  acked(): number[] { return this.attempts.filter((a) => a.ok).map((a) => a.id); }
}

export function stats(xs: number[]): { min: number; median: number; p90: number; max: number; n: number } {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] ?? Number.NaN;
  return { min: s[0] ?? Number.NaN, median: q(0.5), p90: q(0.9), max: s.at(-1) ?? Number.NaN, n: s.length };
}


