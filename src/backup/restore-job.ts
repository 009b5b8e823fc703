// The agent's part of a whole-cluster restore (docs/backup.md#pghactl-restore), run on the member
// that /restore names while the cluster is paused: archive the current WAL, stop PostgreSQL
// (through the HA loop's queue), `pgbackrest restore --delta` to the target, start it so that it
// recovers to the target and promotes on a new timeline, clear pgBackRest's recovery settings,
// record the promotion in /history and mark /restore "restored". It runs in the background of
// the REST request that started it, never inside the HA loop: the loop keeps renewing the leader
// key meanwhile (paused, it neither restarts nor promotes anything itself). The job survives the
// CLI that asked for it; POST /restore again with the same id answers the job instead of
// starting a second one.
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { splitHostPort } from '../config/schema.ts';
import type { Dcs } from '../dcs/types.ts';
import { PgHaError, describeError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { fatalLines } from '../postgres/datadir.ts';
import { withSession } from '../postgres/probe.ts';
import type { PostgresControl } from '../postgres/types.ts';
import { pgbackrestStreaming, type BackupNodeConfig } from './exec.ts';
import { advance, describeTarget, restoreArgs, restoreRecordSchema, type RestoreRecord } from './restore-plan.ts';

export interface RestoreJob {
  id: string;
  state: 'running' | 'done' | 'failed';
  /** archive, stop, restore, start, recovery, finish. */
  step: string;
  started: string;
  seconds: number;
  lines: string[];
  timeline: number | null;
  lsn: string | null;
  error: string | null;
}

export interface RestoreJobDeps {
  config: BackupNodeConfig;
  pg: PostgresControl;
  dcs: Dcs;
  logger: Logger;
  /** Run `fn` inside the HA loop, between two iterations (HaLoop.enqueue). */
  enqueue: (name: string, fn: () => Promise<void>) => Promise<void>;
  /** The promotion happened: pgbackrest check on the new timeline (BackupAgent.promoted). */
  promoted: () => void;
}

/** Recovery settings pgBackRest writes into postgresql.auto.conf: reset after the promotion, so no later start (a clone copies the file) recovers to the old target. */
const RECOVERY_SETTINGS = ['recovery_target', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_xid',
  'recovery_target_action', 'recovery_target_timeline', 'recovery_target_inclusive', 'restore_command'];
/** One query on the local server: 10 s covers a loaded one (a WAL switch, ALTER SYSTEM). */
const QUERY_MS = 10_000;
/** Poll pace while waiting for the archive and the recovery. */
const POLL_MS = 250;
const KEEP_LINES = 8;

export class RestoreJobs {
  readonly #d: RestoreJobDeps;
  #job: RestoreJob | null = null;
  #startedAt = 0;

  constructor(d: RestoreJobDeps) {
    this.#d = d;
  }

  current(): RestoreJob | null {
    const j = this.#job;
    if (j === null) return null;
    return j.state === 'running' ? { ...j, seconds: Math.round((performance.now() - this.#startedAt) / 100) / 10 } : { ...j };
  }

  /** Start the restore of `rec` (or answer the job already running or done for it). */
  start(rec: RestoreRecord): RestoreJob {
    const j = this.#job;
    if (j !== null && j.id === rec.id && j.state !== 'failed') return this.current()!;
    if (j !== null && j.state === 'running') throw new PgHaError('PGHA_RESTORE_STATE', `restore ${j.id} is still running on ${this.#d.config.name}`);
    const job: RestoreJob = { id: rec.id, state: 'running', step: 'archive', started: new Date().toISOString(), seconds: 0, lines: [], timeline: null, lsn: null, error: null };
    this.#job = job;
    this.#startedAt = performance.now();
    this.#d.logger.warn({ event: 'restore started', id: rec.id, target: rec.target, set: rec.set }, `whole-cluster restore to ${describeTarget(rec.target)} started on this member`);
    void this.#run(job, rec);
    return { ...job };
  }

  #session<T>(fn: (s: pg.Client) => Promise<T>): Promise<T> {
    const pgc = this.#d.config.postgresql;
    return withSession({
      host: pgc.socket_dir, port: splitHostPort(pgc.listen).port, user: pgc.authentication.superuser.username,
      password: pgc.authentication.superuser.password, statementTimeoutMs: QUERY_MS,
    }, fn);
  }

  async #run(job: RestoreJob, rec: RestoreRecord): Promise<void> {
    const c = this.#d.config;
    const log = (l: string) => { job.lines = [...job.lines, l.replace(/^\S+ \S+ P\d+ +/, '')].slice(-KEEP_LINES); };
    try {
      job.step = 'archive';
      await this.#archiveCurrentWal();
      job.step = 'stop';
      await this.#d.enqueue('restore: stop PostgreSQL', () => this.#d.pg.stop('fast'));
      job.step = 'restore';
      await pgbackrestStreaming(c, 'restore', restoreArgs(rec.target, rec.set), c.backup.backup_timeout * 1000, log);
      job.step = 'start';
      // pg_ctl -w returns once recovery reached a consistent state; a long replay may outlast
      // pg_ctl_timeout while the server goes on: the wait below decides.
      await this.#d.pg.start('primary', null).catch((err: unknown) => log(`pg_ctl start: ${describeError(err).message}`));
      job.step = 'recovery';
      await this.#waitPromoted(c.backup.backup_timeout * 1000);
      job.step = 'finish';
      const { timeline, lsn } = await this.#session(async (s) => {
        for (const p of RECOVERY_SETTINGS) await s.query(`alter system reset ${p}`);
        await s.query('select pg_reload_conf()');
        const r = (await s.query<{ f: string; lsn: string }>('select pg_walfile_name(pg_current_wal_lsn()) as f, pg_current_wal_lsn()::text as lsn')).rows[0];
        return { timeline: parseInt(r?.f.slice(0, 8) ?? '0', 16), lsn: r?.lsn ?? '0/0' };
      });
      job.timeline = timeline;
      job.lsn = lsn;
      await this.#d.dcs.appendHistory({ timeline, lsn, reason: `restore to ${describeTarget(rec.target)}`, time: new Date().toISOString(), leader: c.name });
      await this.#saveRecord(rec.id, (r) => advance(r, 'restored', new Date(), { timeline_after: timeline, lsn_after: lsn }));
      job.state = 'done';
      this.#d.logger.warn({ event: 'restore done', id: rec.id, timeline, lsn }, `restored to ${describeTarget(rec.target)}: promoted on timeline ${timeline}`);
      this.#d.promoted();
    } catch (err) {
      job.state = 'failed';
      job.error = `${job.step}: ${describeError(err).message}`;
      this.#d.logger.error({ event: 'restore failed', id: rec.id, step: job.step, err: describeError(err) }, `whole-cluster restore failed at ${job.step}`);
      await this.#saveRecord(rec.id, (r) => ({ ...r, error: `${c.name}: ${job.error ?? ''}`, updated: new Date().toISOString() })).catch(() => undefined);
    } finally {
      job.seconds = Math.round((performance.now() - this.#startedAt) / 100) / 10;
    }
  }

  /**
   * A running primary switches to a new WAL file and waits until the one just completed is
   * archived: everything committed before the restore began is then in the repository (what
   * --latest restores). A stopped server has nothing more to archive.
   */
  async #archiveCurrentWal(): Promise<void> {
    const local = await this.#d.pg.observe();
    if (!local.running || local.role !== 'primary') return;
    const file = await this.#session(async (s) => (await s.query<{ f: string }>('select pg_walfile_name(pg_switch_wal()) as f')).rows[0]?.f ?? null);
    if (file === null) return;
    // archive_command runs once per segment; archive.timeout (the check's bound) covers a slow repository.
    const end = performance.now() + this.#d.config.backup.archive.timeout * 1000;
    for (;;) {
      const a = await this.#session(async (s) => (await s.query<{ w: string | null }>('select last_archived_wal as w from pg_stat_archiver')).rows[0]?.w ?? null);
      if (a !== null && a >= file) return;
      if (performance.now() > end) throw new PgHaError('PGHA_RESTORE_FAILED', `WAL file ${file} was not archived within ${this.#d.config.backup.archive.timeout} s: archiving fails (see pghactl list); nothing was stopped`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Recovery replays to the target and promotes (target-action=promote, or the end of the archive). */
  async #waitPromoted(timeoutMs: number): Promise<void> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const l = await this.#d.pg.observe();
      if (l.running && l.accepting && l.role === 'primary') return;
      if (!l.running) {
        const log = `${this.#d.config.postgresql.data_dir}.log`;
        const fatal = fatalLines(log);
        throw new PgHaError('PGHA_RESTORE_FAILED', `PostgreSQL stopped during recovery (an unknown restore point, or a target the archive does not reach?): ${fatal === '' ? `see the server log ${log}` : fatal}`);
      }
      if (performance.now() > end) throw new PgHaError('PGHA_RESTORE_FAILED', `recovery did not finish within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Compare-and-set on /restore, only while it still holds restore `id`. */
  async #saveRecord(id: string, fn: (r: RestoreRecord) => RestoreRecord): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const cur = await this.#d.dcs.readRestoreRecord();
      const r = restoreRecordSchema.safeParse(cur.value);
      if (!r.success || r.data.id !== id) throw new PgHaError('PGHA_RESTORE_STATE', `/restore no longer holds restore ${id}`);
      if (await this.#d.dcs.writeRestoreRecord(fn(r.data), cur.revision)) return;
    }
    throw new PgHaError('PGHA_DCS_CONFLICT', '/restore kept changing under us');
  }
}
