// One backup at a time on this member, run in the background of the REST request that asked
// for it: POST /backup starts it and answers at once; GET /backup reports its progress and,
// once done, its size, duration and WAL range (read back with `pgbackrest info`).
import { performance } from 'node:perf_hooks';
import { PgHaError, describeError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { pgbackrest, pgbackrestStreaming, type BackupNodeConfig } from './exec.ts';
import { parseInfo, type BackupSummary, type StanzaInfo } from './info.ts';

export type BackupType = 'full' | 'diff' | 'incr';

export interface BackupJob {
  id: number;
  type: BackupType;
  standby: boolean;
  state: 'running' | 'done' | 'failed';
  started: string;
  /** Seconds since start (running) or the run's duration. */
  seconds: number;
  /** Percent copied, from pgBackRest's detail lines; null before the first file. */
  percent: number | null;
  /** The last few lines pgBackRest printed (secrets redacted). */
  lines: string[];
  result: BackupSummary | null;
  error: string | null;
}

/** `pgbackrest info`: reads the repository's manifests; 60 s covers a slow object store. */
const INFO_TIMEOUT_MS = 60_000;
/** `pgbackrest expire`: deletes files in the repository; 10 min covers many WAL segments on object storage. */
const EXPIRE_TIMEOUT_MS = 600_000;
const KEEP_LINES = 8;

export class BackupJobs {
  readonly #c: BackupNodeConfig;
  readonly #log: Logger;
  #job: BackupJob | null = null;
  #startedAt = 0;
  #next = 1;

  constructor(c: BackupNodeConfig, logger: Logger) {
    this.#c = c;
    this.#log = logger;
  }

  current(): BackupJob | null {
    const j = this.#job;
    if (j === null) return null;
    return j.state === 'running' ? { ...j, seconds: Math.round((performance.now() - this.#startedAt) / 100) / 10 } : { ...j };
  }

  /** Start a backup; refuses (PGHA_BACKUP_BUSY) while one runs. Resolves when it has started. */
  start(type: BackupType, standby: boolean): BackupJob {
    if (this.#job?.state === 'running') throw new PgHaError('PGHA_BACKUP_BUSY', `backup ${this.#job.id} (${this.#job.type}) is still running on ${this.#c.name}`);
    const job: BackupJob = { id: this.#next++, type, standby, state: 'running', started: new Date().toISOString(), seconds: 0, percent: null, lines: [], result: null, error: null };
    this.#job = job;
    this.#startedAt = performance.now();
    this.#log.info({ event: 'backup started', type, standby, job: job.id }, `pgBackRest ${type} backup started`);
    void this.#run(job);
    return { ...job };
  }

  async #run(job: BackupJob): Promise<void> {
    const onLine = (l: string) => {
      const m = /\((\d+(?:\.\d+)?)%\)/.exec(l);
      if (m !== null) job.percent = Number(m[1]);
      job.lines = [...job.lines, l.replace(/^\S+ \S+ P\d+ +/, '')].slice(-KEEP_LINES);
    };
    const extra = [`--type=${job.type}`, ...(job.standby ? ['--backup-standby'] : [])];
    try {
      await pgbackrestStreaming(this.#c, 'backup', extra, this.#c.backup.backup_timeout * 1000, onLine);
      const info = await this.info();
      const all = info.flatMap((s) => s.backups);
      job.result = all[all.length - 1] ?? null;
      job.state = 'done';
      job.percent = 100;
      this.#log.info({ event: 'backup done', job: job.id, label: job.result?.label, size: job.result?.size }, `pgBackRest ${job.type} backup ${job.result?.label ?? ''} done`);
    } catch (err) {
      job.state = 'failed';
      job.error = describeError(err).message;
      this.#log.warn({ event: 'backup failed', job: job.id, err: describeError(err) }, `pgBackRest ${job.type} backup failed`);
    } finally {
      job.seconds = Math.round((performance.now() - this.#startedAt) / 100) / 10;
    }
  }

  async info(): Promise<StanzaInfo[]> {
    const r = await pgbackrest(this.#c, 'info', ['--output=json'], INFO_TIMEOUT_MS);
    try {
      return parseInfo(r.stdout);
    } catch (err) {
      throw new PgHaError('PGHA_BACKUP_COMMAND', `pgbackrest info: unexpected output: ${describeError(err).message}`);
    }
  }

  /** `pgbackrest expire` under the retention settings; the labels it removed. */
  async expire(): Promise<{ expired: string[]; kept: string[] }> {
    if (this.#job?.state === 'running') throw new PgHaError('PGHA_BACKUP_BUSY', `backup ${this.#job.id} is running on ${this.#c.name}: expire after it`);
    const before = (await this.info()).flatMap((s) => s.backups.map((b) => b.label));
    await pgbackrest(this.#c, 'expire', [], EXPIRE_TIMEOUT_MS);
    const after = (await this.info()).flatMap((s) => s.backups.map((b) => b.label));
    const expired = before.filter((l) => !after.includes(l));
    this.#log.info({ event: 'backup expire', expired }, `pgbackrest expire: ${expired.length} backups removed`);
    return { expired, kept: after };
  }
}
