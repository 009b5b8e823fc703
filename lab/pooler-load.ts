// A steady load of short transactions through a pooler, for the PgBouncer test and bench: each
// client keeps one session and runs BEGIN; INSERT; UPDATE; COMMIT in a loop. Every error a client
// sees is recorded (and the client reconnects); the latency of every transaction is measured
// from BEGIN sent to COMMIT acknowledged.
import { sleep, superuserClient } from './util.ts';

export interface LoadError { client: number; at: number; message: string }

export interface LoadResult {
  /** Committed transactions. */
  committed: number;
  errors: LoadError[];
  /** The longest transaction (ms), and its start (Date.now()). */
  maxMs: number;
  maxAt: number;
  latenciesMs: number[];
}

export interface Load {
  /** A copy of the results so far. */
  now(): LoadResult;
  stop(): Promise<LoadResult>;
}

export async function createLoadTable(port: number, table: string): Promise<void> {
  const c = superuserClient({ host: '127.0.0.1', port, connectMs: 5000, queryMs: 10_000 });
  await c.connect();
  try {
    await c.query(`create table if not exists ${table} (client int primary key, n bigint not null default 0, at timestamptz)`);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Start `clients` sessions to 127.0.0.1:`port` as the test superuser. `queryMs` bounds each
 * statement on the client side (a wait longer than that counts as an error): 30 s, far beyond any
 * pause pgha makes, so that a long wait is measured as a wait, not hidden as an error.
 */
export function startLoad(o: { port: number; clients: number; table: string; pauseMs: number; queryMs?: number }): Load {
  const r: LoadResult = { committed: 0, errors: [], maxMs: 0, maxAt: 0, latenciesMs: [] };
  let stopping = false;
  const one = async (id: number) => {
    let c = null as ReturnType<typeof superuserClient> | null;
    while (!stopping) {
      const started = performance.now();
      const at = Date.now();
      try {
        if (c === null) {
          c = superuserClient({ host: '127.0.0.1', port: o.port, connectMs: o.queryMs ?? 30_000, queryMs: o.queryMs ?? 30_000 });
          await c.connect();
          await c.query(`insert into ${o.table}(client) values ($1) on conflict do nothing`, [id]);
          continue;
        }
        await c.query('begin');
        await c.query(`update ${o.table} set n = n + 1, at = now() where client = $1`, [id]);
        await c.query('select pg_is_in_recovery()');
        await c.query('commit');
        const ms = performance.now() - started;
        r.committed += 1;
        r.latenciesMs.push(ms);
        if (ms > r.maxMs) { r.maxMs = ms; r.maxAt = at; }
      } catch (err) {
        r.errors.push({ client: id, at: Date.now(), message: err instanceof Error ? err.message : String(err) });
        await c?.end().catch(() => undefined);
        c = null;
      }
      await sleep(o.pauseMs);
    }
    await c?.end().catch(() => undefined);
  };
  const runs = Array.from({ length: o.clients }, (_, i) => one(i + 1));
  const copy = (): LoadResult => ({ ...r, errors: [...r.errors], latenciesMs: [...r.latenciesMs] });
  return {
    now: copy,
    stop: async () => { stopping = true; await Promise.all(runs); return copy(); },
  };
}

