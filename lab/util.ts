// Small helpers every part of the lab uses: the repository root, the test passwords, polling,
// one-shot queries and HTTP probes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

/** The repository root, with a trailing slash. */
export const REPO = new URL('..', import.meta.url).pathname;
/** The passwords of every lab cluster's roles (throw-away, never used outside the lab). */
export const PASSWORDS = { superuser: 'super-secret-pw', replication: 'repl-secret-pw', rewind: 'rewind-secret-pw' };

export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export function tryKill(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}

/** The HTTP status of a GET (a health probe), 0 when there is no answer within `timeoutMs`. */
export async function httpStatus(url: string, timeoutMs = 1000): Promise<number> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

/** A client for the test superuser; errors after connect are swallowed (the caller sees them per query). */
export function superuserClient(o: { host: string; port: number; database?: string; connectMs: number; queryMs: number; statementMs?: number }): pg.Client {
  const c = new pg.Client({
    host: o.host, port: o.port, user: 'postgres', password: PASSWORDS.superuser, database: o.database ?? 'postgres',
    connectionTimeoutMillis: o.connectMs, query_timeout: o.queryMs, ...(o.statementMs === undefined ? {} : { statement_timeout: o.statementMs }),
  });
  c.on('error', () => undefined);
  return c;
}

/** Connect, run one statement, and close the client whatever happened. */
export async function queryOnce(c: pg.Client, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  try {
    await c.connect();
    return await c.query(sql, params);
  } finally {
    await c.end().catch(() => undefined);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `fn` every `intervalMs` until it returns a non-null value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v !== null && v !== undefined && v !== false) return v;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
