// The PgBouncer side of a handover (docs/pgbouncer.md). The HA decision knows nothing of poolers:
// the actor calls these around the steps decide() planned.
//   switchover, old leader: pause() before the clean stop (PAUSE, then RECONNECT while paused, so
//     a server connection PAUSE could not close yet is closed when released); resumeWhenWritable()
//     once the key is released (in the background: the old leader goes on starting as a standby).
//   any promotion, new leader: resumeWhenWritable() after pg_promote. RESUME is a no-op on a
//     pooler that is not paused. Only after an automatic failover (no old leader that paused)
//     does it RECONNECT first: a RECONNECT after another agent's RESUME would close server
//     connections still logging in, and PgBouncer then fails its waiting clients with "server
//     login has been failing" (measured: 19 errors in 20 switchovers when both sides sent it).
// Every call is bounded (pause_timeout, call_timeout, resume_timeout); a pooler that fails is
// logged and reported in GET /poolers, and never holds the switchover beyond its bound.
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { NodeConfig, PgCredentials, PoolerConfig } from '../config/schema.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { adminCall, alreadyPaused, notPaused, poolerName, type AdminCommand } from './admin.ts';

export interface PoolerOutcome {
  pooler: string;
  command: AdminCommand;
  ok: boolean;
  /** How long the call took (ms). */
  ms: number;
  error?: string;
}

export interface PoolerReport {
  /** pause: the old leader before stepping down; resume: after the handover (either side). */
  step: 'pause' | 'resume';
  /** ISO time the step started. */
  at: string;
  /** resume: ms waited for a writable primary before RESUME (null: none found within resume_timeout). */
  waitedMs?: number | null;
  outcomes: PoolerOutcome[];
}

export interface PoolerDeps {
  config(): NodeConfig;
  logger: Logger;
  /** The new leader's PostgreSQL host:port, when route_check is unset (null: not known yet). */
  leaderConn(): string | null;
}

/** Reports kept for GET /poolers. */
const KEEP_REPORTS = 10;
/** Pace of the writable check while waiting for the new primary: a switchover takes a few hundred ms. */
const WRITABLE_POLL_MS = 50;

export class Poolers {
  readonly #d: PoolerDeps;
  readonly reports: PoolerReport[] = [];

  constructor(deps: PoolerDeps) {
    this.#d = deps;
  }

