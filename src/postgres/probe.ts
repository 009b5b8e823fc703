// The health query, and short-lived sessions for slower work.
// `Probe` is one dedicated client over the Unix socket, used by the HA loop: its timeouts are cut
// from the loop's budget, it is discarded after any error or timeout (pg queues later queries
// behind a timed-out one), and reconnected lazily on the next call. `withSession` opens a client
// with its own, longer timeouts for one piece of work (roles, promotion) and always closes it.
import pg from 'pg';
import type { PostgresStats, StandbyStats } from '../ha/types.ts';
import { CURRENT_TIMELINE_SQL, parseLsn } from './lsn.ts';

export interface ProbeResult {
  inRecovery: boolean;
  timeline: number | null;
  lsn: number | null;
  streaming: boolean;
  /** Standby: host:port its WAL receiver streams from right now (pg_stat_wal_receiver); null when not streaming. */
  sender: string | null;
  pendingRestart: boolean;
  syncStandbys: string[];
  syncSetting: string;
  replicas: Array<{ name: string; flushLsn: number | null }>;
  stats: PostgresStats;
}

export interface ProbeOptions {
  socketDir: string;
  port: number;
  user: string;
  password: string;
  /** What one probe (connect + query) may take in all, ms. Read at each connect. */
  budgetMs: () => number;
  /**
   * The server closed the probe's connection without being asked (its backend died: the
   * postmaster crashed or restarted its children). Lets the HA loop look at once instead of at
   * its next turn.
   */
  onLost?: () => void;
}

/**
 * One round trip. Timeline: on a primary, from the current WAL file name (pg_control_checkpoint()
 * still shows the old timeline until the first checkpoint after a promotion); on a standby, the
 * WAL receiver's timeline, else the later of the last restartpoint's and the minimum recovery
 * point's timelines (the replay position's own timeline is not exposed in SQL).
 */
const HEALTH_SQL = `
select pg_is_in_recovery() as in_recovery,
  case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as current_lsn,
  pg_last_wal_receive_lsn()::text as receive_lsn,
  pg_last_wal_replay_lsn()::text as replay_lsn,
  case when pg_is_in_recovery() then null
    else ${CURRENT_TIMELINE_SQL} end as primary_tli,
  (select received_tli from pg_stat_wal_receiver limit 1) as receiver_tli,
  (select status = 'streaming' from pg_stat_wal_receiver limit 1) as streaming,
  (select sender_host || ':' || sender_port from pg_stat_wal_receiver where status = 'streaming' limit 1) as sender,
  greatest((select timeline_id from pg_control_checkpoint()),
    (select nullif(min_recovery_end_timeline, 0) from pg_control_recovery())) as fallback_tli,
  exists (select 1 from pg_settings where pending_restart) as pending_restart,
  current_setting('synchronous_standby_names') as sync_setting,
  -- One scan of pg_stat_replication (about 0.7 ms, most of this query's cost): the streaming
  -- replicas and synchronous standbys are picked from it in healthFromRow, the rest is for GET /metrics.
  (select coalesce(json_agg(json_build_object('name', application_name, 'state', state, 'sync_state', sync_state,
      'write', write_lsn::text, 'flush', flush_lsn::text, 'replay', replay_lsn::text,
      'write_lag', extract(epoch from write_lag)::float8, 'flush_lag', extract(epoch from flush_lag)::float8,
      'replay_lag', extract(epoch from replay_lag)::float8) order by application_name), '[]')
     from pg_stat_replication where state <> 'backup') as standbys,
  -- For GET /metrics: cheap function calls in the same round trip.
  case when pg_is_in_recovery() then null else pg_current_wal_flush_lsn()::text end as flush_lsn,
  (select written_lsn::text from pg_stat_wal_receiver limit 1) as written_lsn,
  extract(epoch from pg_last_xact_replay_timestamp())::float8 as replay_ts,
  case when pg_is_in_recovery() then pg_is_wal_replay_paused() else false end as replay_paused,
  extract(epoch from pg_postmaster_start_time())::float8 as postmaster_start,
  current_setting('server_version_num')::int as server_version,
  -- WAL archiving (GET /metrics pgha_archive_*): one row, counters kept by the archiver.
  (select json_build_object('archived', archived_count, 'failed', failed_count,
      'last_archived', extract(epoch from last_archived_time)::float8, 'last_failed', extract(epoch from last_failed_time)::float8)
     from pg_stat_archiver) as archiver,
  current_setting('archive_mode') as archive_mode`;

