// The agent's side of backups: writes pgbackrest.conf into the member's backup directory, hands
// the archive parameters to pgha.conf, creates the stanza after a bootstrap and runs `pgbackrest
// check` after a bootstrap and after every promotion, watches pg_stat_archiver, and runs backups
// and expires on request. Every pgbackrest call here runs in the background of the HA loop: the
// loop only fires them (bootstrapped(), promoted()) and never awaits one, so a hung repository
// or a failing archive_command delays no failover.
import { existsSync } from 'node:fs';
import { mkdir, chmod } from 'node:fs/promises';
import { splitHostPort } from '../config/schema.ts';
import { PgHaError, describeError } from '../errors.ts';
import { parseInfo } from './info.ts';
import type { Logger } from '../log/logger.ts';
import { writeAtomic } from '../postgres/datadir.ts';
import { withSession } from '../postgres/probe.ts';
import { pgbackrest, type BackupNodeConfig } from './exec.ts';
import { archiveParameters, backupDirs, backupPaths, backupPgpass, renderPgbackrestConf, type ParamValue } from './render.ts';
import { BackupJobs } from './jobs.ts';
import { parseArchiver, type ArchiveHealth, type ArchiverRow, type CheckResult } from './health.ts';

/** stanza-create and check: a handful of round trips and one WAL switch that must be archived; archive-timeout (60 s default) bounds the wait, 30 s more covers a slow repository. */
const CHECK_TIMEOUT_MS = (c: BackupNodeConfig) => c.backup.archive.timeout * 1000 + 30_000;
/** A restore copies the whole database, as a backup does: the same limit. */
const RESTORE_TIMEOUT_MS = (c: BackupNodeConfig) => c.backup.backup_timeout * 1000;
/** pg_stat_archiver is read every 5 s: the archive age shown is at most that stale. */
const WATCH_EVERY_MS = 5000;
/** One read of pg_stat_archiver: a single-row view, 3 s covers a loaded server. */
const WATCH_QUERY_MS = 3000;

export interface BackupAgentOptions {
  config: BackupNodeConfig;
  logger: Logger;
}

export class BackupAgent {
  readonly #c: BackupNodeConfig;
  readonly #log: Logger;
  #check: CheckResult | null = null;
  #checking: Promise<void> | null = null;
  #checkAgain = false;
  #archiver: ArchiverRow | null = null;
  #watch: NodeJS.Timeout | null = null;
  #failing = false;
  /** Backups and expires asked over the REST API, one at a time. */
  readonly jobs: BackupJobs;

  constructor(o: BackupAgentOptions) {
    this.#c = o.config;
    this.#log = o.logger;
    this.jobs = new BackupJobs(o.config, o.logger);
  }

