// One command on a PgBouncer admin console (the virtual `pgbouncer` database): connect, send it
// (simple query protocol, the only one the console speaks), close. Every call is bounded by a
// timer that destroys the socket, so a pooler that accepts TCP and never answers costs at most
// the bound, never a hung switchover.
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { ConnectionOptions } from 'node:tls';
import type { PoolerConfig } from '../config/schema.ts';
import { PgHaError, describeError } from '../errors.ts';

export type AdminCommand = 'PAUSE' | 'RESUME' | 'RECONNECT';

/** The name a pooler goes by in logs, GET /poolers and pghactl. */
export function poolerName(p: PoolerConfig): string {
  return p.name ?? `${p.host}:${p.port}`;
}

async function password(p: PoolerConfig): Promise<string | undefined> {
  if (p.password_file === undefined) return p.password;
  const text = await readFile(p.password_file, 'utf8').catch((err: unknown) => {
    throw new PgHaError('PGHA_POOLER_FAILED', `${poolerName(p)}: cannot read password_file ${p.password_file}: ${describeError(err).message}`);
  });
  return text.split('\n')[0]?.trimEnd() ?? '';
}

async function tlsOptions(p: PoolerConfig): Promise<false | ConnectionOptions> {
  if (p.sslmode === 'disable') return false;
  if (p.sslmode === 'require') return { rejectUnauthorized: false };
  const ca = await readFile(p.sslrootcert!, 'utf8');
  // verify-ca: the chain is checked, the name is not.
  return p.sslmode === 'verify-full' ? { ca, rejectUnauthorized: true } : { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
}

/**
 * Run `command` on the pooler's admin console within `timeoutMs` (connect included). Throws
 * PGHA_POOLER_FAILED naming the pooler; never logs or returns the password.
 */
export async function adminCall(p: PoolerConfig, command: AdminCommand, timeoutMs: number): Promise<void> {
  const name = poolerName(p);
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PgHaError('PGHA_POOLER_FAILED', `${name}: ${command} got no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([(async () => {
      const c = new pg.Client({
        host: p.host, port: p.port, user: p.user, database: 'pgbouncer',
        password: await password(p), ssl: await tlsOptions(p),
      });
      c.on('error', () => undefined); // a socket error after the timer fired: already reported
      client = c;
      await c.connect();
      await c.query(command);
    })(), bound]);
  } catch (err) {
    if (err instanceof PgHaError) throw err;
    throw new PgHaError('PGHA_POOLER_FAILED', `${name}: ${command} failed: ${describeError(err).message}`);
  } finally {
    clearTimeout(timer);
    const c = client as pg.Client | null;
    if (c !== null) {
      // end() waits for the server's goodbye, which a hung pooler never sends: drop the socket too.
      void c.end().catch(() => undefined);
      (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }
  }
}

/** PgBouncer's answer to RESUME on a pooler that is not paused: nothing to do, not a failure. */
export function notPaused(err: unknown): boolean {
  return /not paused|not suspended/i.test(describeError(err).message);
}

/** PgBouncer's answer to PAUSE on a pooler already paused (an earlier PAUSE that missed its bound). */
export function alreadyPaused(err: unknown): boolean {
  return /already (suspended|paused)/i.test(describeError(err).message);
}