interface HealthRow {
  in_recovery: boolean;
  current_lsn: string | null;
  receive_lsn: string | null;
  replay_lsn: string | null;
  primary_tli: number | null;
  receiver_tli: number | null;
  streaming: boolean | null;
  sender?: string | null;
  fallback_tli: number | null;
  pending_restart: boolean;
  sync_setting: string;
  /** pg_stat_replication ordered by application_name, base backups left out. */
  standbys: StandbyRow[];
  flush_lsn: string | null;
  written_lsn: string | null;
  replay_ts: number | null;
  replay_paused: boolean | null;
  postmaster_start: number | null;
  server_version: number | null;
  archiver?: { archived: number; failed: number; last_archived: number | null; last_failed: number | null } | null;
  archive_mode?: string;
}

interface StandbyRow {
  name: string; state: string; sync_state: string; write: string | null; flush: string | null; replay: string | null;
  write_lag: number | null; flush_lag: number | null; replay_lag: number | null;
}

const lsnOrNull = (x: string | null | undefined) => (x === null || x === undefined ? null : parseLsn(x));

function standbyFromRow(x: StandbyRow): StandbyStats {
  return {
    name: x.name, state: x.state, syncState: x.sync_state, writeLsn: lsnOrNull(x.write), flushLsn: lsnOrNull(x.flush),
    replayLsn: lsnOrNull(x.replay), writeLag: x.write_lag, flushLag: x.flush_lag, replayLag: x.replay_lag,
  };
}

/** The monitoring columns of the health row (GET /metrics). */
export function statsFromRow(r: HealthRow): PostgresStats {
  return {
    flushLsn: r.in_recovery ? null : lsnOrNull(r.flush_lsn),
    receivedLsn: r.in_recovery ? lsnOrNull(r.written_lsn ?? r.receive_lsn) : null,
    replayedLsn: r.in_recovery ? lsnOrNull(r.replay_lsn) : null,
    replayedAt: r.in_recovery ? r.replay_ts : null,
    replayPaused: r.in_recovery && r.replay_paused === true,
    postmasterStart: r.postmaster_start,
    serverVersion: r.server_version,
    standbys: r.in_recovery ? [] : r.standbys.map(standbyFromRow),
    ...(r.archiver == null ? {} : {
      archive: {
        // A standby archives only with archive_mode = always.
        enabled: r.archive_mode === 'always' || (r.archive_mode === 'on' && !r.in_recovery),
        archived: Number(r.archiver.archived), failed: Number(r.archiver.failed),
        lastArchivedAt: r.archiver.last_archived, lastFailedAt: r.archiver.last_failed,
      },
    }),
  };
}

const streamingStandbys = (r: HealthRow) => r.standbys.filter((x) => x.state === 'streaming');

export function healthFromRow(r: HealthRow): ProbeResult {
  const lsns = [r.current_lsn, r.receive_lsn, r.replay_lsn].filter((x): x is string => x !== null).map(parseLsn);
  return {
    inRecovery: r.in_recovery,
    timeline: r.in_recovery ? (r.receiver_tli ?? r.fallback_tli) : (r.primary_tli ?? r.fallback_tli),
    lsn: lsns.length === 0 ? null : Math.max(...lsns),
    streaming: r.in_recovery && r.streaming === true,
    sender: r.in_recovery && r.streaming === true ? (r.sender ?? null) : null,
    pendingRestart: r.pending_restart,
    // Streaming standbys, and those PostgreSQL counts as synchronous (sync_state 'sync').
    syncStandbys: r.in_recovery ? [] : streamingStandbys(r).filter((x) => x.sync_state === 'sync').map((x) => x.name),
    syncSetting: r.in_recovery ? '' : r.sync_setting,
    replicas: r.in_recovery ? [] : streamingStandbys(r).map((x) => ({ name: x.name, flushLsn: lsnOrNull(x.flush) })),
    stats: statsFromRow(r),
  };
}

