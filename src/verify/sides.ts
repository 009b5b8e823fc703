// Connections of pghactl verify: the leader, a physical standby, a logical subscriber. Each
// session gets the settings of sessionSql (same row text on both sides, bounded cost).
import pg from 'pg';
import { splitHostPort } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { Side } from './run.ts';
import { sessionSql } from './sql.ts';

export interface Login { user: string; password?: string | undefined }
export interface Limits { statementTimeoutMs: number; lockTimeoutMs: number }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Connecting may take 5 s on a loaded host. */
const CONNECT_MS = 5000;

async function open(cfg: pg.ClientConfig, limits: Limits, what: string): Promise<pg.Client> {
  const c = new pg.Client({ ...cfg, connectionTimeoutMillis: CONNECT_MS });
  try {
    await c.connect();
    await c.query(sessionSql(limits));
    return c;
  } catch (err) {
    await c.end().catch(() => undefined);
    throw new PgHaError('PGHA_CLI_REFUSED', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** A member's PostgreSQL (conn "host:port") as the verify user. */
export function connectMember(conn: string, dbname: string, login: Login, limits: Limits, what: string): Promise<pg.Client> {
  const { host, port } = splitHostPort(conn);
  return open({ host, port, user: login.user, password: login.password, database: dbname }, limits, what);
}

/** A libpq-style connection string or URI (the subscriber's); node-postgres parses both. */
export function connectString(connectionString: string, limits: Limits, what: string): Promise<pg.Client> {
  return open({ connectionString }, limits, what);
}

/**
 * A physical standby: waits until pg_last_wal_replay_lsn() reaches the position. Polls at 5 ms,
 * doubling to 100 ms: replay is usually done within milliseconds, and a lagging standby is not
 * hammered. `timeoutMs`: how long a standby may take to replay one position (--replay-timeout).
 */
export function physicalSide(name: string, client: pg.Client, timeoutMs: number): Side {
  return {
    name, kind: 'physical', client,
    async waitFor(lsn) {
      const deadline = performance.now() + timeoutMs;
      for (let pause = 5; ; pause = Math.min(100, pause * 2)) {
        const r = (await client.query('select pg_is_in_recovery() as rec, coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) as ok', [lsn])).rows[0] as { rec: boolean; ok: boolean };
        if (!r.rec) throw new PgHaError('PGHA_VERIFY_ABORTED', `${name} is no longer a standby (it was promoted)`);
        if (r.ok) return;
        if (performance.now() > deadline) throw new PgHaError('PGHA_VERIFY_ABORTED', `${name} did not replay the leader's WAL up to ${lsn} within ${timeoutMs / 1000} s (--replay-timeout)`);
        await sleep(pause);
      }
    },
  };
}

export interface Subscription { oid: string; name: string; publications: string[]; slot: string | null }

/** The subscription of the subscriber's database to compare: `want` by name, or the only one. */
export async function findSubscription(sub: pg.Client, want: string | undefined): Promise<Subscription> {
  const r = await sub.query('select oid::text as oid, subname, subpublications, subslotname from pg_subscription where subdbid = (select oid from pg_database where datname = current_database())');
  const all = (r.rows as Array<{ oid: string; subname: string; subpublications: string[]; subslotname: string | null }>)
    .map((x) => ({ oid: x.oid, name: x.subname, publications: x.subpublications, slot: x.subslotname }));
  const pick = want === undefined ? (all.length === 1 ? all[0] : undefined) : all.find((s) => s.name === want);
  if (pick === undefined) {
    throw new PgHaError('PGHA_CLI_REFUSED', want === undefined ? `the subscriber database has ${all.length} subscriptions (${all.map((s) => s.name).join(', ') || 'none'}): name one with --subscription` : `no subscription ${want} in the subscriber database`);
  }
  return pick;
}

/**
 * A logical subscriber: waits until its subscription applied the publisher's WAL up to the
 * position, as its replication origin (the last commit applied) or its last report to the
 * publisher (pg_stat_subscription.latest_end_lsn) shows. A quiet publisher may never produce a
 * commit past the position, so after `settleMs` the comparison goes on; the logical rule (the same
 * difference twice, the publisher unchanged around each read) keeps that safe.
 */
export function logicalSide(client: pg.Client, s: Subscription, settleMs: number): Side {
  return {
    name: 'subscriber', kind: 'logical', client,
    async waitFor(lsn) {
      const deadline = performance.now() + settleMs;
      for (let pause = 5; ; pause = Math.min(100, pause * 2)) {
        const r = (await client.query(
          `select coalesce(pg_replication_origin_progress('pg_' || $2, true) >= $1::pg_lsn, false)
               or coalesce((select max(latest_end_lsn) >= $1::pg_lsn from pg_stat_subscription where subid = $2::oid), false) as ok`, [lsn, s.oid])).rows[0] as { ok: boolean };
        if (r.ok || performance.now() > deadline) return;
        await sleep(pause);
      }
    },
  };
}