  get #cfg(): NodeConfig['pgbouncer'] {
    return this.#d.config().pgbouncer;
  }

  get configured(): boolean {
    return this.#cfg.poolers.length > 0;
  }

  async #all(step: PoolerReport['step'], commands: AdminCommand[], timeoutMs: (c: AdminCommand) => number, extra: Partial<PoolerReport> = {}): Promise<PoolerReport> {
    const at = new Date().toISOString();
    // After a failed PAUSE the pooler is unreachable or busy past the bound: RECONNECT would only
    // add another bound before the switchover goes on. After a failed RECONNECT, RESUME is still sent.
    const stopAfterFailure = step === 'pause';
    const outcomes = (await Promise.all(this.#cfg.poolers.map((p) => this.#sequence(p, commands, timeoutMs, stopAfterFailure)))).flat();
    const report: PoolerReport = { step, at, ...extra, outcomes };
    this.reports.push(report);
    if (this.reports.length > KEEP_REPORTS) this.reports.shift();
    const failed = outcomes.filter((o) => !o.ok);
    const done = outcomes.filter((o) => o.ok).map((o) => `${o.command} ${o.pooler}`);
    if (failed.length > 0) {
      this.#d.logger.warn({ event: 'pooler failed', step, outcomes }, `poolers: ${failed.map((o) => `${o.command} ${o.pooler}: ${o.error ?? 'failed'}`).join('; ')}`);
    } else {
      this.#d.logger.info({ event: `poolers ${step}`, outcomes }, `poolers: ${done.join(', ')}`);
    }
    return report;
  }

  /** The commands in order on one pooler; after a failure the rest are tried unless `stopAfterFailure`. */
  async #sequence(p: PoolerConfig, commands: AdminCommand[], timeoutMs: (c: AdminCommand) => number, stopAfterFailure: boolean): Promise<PoolerOutcome[]> {
    const out: PoolerOutcome[] = [];
    for (const command of commands) {
      const started = performance.now();
      try {
        await adminCall(p, command, timeoutMs(command));
        out.push({ pooler: poolerName(p), command, ok: true, ms: Math.round(performance.now() - started) });
      } catch (err) {
        const ms = Math.round(performance.now() - started);
        if (command === 'RESUME' && notPaused(err)) out.push({ pooler: poolerName(p), command, ok: true, ms, error: 'was not paused' });
        else if (command === 'PAUSE' && alreadyPaused(err)) out.push({ pooler: poolerName(p), command, ok: true, ms, error: 'was already paused' });
        else {
          out.push({ pooler: poolerName(p), command, ok: false, ms, error: describeError(err).message });
          if (stopAfterFailure) break;
        }
      }
    }
    return out;
  }

  /**
   * PAUSE every pooler at once: each returns when its in-flight transactions have ended, or is
   * given up at pause_timeout (it stays pausing; the RESUME after the handover releases it).
   * Then, while still paused (no new server connection is being opened), RECONNECT.
   */
  async pause(): Promise<PoolerReport | null> {
    if (!this.configured) return null;
    const c = this.#cfg;
    return this.#all('pause', ['PAUSE', 'RECONNECT'], (cmd) => (cmd === 'PAUSE' ? c.pause_timeout : c.call_timeout) * 1000);
  }

  /**
   * In the background: wait until the primary is writable where the poolers connect (route_check,
   * else the new leader's PostgreSQL), at most resume_timeout, then RESUME every pooler, after a
   * RECONNECT (drop server connections to the dead primary) when `reconnect`. Never throws.
   */
  resumeWhenWritable(excludeSelf: string | null, reconnect: boolean): Promise<void> {
    if (!this.configured) return Promise.resolve();
    return (async () => {
      const started = performance.now();
      const found = await this.#waitWritable(excludeSelf, started + this.#cfg.resume_timeout * 1000);
      const waitedMs = found ? Math.round(performance.now() - started) : null;
      if (!found) this.#d.logger.warn({ event: 'pooler resume forced' }, `no writable primary within pgbouncer.resume_timeout (${this.#cfg.resume_timeout} s): resuming the poolers anyway`);
      const c = this.#cfg;
      await this.#all('resume', reconnect ? ['RECONNECT', 'RESUME'] : ['RESUME'], () => c.call_timeout * 1000, { waitedMs });
    })().catch((err: unknown) => { this.#d.logger.error({ err: describeError(err) }, 'pooler resume failed'); });
  }

  async #waitWritable(excludeSelf: string | null, deadline: number): Promise<boolean> {
    while (performance.now() < deadline) {
      const target = this.#cfg.route_check ?? this.#d.leaderConn();
      if (target !== null && target !== excludeSelf && (await this.#writable(target))) return true;
      await new Promise((r) => setTimeout(r, WRITABLE_POLL_MS));
    }
    return false;
  }

  /** One connection to host:port as the superuser: true when it reaches a primary (not in recovery). */
  async #writable(target: string): Promise<boolean> {
    const cfg = this.#d.config();
    const su = cfg.postgresql.authentication.superuser;
    const i = target.lastIndexOf(':');
    const ms = cfg.pgbouncer.call_timeout * 1000;
    const c = new pg.Client({
      host: target.slice(0, i), port: Number(target.slice(i + 1)), user: su.username, password: su.password, database: 'postgres',
      application_name: 'pgha-pooler-check', connectionTimeoutMillis: ms, query_timeout: ms, ssl: await sslOf(su),
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const r = await c.query<{ ro: boolean }>('select pg_is_in_recovery() as ro');
      return r.rows[0]?.ro === false;
    } catch {
      return false;
    } finally {
      void c.end().catch(() => undefined);
    }
  }
}

/** node-postgres TLS options for the superuser's libpq settings (prefer/allow: no TLS). */
async function sslOf(c: PgCredentials): Promise<false | { rejectUnauthorized: boolean; ca?: string; checkServerIdentity?: () => undefined }> {
  if (c.sslmode === 'require') return { rejectUnauthorized: false };
  if (c.sslmode !== 'verify-ca' && c.sslmode !== 'verify-full') return false;
  const ca = await readFile(c.sslrootcert!, 'utf8');
  return c.sslmode === 'verify-full' ? { rejectUnauthorized: true, ca } : { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
}