  get config(): BackupNodeConfig { return this.#c; }

  /** Create the backup directory and write pgbackrest.conf and its passfile (mode 0600). */
  async prepare(): Promise<void> {
    const p = backupPaths(this.#c);
    for (const d of backupDirs(p)) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chmod(d, 0o700);
    }
    await writeAtomic(p.conf, renderPgbackrestConf(this.#c), undefined);
    await writeAtomic(p.passfile, backupPgpass(this.#c), undefined);
    // A missing posix repository (an unmounted share) is only warned about: the agent must run
    // for high availability; archive_command then fails, which /status and pghactl list show.
    for (const r of this.#c.backup.repositories) {
      if (r.type === 'posix' && !existsSync(r.path)) {
        this.#log.warn({ event: 'backup repository missing', path: r.path }, `backup repository ${r.path} does not exist (not mounted?): WAL archiving will fail until it does`);
      }
    }
    this.#log.info({ event: 'backup config', conf: p.conf, repositories: this.#c.backup.repositories.map((r) => `${r.type}:${r.path}`) }, 'wrote pgbackrest.conf');
  }

  /** archive_mode, archive_command, restore_command for pgha.conf. */
  parameters(): Record<string, ParamValue> {
    return archiveParameters(this.#c);
  }

  /** The bootstrapping leader's PostgreSQL runs: create the stanza, then check (in the background). */
  bootstrapped(): void {
    this.#background('stanza-create', async () => {
      await pgbackrest(this.#c, 'stanza-create', [], CHECK_TIMEOUT_MS(this.#c));
      this.#log.info({ event: 'backup stanza', stanza: this.#c.backup.stanza ?? this.#c.scope }, 'pgBackRest stanza created');
    });
  }

  /** A promotion finished: check that the new primary's WAL reaches the repository (in the background). */
  promoted(): void {
    this.#background('check', async () => undefined);
  }

  /**
   * Run `first` and then `pgbackrest check`, one at a time: a call while one runs asks for one
   * more check after it. Never rejects; the outcome is logged and kept for /status.
   */
  #background(what: string, first: () => Promise<void>): void {
    if (this.#checking !== null) { this.#checkAgain = true; return; }
    const run = async () => {
      const started = Date.now();
      try {
        await first();
        await pgbackrest(this.#c, 'check', [], CHECK_TIMEOUT_MS(this.#c));
        this.#check = { ok: true, at: new Date().toISOString(), error: null, ms: Date.now() - started };
        this.#log.info({ event: 'backup check', ok: true, ms: this.#check.ms }, 'pgbackrest check passed: WAL reaches the repository');
        await this.#readArchiver(); // the WAL file the check archived shows at once
      } catch (err) {
        const e = describeError(err);
        this.#check = { ok: false, at: new Date().toISOString(), error: e.message, ms: Date.now() - started };
        this.#log.warn({ event: 'backup check', ok: false, step: what, err: e }, `pgbackrest ${what === 'check' ? 'check' : `${what}/check`} failed: archiving is not working`);
      }
    };
    this.#checking = run().finally(() => {
      this.#checking = null;
      if (this.#checkAgain) { this.#checkAgain = false; this.#background('check', async () => undefined); }
    });
  }

  /** The check in flight, if any (tests and shutdown). */
  async settled(): Promise<void> {
    while (this.#checking !== null) await this.#checking;
  }

  /** create_replica_methods lists pgbackrest: clones try the repository first. */
  get replicaFromBackup(): boolean {
    return this.#c.backup.create_replica_methods[0] === 'pgbackrest';
  }

  /**
   * Restore the newest backup into the (empty) data directory as a standby (pgBackRest
   * --type=standby: standby.signal and restore_command); the caller then configures it as the
   * leader's standby and starts it, and it streams once it has replayed the archive.
   */
  async restoreReplica(): Promise<void> {
    const started = Date.now();
    await pgbackrest(this.#c, 'restore', ['--type=standby'], RESTORE_TIMEOUT_MS(this.#c));
    this.#log.info({ event: 'replica restored', ms: Date.now() - started }, 'restored the data directory from the pgBackRest repository');
  }

  /**
   * Restore the newest backup over a kept data directory of `systemId` (pgbackrest restore
   * --delta --type=standby: only files whose checksum differs from the backup's are copied,
   * files the backup lacks are removed). Refused when the repository's stanza belongs to another
   * system id, or has no backup: the caller then empties the directory and clones afresh.
   */
  async deltaRestore(systemId: string): Promise<void> {
    const started = Date.now();
    const info = await pgbackrest(this.#c, 'info', ['--output=json'], CHECK_TIMEOUT_MS(this.#c));
    const ids = stanzaSystemIds(info.stdout);
    if (!ids.includes(systemId)) throw new PgHaError('PGHA_BACKUP_COMMAND', `delta restore: the repository's stanza holds system ${ids.join(', ') || 'none'}, the data directory ${systemId}`);
    if (parseInfo(info.stdout).every((s) => s.backups.length === 0)) throw new PgHaError('PGHA_BACKUP_COMMAND', 'delta restore: the stanza has no backup yet');
    await pgbackrest(this.#c, 'restore', ['--type=standby', '--delta'], RESTORE_TIMEOUT_MS(this.#c));
    this.#log.info({ event: 'replica restored', delta: true, ms: Date.now() - started }, 'delta-restored the data directory from the pgBackRest repository');
  }

  /**
   * pg_create_restore_point(name) on this (primary) PostgreSQL, then a WAL switch so the record
   * reaches the archive now rather than at the next segment end: a restore to `name` needs it.
   */
  async createRestorePoint(name: string): Promise<{ name: string; lsn: string; time: string }> {
    const pgc = this.#c.postgresql;
    const r = await withSession({
      host: pgc.socket_dir, port: splitHostPort(pgc.listen).port, user: pgc.authentication.superuser.username,
      password: pgc.authentication.superuser.password, statementTimeoutMs: WATCH_QUERY_MS,
    }, async (s) => {
      const row = (await s.query<{ lsn: string; time: string }>('select pg_create_restore_point($1)::text as lsn, clock_timestamp()::text as time', [name])).rows[0];
      await s.query('select pg_switch_wal()');
      return row;
    });
    if (r === undefined) throw new Error('pg_create_restore_point returned no row');
    this.#log.info({ event: 'restore point', name, lsn: r.lsn }, `restore point ${name} created at ${r.lsn}`);
    return { name, lsn: r.lsn, time: new Date(Date.parse(r.time.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'))).toISOString() };
  }

  /** Start reading pg_stat_archiver every WATCH_EVERY_MS (failures there are only logged). */
  startWatching(): void {
    if (this.#watch !== null) return;
    this.#watch = setInterval(() => void this.#readArchiver(), WATCH_EVERY_MS);
    this.#watch.unref();
    void this.#readArchiver();
  }

  stop(): void {
    if (this.#watch !== null) clearInterval(this.#watch);
    this.#watch = null;
  }

  async #readArchiver(): Promise<void> {
    const pgc = this.#c.postgresql;
    try {
      const row = await withSession({
        host: pgc.socket_dir, port: splitHostPort(pgc.listen).port, user: pgc.authentication.superuser.username,
        password: pgc.authentication.superuser.password, statementTimeoutMs: WATCH_QUERY_MS,
      }, async (s) => (await s.query<ArchiverRow>(ARCHIVER_SQL)).rows[0] ?? null);
      this.#archiver = row;
    } catch {
      this.#archiver = null; // PostgreSQL down or starting: nothing to report
      return;
    }
    const h = this.health();
    if (h?.failing === true && !this.#failing) {
      this.#log.warn({ event: 'archive failing', wal: h.last_failed_wal, failed_count: h.failed_count }, `archive_command is failing (last failed: ${h.last_failed_wal ?? '?'}); WAL piles up in pg_wal`);
    } else if (h?.failing === false && this.#failing) {
      this.#log.info({ event: 'archive recovered', wal: h.last_archived_wal }, 'archive_command succeeds again');
    }
    this.#failing = h?.failing === true;
  }

  /** Archive health for /status (null before the first reading). */
  health(now = Date.now()): ArchiveHealth | null {
    return parseArchiver(this.#archiver, this.#check, now);
  }
}

/**
 * The system ids of the stanza's databases in `pgbackrest info --output=json`, as digit strings
 * (they exceed 2^53: JSON.parse would round them).
 */
export function stanzaSystemIds(json: string): string[] {
  return [...new Set([...json.matchAll(/"system-id"\s*:\s*(\d+)/g)].map((m) => m[1]!))];
}

const ARCHIVER_SQL = `select archived_count::int as archived_count, last_archived_wal, last_archived_time::text as last_archived_time,
  failed_count::int as failed_count, last_failed_wal, last_failed_time::text as last_failed_time, current_setting('archive_mode') as archive_mode
  from pg_stat_archiver`;
