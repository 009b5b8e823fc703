// The health query: one dedicated client over the Unix socket, discarded after any error or
// timeout and reconnected lazily on the next loop. statement_timeout < query_timeout < loop budget.
import pg from 'pg';
import { parseLsn } from './lsn.ts';

export interface ProbeResult {
  inRecovery: boolean;
  timeline: number | null;
  lsn: number | null;
  streaming: boolean;
  pendingRestart: boolean;
  syncStandbys: string[];
}

export interface ProbeOptions {
  socketDir: string;
  port: number;
  user: string;
  password: string;
  /** Budget of one probe, ms (connect or query). */
  budgetMs: number;
}

const HEALTH_SQL = `
select pg_is_in_recovery() as in_recovery,
  case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as current_lsn,
  pg_last_wal_receive_lsn()::text as receive_lsn,
  pg_last_wal_replay_lsn()::text as replay_lsn,
  case when pg_is_in_recovery() then null else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end as primary_tli,
  (select received_tli from pg_stat_wal_receiver limit 1) as receiver_tli,
  (select status = 'streaming' from pg_stat_wal_receiver limit 1) as streaming,
  (select timeline_id from pg_control_checkpoint()) as checkpoint_tli,
  exists (select 1 from pg_settings where pending_restart) as pending_restart,
  (select coalesce(array_agg(application_name::text order by application_name), '{}') from pg_stat_replication where state = 'streaming' and sync_state = 'sync') as sync_standbys`;

interface Row {
  in_recovery: boolean; current_lsn: string | null; receive_lsn: string | null; replay_lsn: string | null;
  primary_tli: number | null; receiver_tli: number | null; streaming: boolean | null; checkpoint_tli: number | null; pending_restart: boolean; sync_standbys: string[];
}

export class Probe {
  #client: pg.Client | null = null;
  readonly #o: ProbeOptions;

  constructor(o: ProbeOptions) {
    this.#o = o;
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client !== null) return this.#client;
    const c = new pg.Client({
      host: this.#o.socketDir, port: this.#o.port, user: this.#o.user, password: this.#o.password, database: 'postgres',
      application_name: 'pgha', connectionTimeoutMillis: this.#o.budgetMs,
      // Server-side limit first, client-side a bit later: a hung query is cancelled by the server
      // and the client still gives up if the server cannot even do that.
      statement_timeout: Math.max(100, this.#o.budgetMs - 200), query_timeout: this.#o.budgetMs,
    });
    c.on('error', () => this.discard(c));
    await c.connect().catch((err: unknown) => { this.discard(c); throw err; });
    this.#client = c;
    return c;
  }

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
    const [r] = await this.query<Row>(HEALTH_SQL);
    if (r === undefined) throw new Error('health query returned no row');
    const lsns = [r.current_lsn, r.receive_lsn, r.replay_lsn].filter((x): x is string => x !== null).map(parseLsn);
    return {
      inRecovery: r.in_recovery,
      timeline: r.in_recovery ? (r.receiver_tli ?? r.checkpoint_tli) : r.primary_tli,
      lsn: lsns.length === 0 ? null : Math.max(...lsns),
      streaming: r.streaming === true,
      pendingRestart: r.pending_restart,
      syncStandbys: r.in_recovery ? [] : r.sync_standbys,
    };
  }

  close(): void {
    this.discard();
  }
}
