// bootstrap.method: pgbackrest: the first member of a new cluster restores a stanza (production's,
// read-only) to bootstrap.pgbackrest.target instead of running initdb. It runs in place of initdb
// inside the agent's bootstrap action (src/agent/act.ts), which holds the /initialize claim, keeps
// the lease alive, and on any failure stops PostgreSQL, empties the data directory and gives the
// claim up. Steps, in order:
//  1. `pgbackrest info` of the source (its own pgbackrest.conf, in <backup.dir>/bootstrap-source,
//     mode 0600) and of this cluster's stanza: refuse a missing stanza, a stanza without a backup,
//     an unknown --set, a time or LSN target before the oldest backup, and an own stanza that
//     already exists (an old archive; pushing a new timeline 2 into it would fail or mix clusters);
//  2. `pgbackrest restore` of the source with the target and --target-action=promote, its
//     restore_command reading the source's archive (never writing to it);
//  3. recovery with no TCP listener, a socket only the server's OS user reaches (0700) and a
//     pg_hba.conf trusting only the local superuser: the source's passwords are not this
//     cluster's, and the configured ones must be set before anything else connects (Patroni
//     opens trust the same way for its custom bootstrap);
//  4. wait for the promotion; a server that exits instead (a target recovery never reached)
//     fails the bootstrap with PostgreSQL's FATAL lines;
//  5. ALTER SYSTEM RESET of the recovery options pgBackRest wrote into postgresql.auto.conf (a
//     standby cloned from here would otherwise stop at the same target), roles and passwords set,
//     a clean stop, the configured pg_hba.conf written. The agent then starts it as the primary,
//     and the backup agent creates this cluster's own stanza (bootstrapped()).
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { splitHostPort } from '../config/schema.ts';
import { PgHaError, describeError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { fatalLines, livePostmaster, writeAtomic } from '../postgres/datadir.ts';
import type { RunAs } from '../postgres/exec.ts';
import { withSession } from '../postgres/probe.ts';
import { pgbackrest, type BackupNodeConfig } from './exec.ts';
import { parseInfo } from './info.ts';
import { archiveParameters, backupDirs, backupPaths, renderPgbackrestConf, stanzaOf } from './render.ts';
import { sourceProblem, targetArgs, type BootstrapPgbackrest } from './bootstrap-config.ts';

/** `pgbackrest info`: reads the repository's manifests; 60 s covers a slow object store. */
const INFO_TIMEOUT_MS = 60_000;
/** One poll of pg_is_in_recovery() over the local socket: 3 s covers a server busy replaying. */
const POLL_QUERY_MS = 3000;
/** How often the end of recovery is polled: a promotion is noticed within half a second. */
const POLL_EVERY_MS = 500;
/** Statements after the promotion (ALTER SYSTEM, CHECKPOINT-free): quick, but not loop-bound. */
const ADMIN_MS = 30_000;
/** After a failure that restored data, the same restore is not tried again for this long. */
const RETRY_AFTER_RESTORE_MS = 5 * 60_000;

/** Recovery options pgBackRest writes into postgresql.auto.conf (PostgreSQL 12+). */
const RECOVERY_OPTIONS = ['restore_command', 'recovery_target', 'recovery_target_name', 'recovery_target_time', 'recovery_target_lsn',
  'recovery_target_xid', 'recovery_target_inclusive', 'recovery_target_action', 'recovery_target_timeline'];

/** A postgresql.auto.conf line setting archiving, which pgha.conf sets for this cluster. */
const ARCHIVE_SETTING = /^\s*(archive_mode|archive_command|archive_library)\s*=/;

/** What the bootstrap needs of the local PostgreSQL (src/postgres/instance.ts provides it). */
export interface BootstrapPg {
  dataDir: string;
  logfile: string;
  runAs: RunAs | undefined;
  /** pgha.conf during recovery: no TCP listener, socket mode 0700. */
  recoveryConf(): string;
  /** The pg_hba.conf the cluster keeps (bootstrap.pg_hba or pgha's default). */
  finalHba(): string;
  /** `pg_ctl start -w -t seconds -l logfile` on the restored directory. */
  startRecovery(timeoutSeconds: number): Promise<void>;
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  createRoles(): Promise<void>;
}

/** The source stanza's configuration: this member's backup settings with the source's stanza and repositories, in its own directory. */
export function sourceConfig(c: BackupNodeConfig): BackupNodeConfig {
  const b = c.bootstrap.pgbackrest;
  if (b === undefined) throw new PgHaError('PGHA_CONFIG_INVALID', 'bootstrap.pgbackrest is not set');
  return {
    ...c,
    backup: {
      ...c.backup, stanza: b.stanza, repositories: b.repositories ?? c.backup.repositories,
      dir: join(backupPaths(c).dir, 'bootstrap-source'), peers: {}, backup_standby: false,
      archive: { ...c.backup.archive, async: false },
    },
  };
}

export interface BackupBootstrapOptions {
  config: BackupNodeConfig;
  logger: Logger;
  /** The node configuration file, named in refusals. */
  configPath?: string | undefined;
  now?: () => number;
}

export class BackupBootstrap {
  readonly #c: BackupNodeConfig;
  readonly #b: BootstrapPgbackrest;
  readonly #log: Logger;
  readonly #where: string;
  readonly #now: () => number;
  /** A failure after data was restored: the same (expensive) restore waits until then. */
  #failed: { at: number; message: string } | null = null;

  constructor(o: BackupBootstrapOptions) {
    if (o.config.bootstrap.pgbackrest === undefined) throw new PgHaError('PGHA_CONFIG_INVALID', 'bootstrap.pgbackrest is not set');
    this.#c = o.config;
    this.#b = o.config.bootstrap.pgbackrest;
    this.#log = o.logger;
    this.#where = o.configPath === undefined ? 'bootstrap.pgbackrest' : `bootstrap.pgbackrest in ${o.configPath}`;
    this.#now = o.now ?? Date.now;
  }

  /** Fill the (empty, existing) data directory from the source and promote it; PostgreSQL is stopped after. */
  async run(pg: BootstrapPg): Promise<void> {
    if (this.#failed !== null && this.#now() - this.#failed.at < RETRY_AFTER_RESTORE_MS) {
      const again = new Date(this.#failed.at + RETRY_AFTER_RESTORE_MS).toISOString();
      throw new PgHaError('PGHA_BOOTSTRAP', `the restore from stanza ${this.#b.stanza} failed (${this.#failed.message}); the same restore is not tried again before ${again}: fix ${this.#where} and restart the agent`);
    }
    const src = sourceConfig(this.#c);
    try {
      await this.#prepare(src);
      await this.#check(src);
      const started = Date.now();
      this.#log.info({ event: 'bootstrap restore', stanza: this.#b.stanza, target: this.#b.target, set: this.#b.set ?? null }, `restoring stanza ${this.#b.stanza} to bootstrap a new cluster`);
      try {
        await this.#restore(src);
        const lsn = await this.#recover(pg);
        this.#log.info({ event: 'bootstrap restored', stanza: this.#b.stanza, lsn, ms: Date.now() - started }, `restored stanza ${this.#b.stanza} and promoted at ${lsn}`);
      } catch (err) {
        this.#failed = { at: this.#now(), message: describeError(err).message };
        throw err;
      }
    } finally {
      // The source's repository credentials stay only as long as they are needed.
      await unlink(backupPaths(src).conf).catch(() => undefined);
    }
  }

  async #prepare(src: BackupNodeConfig): Promise<void> {
    for (const d of backupDirs(backupPaths(src))) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chmod(d, 0o700);
    }
    await writeAtomic(backupPaths(src).conf, renderPgbackrestConf(src), undefined);
  }

  /** Step 1: the source can restore to the target, and this cluster's stanza is new. */
  async #check(src: BackupNodeConfig): Promise<void> {
    const info = parseInfo((await this.#info(src, 'the source')).stdout);
    const problem = sourceProblem(this.#b, info);
    if (problem !== null) throw new PgHaError('PGHA_BOOTSTRAP_SOURCE', `${this.#where}: ${problem}`);
    const own = stanzaOf(this.#c);
    const mine = parseInfo((await this.#info(this.#c, 'this cluster\'s')).stdout).find((s) => s.stanza === own);
    if (mine !== undefined && mine.status_code !== 1) {
      throw new PgHaError('PGHA_BOOTSTRAP_SOURCE', `stanza ${own} (backup.stanza) already exists in this cluster's repository (${mine.status}): a new cluster needs a new stanza; choose another backup.stanza or remove the old one (pgbackrest stanza-delete)`);
    }
  }

  async #info(c: BackupNodeConfig, whose: string) {
    try {
      return await pgbackrest(c, 'info', ['--output=json'], INFO_TIMEOUT_MS);
    } catch (err) {
      throw new PgHaError('PGHA_BOOTSTRAP_SOURCE', `${this.#where}: cannot read ${whose} repository: ${describeError(err).message}`, { cause: err });
    }
  }

  /** Step 2: the restore; restore_command reads the source's archive through the source's conf. */
  async #restore(src: BackupNodeConfig): Promise<void> {
    const restoreCommand = String(archiveParameters(src).restore_command);
    await pgbackrest(src, 'restore', [...targetArgs(this.#b), `--recovery-option=restore_command=${restoreCommand}`], this.#c.backup.backup_timeout * 1000);
  }

  /** Steps 3-5. Returns the LSN at which the new timeline started. */
  async #recover(pg: BootstrapPg): Promise<string> {
    const dir = pg.dataDir;
    const su = this.#c.postgresql.authentication.superuser;
    // A data directory backed up from a Debian cluster has no postgresql.conf (it lives in /etc).
    const confPath = join(dir, 'postgresql.conf');
    const conf = existsSync(confPath) ? readFileSync(confPath, 'utf8') : '# Written by pgha: the restored data directory had no postgresql.conf.\n';
    if (!/^\s*include_if_exists\s*=\s*'pgha\.conf'/m.test(conf)) {
      await writeAtomic(confPath, `${conf}\n# pgha: its settings, which win over the lines above.\ninclude_if_exists = 'pgha.conf'\n`, pg.runAs);
    }
    if (!existsSync(join(dir, 'pg_ident.conf'))) await writeAtomic(join(dir, 'pg_ident.conf'), '', pg.runAs);
    // The source's ALTER SYSTEM archiving settings would win over pgha.conf and, from the
    // promotion on, push this cluster's WAL into the source's archive: removed before the start.
    const autoPath = join(dir, 'postgresql.auto.conf');
    if (existsSync(autoPath)) {
      const auto = readFileSync(autoPath, 'utf8');
      const kept = auto.split('\n').filter((l) => !ARCHIVE_SETTING.test(l)).join('\n');
      if (kept !== auto) await writeAtomic(autoPath, kept, pg.runAs);
    }
    await unlink(join(dir, 'standby.signal')).catch(() => undefined);
    await writeAtomic(join(dir, 'pg_hba.conf'), `# pgha: bootstrap from a backup, recovery only (replaced after the promotion)\nlocal all "${su.username.replace(/"/g, '""')}" trust\n`, pg.runAs);
    await writeAtomic(join(dir, 'pgha.conf'), pg.recoveryConf(), pg.runAs);
    const limitS = this.#c.backup.backup_timeout;
    try {
      await pg.startRecovery(limitS);
    } catch (err) {
      throw this.#recoveryFailed(pg, err);
    }
    const session = {
      host: this.#c.postgresql.socket_dir, port: splitHostPort(this.#c.postgresql.listen).port,
      user: su.username, password: su.password, statementTimeoutMs: POLL_QUERY_MS,
    };
    const deadline = Date.now() + limitS * 1000;
    for (;;) {
      if (livePostmaster(dir) === null) throw this.#recoveryFailed(pg, null);
      const r = await withSession(session, async (s) => (await s.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r).catch(() => true);
      if (r === false) break;
      if (Date.now() > deadline) throw new PgHaError('PGHA_BOOTSTRAP', `recovery of the restored stanza ${this.#b.stanza} did not end within backup.backup_timeout (${limitS} s)`);
      await new Promise((res) => setTimeout(res, POLL_EVERY_MS));
    }
    const lsn = await withSession({ ...session, statementTimeoutMs: ADMIN_MS }, async (s) => {
      for (const o of RECOVERY_OPTIONS) await s.query(`alter system reset ${o}`);
      return (await s.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn ?? '?';
    });
    await pg.createRoles();
    await pg.stop('fast');
    await writeAtomic(join(dir, 'pg_hba.conf'), pg.finalHba(), pg.runAs);
    return lsn;
  }

  #recoveryFailed(pg: BootstrapPg, err: unknown): PgHaError {
    const fatal = fatalLines(pg.logfile);
    const hint = this.#b.target === 'latest' ? '' : ' (is the target inside the archive: after the backup and before its end, a restore point that exists?)';
    return new PgHaError('PGHA_BOOTSTRAP_SOURCE', `${this.#where}: recovery of stanza ${this.#b.stanza} failed${hint}: ${fatal === '' ? describeError(err ?? 'the server exited').message : fatal}`, err === null ? undefined : { cause: err });
  }
}