/**
 * Timeouts cut from a budget B so that connect + query always ends inside it:
 * connect 0.4 B (a Unix-socket connection with SCRAM takes milliseconds; a frozen postmaster
 * never answers), then the server cancels the statement at 0.4 B (statement_timeout), and the
 * client gives up at 0.5 B (query_timeout) if the server could not even do that. 0.9 B in all,
 * the rest is the caller's.
 */
export function probeTimeouts(budgetMs: number): { connect: number; statement: number; query: number } {
  const b = Math.max(budgetMs, 100);
  return { connect: Math.round(0.4 * b), statement: Math.round(0.4 * b), query: Math.round(0.5 * b) };
}

export class Probe {
  #client: pg.Client | null = null;
  #clientBudget = 0;
  readonly #o: ProbeOptions;

  constructor(o: ProbeOptions) {
    this.#o = o;
  }

  async #connect(): Promise<pg.Client> {
    const budget = this.#o.budgetMs();
    if (this.#client !== null && this.#clientBudget === budget) return this.#client;
    this.discard(); // none yet, or retry_timeout changed: new timeouts need a new connection
    const t = probeTimeouts(budget);
    const c = new pg.Client({
      host: this.#o.socketDir, port: this.#o.port, user: this.#o.user, password: this.#o.password, database: 'postgres',
      application_name: 'pgha', connectionTimeoutMillis: t.connect, statement_timeout: t.statement, query_timeout: t.query,
    });
    // Without a listener an idle client's error (server restart) would crash the agent.
    const lost = () => {
      if (this.#client !== c) return; // discarded by us, or never in use
      this.discard(c);
      this.#o.onLost?.();
    };
    c.on('error', lost);
    c.on('end', lost);
    await c.connect().catch((err: unknown) => {
      this.discard(c);
      throw err;
    });
    this.#client = c;
    this.#clientBudget = budget;
    return c;
  }

  /** Throw the client away (it reconnects on the next call). */
  discard(c: pg.Client | null = this.#client): void {
    if (c === null) return;
    if (this.#client === c) this.#client = null;
    void c.end().catch(() => undefined);
  }

  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    const c = await this.#connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } catch (err) {
      this.discard(c);
      throw err;
    }
  }

  async health(): Promise<ProbeResult> {
    const [r] = await this.query<HealthRow>(HEALTH_SQL);
    if (r === undefined) throw new Error('health query returned no row');
    return healthFromRow(r);
  }

  close(): void {
    this.discard();
  }
}

export interface SessionOptions {
  /** A directory (Unix socket) or a host name/address. */
  host: string;
  port: number;
  user: string;
  password: string;
  /** Server-side limit per statement, ms; the client waits 5 s longer before giving up. */
  statementTimeoutMs: number;
  /** Database to connect to (default postgres). */
  database?: string;
}

/** Run `fn` on a fresh client and close it, whatever happens. */
export async function withSession<T>(o: SessionOptions, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({
    host: o.host, port: o.port, user: o.user, password: o.password, database: o.database ?? 'postgres', application_name: 'pgha',
    // A server that accepts TCP but never answers (frozen) must not hold a one-off step forever;
    // 5 s is far above any healthy connect, local or across a LAN.
    connectionTimeoutMillis: 5000,
    statement_timeout: o.statementTimeoutMs,
    // 5 s past the server-side limit: room for the server's own cancel to come back.
    query_timeout: o.statementTimeoutMs + 5000,
  });
  c.on('error', () => undefined); // errors surface through the awaited calls below
  try {
    await c.connect();
    return await fn(c);
  } finally {
    await endWithin(c, 1000);
  }
}

/**
 * Close a client, waiting at most `ms` for the server's goodbye: the result is already in hand,
 * and a dead peer must not hold the caller (pg destroys the socket if the goodbye never comes).
 */
async function endWithin(c: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
  await Promise.race([c.end().catch(() => undefined), timeout]);
  clearTimeout(timer);
}
