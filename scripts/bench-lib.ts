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
  /** Outage around time t: last ack before t to first ack after t (ms). */
  outage(t: number): number {
    const before = this.attempts.filter((a) => a.ok && a.end <= t).at(-1);
    const after = this.attempts.find((a) => a.ok && a.start >= t);
    if (before === undefined || after === undefined) return Number.NaN;
    return after.end - before.end;
  }
  acked(): number[] { return this.attempts.filter((a) => a.ok).map((a) => a.id); }
}

export function stats(xs: number[]): { min: number; median: number; p90: number; max: number; n: number } {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] ?? Number.NaN;
  return { min: s[0] ?? Number.NaN, median: q(0.5), p90: q(0.9), max: s.at(-1) ?? Number.NaN, n: s.length };
}


