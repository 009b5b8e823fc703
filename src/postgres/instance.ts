// The local PostgreSQL, driven through Debian's binaries (initdb, pg_ctl, pg_basebackup,
// pg_rewind, pg_controldata) and one health client. Implements PostgresControl.
//
// Files kept beside the data directory, never inside it (pg_basebackup and pg_rewind copy the
// data directory, and these are per member): `<data_dir>.pgpass` (or postgresql.pgpass, mode
// 0600: the replication and rewind passwords), `<data_dir>.log` (the server log, pg_ctl -l),
// `<data_dir>.initpw` (the superuser password, only while initdb runs), `<data_dir>.unfinished`
// (while initdb, a restore, pg_basebackup or a wipe writes into the directory). With `runAs`, every child
// runs as that OS user and every file written here is owned by it.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chown, open, readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { splitHostPort, type DynamicConfig, type NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { LocalPostgres, SyncMethod, UnfinishedStep } from '../ha/types.ts';
import { CURRENT_TIMELINE_SQL, parseLsn } from './lsn.ts';
import type { Logger } from '../log/logger.ts';
import { syncStandbyNames } from '../ha/quorum.ts';
import { WITNESS_NAME, witnessedSyncNames } from '../witness/names.ts';
import { confValue, defaultHba, peerPgpass, renderHba, renderPghaConf, renderPgpass, sslParameters, syncNamesFromConf, upstreamFromConf, type StandbyConf } from './conf.ts';
import { readControlData, type ControlData } from './controldata.ts';
import { adoptPatroniConf } from './patroni-conf.ts';
import { childPids, ensureDataDir, fatalLines, fsyncDir, isInitialized, livePostmaster, pidFromFile, waitForExit, waitForReap, wipeContents, writeAtomic, writeFresh } from './datadir.ts';
import { run, type RunAs } from './exec.ts';
import { Probe, withSession } from './probe.ts';
import { SOURCE_STATE_SQL, parseSourceState, sourceRecovery, upstreamTarget } from './source.ts';
import { peerConninfo } from './conf.ts';
import type { SourceState } from '../ha/types.ts';
import { cloneFrom, rewindFrom, type ReplicationContext } from './replication.ts';
import { createRoles } from './roles.ts';
import { ensureSlots } from './slots.ts';
import { installSlotStates, readSlotStates, readStoppedSlotPositions, type SlotState } from './slot-copy.ts';
import { slotNameFor, type PostgresControl, type Upstream } from './types.ts';
import type { BootstrapPg } from '../backup/bootstrap.ts';

export { lookupOsUser, type RunAs } from './exec.ts';

export interface PostgresControlOptions {
  config: NodeConfig;
  dynamic: () => DynamicConfig;
  logger: Logger;
  /** Run the binaries as this OS user and give it every file written (tests run as root). */
  runAs?: RunAs;
  /** The health connection dropped without being closed by us: PostgreSQL may have crashed. */
  onConnectionLost?: () => void;
  /** The node configuration file, named in errors about data_dir. */
  configPath?: string;
  /**
   * create_replica_methods starts with pgbackrest: fill the empty data directory from the backup
   * repository before falling back to pg_basebackup.
   */
  restoreReplica?: () => Promise<void>;
  /**
   * Same: a reinit (or a re-clone after a failed rewind) of a data directory of `systemId` keeps
   * it and restores the backup over it with `pgbackrest restore --delta` (src/backup/agent.ts).
   */
  deltaRestore?: (systemId: string) => Promise<void>;
  /** bootstrap.method: pgbackrest: fills the data directory instead of initdb (src/backup/bootstrap.ts). */
  bootstrapRestore?: (pg: BootstrapPg) => Promise<void>;
  /** Parameters layered last into pgha.conf (archive_command etc. from the backup: section). */
  extraParameters?: () => Record<string, string | number | boolean>;
}

export function createPostgresControl(o: PostgresControlOptions): PostgresControl {
  return new LocalInstance(o);
}

/** initdb options pgha sets itself; bootstrap.initdb may not override them. */
const RESERVED_INITDB = new Set(['pgdata', 'username', 'pwfile', 'pwprompt', 'auth', 'auth-host', 'auth-local']);
/** initdb writes and fsyncs about a thousand files: seconds normally, two minutes on a slow disk. */
const INITDB_TIMEOUT_MS = 120_000;
/** How long start() waits for init to reap a crashed postmaster (see start()). */
const ZOMBIE_WAIT_MS = 5000;
/** Statements run once at bootstrap or promotion (CREATE ROLE, GRANT): quick, but not loop-bound. */
const ADMIN_STATEMENT_MS = 30_000;

const EMPTY: LocalPostgres = {
  dataDir: 'empty', systemId: null, controlState: 'unknown', running: false, accepting: false, role: null,
  timeline: null, lsn: null, streaming: false, upstream: null, pendingRestart: false, syncStandbys: [],
  syncSetting: '', replicas: [], syncChangedAt: null,
};

class LocalInstance implements PostgresControl {
  readonly #o: PostgresControlOptions;
  readonly #c: NodeConfig;
  readonly #probe: Probe;
  readonly #passfile: string;
  readonly #logfile: string;
  #control: { mtimeNs: bigint; data: ControlData } | null = null;
  /** synchronous_standby_names pgha.conf renders for this primary ('' = asynchronous). */
  #syncNames = '';
  /** The same without the lease witness, as src/ha renders it (null: not set since the agent started). */
  #syncPlain: string | null = null;
  /**
   * Every entry of the data directory was made by pgha (or by initdb, pg_basebackup, pg_rewind
   * run by it): the directory was found empty (or missing) before initdb or a clone, or pgha
   * emptied it. Only then, or when it holds a PostgreSQL data directory, may wipe() empty it.
   */
  #ours = false;
  /**
   * `<data_dir>.delta-restore`: a reinit kept this data directory (of the system id written in
   * it) for a delta restore. While it exists and the server is stopped, observe() reports the
   * directory empty, so the loop clones, and clone() restores over the kept files.
   */
  readonly #deltaMarker: string;
  /**
   * `<data_dir>.unfinished` (src/ha/types.ts LocalPostgres.unfinished): written, fsynced, once the
   * directory was found empty (or emptied by pgha) and before initdb, a restore, pg_basebackup or a
   * wipe writes into it; removed once the result is complete. An agent that dies in between finds
   * it on start: the contents are its own, and decide() has them emptied to start over.
   */
  readonly #unfinishedMarker: string;

  constructor(o: PostgresControlOptions) {
    this.#o = o;
    this.#c = o.config;
    const pgc = o.config.postgresql;
    this.#passfile = pgc.pgpass ?? `${pgc.data_dir}.pgpass`;
    this.#logfile = `${pgc.data_dir}.log`;
    this.#deltaMarker = `${pgc.data_dir}.delta-restore`;
    this.#unfinishedMarker = `${pgc.data_dir}.unfinished`;
    try { this.#syncNames = syncNamesFromConf(readFileSync(this.#path('pgha.conf'), 'utf8')); } catch { /* none yet */ }
    this.#probe = new Probe({
      socketDir: pgc.socket_dir, port: splitHostPort(pgc.listen).port,
      user: pgc.authentication.superuser.username, password: pgc.authentication.superuser.password,
      // One health query must fit inside the loop's per-call deadline.
      budgetMs: () => Math.round(o.dynamic().retry_timeout * 1000),
      ...(o.onConnectionLost ? { onLost: o.onConnectionLost } : {}),
    });
  }

  get #dir(): string { return this.#c.postgresql.data_dir; }
  get #runAs(): RunAs | undefined { return this.#o.runAs; }
  #path(file: string): string { return join(this.#dir, file); }
  /** pg_ctl's own -t fires first with a clear message; 5 s more only catches a hung pg_ctl. */
  get #ctlTimeoutMs(): number { return this.#c.postgresql.pg_ctl_timeout * 1000 + 5000; }

  get #secrets(): string[] {
    const a = this.#c.postgresql.authentication;
    return [a.superuser.password, a.replication.password, a.rewind?.password ?? '', ...Object.values(this.#c.bootstrap.users).map((u) => u.password)];
  }

  #exec(bin: string, args: string[], timeoutMs: number, env: Record<string, string> = {}) {
    this.#o.logger.debug({ event: 'pg command', bin, sub: args[0] }, `running ${bin}`);
    return run(join(this.#c.postgresql.bin_dir, bin), args, { timeoutMs, runAs: this.#runAs, env, secrets: this.#secrets });
  }

  async #controlData(running: boolean): Promise<ControlData | null> {
    // While the server runs, pg_control changes with every checkpoint and restartpoint but the
    // decision only needs the system id, which never changes: keep the first reading.
    if (running && this.#control !== null) return this.#control.data;
    const st = statSync(this.#path('global/pg_control'), { bigint: true, throwIfNoEntry: false });
    if (st === undefined) return null;
    if (this.#control?.mtimeNs === st.mtimeNs) return this.#control.data;
    const data = await readControlData(this.#c.postgresql.bin_dir, this.#dir, this.#runAs);
    this.#control = { mtimeNs: st.mtimeNs, data };
    return data;
  }

  async observe(): Promise<LocalPostgres> {
    let local: LocalPostgres;
    try {
      local = await this.#observe();
    } catch {
      local = { ...EMPTY, dataDir: isInitialized(this.#dir) ? 'initialized' : this.#foreignEntries().length > 0 ? 'foreign' : 'empty' };
    }
    const unfinished = this.#unfinished();
    if (unfinished === null) return local;
    // A bootstrap is kept when /initialize holds its system id: a pg_control that exists but could
    // not be read this time must not pass for a half-made directory (decide() would empty it).
    if (unfinished === 'bootstrap' && local.dataDir === 'initialized' && local.systemId === null && existsSync(this.#path('global/pg_control'))) return local;
    return { ...local, unfinished };
  }

  /** The step the `<data_dir>.unfinished` marker names, or null (no marker, or not one of ours). */
  #unfinished(): UnfinishedStep | null {
    let text: string;
    try {
      text = readFileSync(this.#unfinishedMarker, 'utf8').trim();
    } catch {
      return null;
    }
    return text === 'bootstrap' || text === 'clone' || text === 'wipe' ? text : null;
  }

  /** Write the marker (fsynced, with its directory) before `step` writes into the data directory. */
  async #markUnfinished(step: UnfinishedStep): Promise<void> {
    await writeAtomic(this.#unfinishedMarker, `${step}\n`, this.#runAs);
    this.#ours = true;
  }

  async settle(): Promise<void> {
    if (!existsSync(this.#unfinishedMarker)) return;
    await unlink(this.#unfinishedMarker);
    await fsyncDir(dirname(this.#unfinishedMarker));
  }

  /** Entries of a data directory without PG_VERSION (none when it is missing or initialized). */
  #foreignEntries(): string[] {
    if (isInitialized(this.#dir)) return [];
    try {
      return readdirSync(this.#dir);
    } catch {
      return [];
    }
  }

  /**
   * Refuse to write a new data directory (initdb, pg_basebackup) into a directory holding other
   * files; else mark it as `step`'s until the result is complete.
   */
  async #claimEmptyDir(what: string, step: UnfinishedStep): Promise<void> {
    const found = isInitialized(this.#dir) ? ['PG_VERSION'] : this.#foreignEntries();
    if (found.length > 0) throw this.#unsafe(found, `refusing to run ${what} into it`);
    await ensureDataDir(this.#dir, this.#runAs);
    await this.#markUnfinished(step);
  }

  #unsafe(found: string[], refusal: string): PgHaError {
    const where = this.#o.configPath === undefined ? 'postgresql.data_dir' : `postgresql.data_dir in ${this.#o.configPath}`;
    const list = found.slice(0, 5).join(', ') + (found.length > 5 ? `, ... (${found.length} entries)` : '');
    return new PgHaError('PGHA_DATA_DIR_UNSAFE',
      `${this.#dir} (${where}) is not empty (${list})${found.includes('PG_VERSION') ? '' : ' and holds no PostgreSQL data directory (no PG_VERSION)'}: ${refusal}; ` +
      'point data_dir at an empty directory of its own, e.g. a subdirectory of a mount point');
  }

  async #observe(): Promise<LocalPostgres> {
    if (!isInitialized(this.#dir)) return this.#foreignEntries().length > 0 ? { ...EMPTY, dataDir: 'foreign' } : EMPTY;
    const running = livePostmaster(this.#dir) !== null;
    if (!running && this.#deltaPending() !== null) return EMPTY;
    const cd = await this.#controlData(running).catch(() => null);
    const standby = existsSync(this.#path('standby.signal'));
    const local: LocalPostgres = {
      ...EMPTY, dataDir: 'initialized', systemId: cd?.systemId ?? null, running, timeline: cd?.timeline ?? null,
      // standby.signal is what we wrote last: it beats a pg_control copied by pg_basebackup.
      controlState: standby ? 'standby' : (cd?.state ?? 'unknown'),
      upstream: standby ? this.#configuredUpstream() : null,
    };
    if (!running) {
      this.#probe.discard();
      return local;
    }
    // Raw facts only: what the agent remembers (a standby's timeline only grows, the position
    // read when the synchronous setting changed) is added by perceive() (src/ha/memory.ts).
    try {
      const h = await this.#probe.health();
      return {
        ...local, accepting: true, role: h.inRecovery ? 'standby' : 'primary', timeline: h.timeline ?? local.timeline, replayTimeline: h.timeline,
        lsn: h.lsn, streaming: h.streaming, receivingFrom: h.sender, pendingRestart: h.pendingRestart,
        // The lease witness is no member: src/ha sees the setting and the standbys without it.
        syncStandbys: h.syncStandbys.filter((n) => n !== WITNESS_NAME),
        syncSetting: h.syncSetting === this.#syncNames && this.#syncPlain !== null ? this.#syncPlain : h.syncSetting,
        replicas: h.replicas.filter((r) => r.name !== WITNESS_NAME), stats: h.stats,
      };
    } catch {
      return local;
    }
  }

  #configuredUpstream(): string | null {
    try {
      return upstreamFromConf(readFileSync(this.#path('pgha.conf'), 'utf8'));
    } catch {
      return null;
    }
  }

  async initdb(): Promise<void> {
    const pgc = this.#c.postgresql;
    const pwfile = `${this.#dir}.initpw`;
    await this.#claimEmptyDir('initdb', 'bootstrap');
    await ensureDataDir(this.#dir, this.#runAs);
    if (this.#o.bootstrapRestore !== undefined) {
      this.#control = null;
      return this.#o.bootstrapRestore(this.#bootstrapPg());
    }
    await writeFresh(pwfile, pgc.authentication.superuser.password, this.#runAs);
    const args = ['-D', this.#dir, '--data-checksums', '--auth-local=scram-sha-256', '--auth-host=scram-sha-256',
      `--username=${pgc.authentication.superuser.username}`, `--pwfile=${pwfile}`, ...this.#initdbOptions()];
    this.#control = null;
    try {
      await this.#exec('initdb', args, INITDB_TIMEOUT_MS);
    } finally {
      await unlink(pwfile).catch(() => undefined);
    }
    const conf = await readFile(this.#path('postgresql.conf'), 'utf8');
    await writeAtomic(this.#path('postgresql.conf'), `${conf}\n# pgha: its settings, which win over the lines above.\ninclude_if_exists = 'pgha.conf'\n`, this.#runAs);
    await writeAtomic(this.#path('pg_hba.conf'), this.#hbaText(), this.#runAs);
    await this.#writePassfile(null);
  }

  #hbaText(): string {
    const pgc = this.#c.postgresql;
    const a = pgc.authentication;
    return renderHba(this.#c.bootstrap.pg_hba ?? defaultHba({
      superuser: a.superuser.username, replication: a.replication.username, rewind: a.rewind?.username ?? null, ssl: pgc.ssl !== undefined,
    }));
  }

  /** What bootstrap.method pgbackrest needs of this server (src/backup/bootstrap.ts). */
  #bootstrapPg(): BootstrapPg {
    const pgc = this.#c.postgresql;
    return {
      dataDir: this.#dir, logfile: this.#logfile, runAs: this.#runAs,
      // Recovery of another cluster's data: no TCP listener and a socket only the server's OS
      // user reaches, while pg_hba.conf trusts the local superuser (see bootstrap.ts).
      recoveryConf: () => renderPghaConf({
        port: this.#port, listenHost: '', socketDir: pgc.socket_dir, standby: null, syncNames: '',
        parameters: [this.#o.dynamic().postgresql.parameters, pgc.parameters, this.#o.extraParameters?.() ?? {}, { unix_socket_permissions: '0700' }],
      }),
      finalHba: () => this.#hbaText(),
      startRecovery: async (seconds) => {
        await this.#touchLog();
        await this.#exec('pg_ctl', ['start', '-D', this.#dir, '-w', '-t', String(seconds), '-l', this.#logfile], seconds * 1000 + 5000);
      },
      stop: (mode) => this.stop(mode),
      createRoles: async () => { await this.#writePassfile(null); await this.createRoles(); },
    };
  }

  /** Patroni's format: a string is a flag, a map gives `--key=value`. data-checksums is always on. */
  #initdbOptions(): string[] {
    const args: string[] = [];
    for (const opt of this.#c.bootstrap.initdb) {
      const pairs: Array<[string, string | null]> = typeof opt === 'string' ? [[opt, null]] : Object.entries(opt).map(([k, v]) => [k, String(v)]);
      for (const [k, v] of pairs) {
        if (RESERVED_INITDB.has(k)) throw new PgHaError('PGHA_CONFIG_INVALID', `bootstrap.initdb: pgha sets --${k} itself`);
        if (k !== 'data-checksums') args.push(v === null ? `--${k}` : `--${k}=${v}`);
      }
    }
    return args;
  }

  async createRoles(): Promise<void> {
    const su = this.#c.postgresql.authentication.superuser;
    await withSession(
      { host: this.#c.postgresql.socket_dir, port: this.#port, user: su.username, password: su.password, statementTimeoutMs: ADMIN_STATEMENT_MS },
      (c) => createRoles(c, this.#c),
    );
  }

  get #port(): number { return splitHostPort(this.#c.postgresql.listen).port; }

  /** pg_rewind's role: the rewind role, else the superuser. */
  get #rewinder() {
    const a = this.#c.postgresql.authentication;
    return a.rewind ?? a.superuser;
  }

  /**
   * The passfile holds passwords for `peer` only (a `*` entry would hand them to whatever host a
   * member key names): the replication role's, plus the rewind role's while rewinding from it.
   */
  async #writePassfile(peer: Upstream | null, rewind = false): Promise<void> {
    const roles = [this.#c.postgresql.authentication.replication, ...(rewind ? [this.#rewinder] : [])];
    const entries = peerPgpass(peer === null ? null : upstreamTarget(peer).peers, roles);
    await writeAtomic(this.#passfile, renderPgpass(entries), this.#runAs);
  }

  #standbyConf(up: Upstream | null): StandbyConf | null {
    if (up === null) return null;
    const { host, port, extra } = upstreamTarget(up);
    const r = this.#c.postgresql.authentication.replication;
    const slot = up.source !== undefined ? up.source.primary_slot_name ?? null : this.#o.dynamic().postgresql.use_slots ? slotNameFor(this.#c.name) : null;
    return {
      host, port, extra, recovery: up.source === undefined ? {} : sourceRecovery(up.source), user: r.username, tls: r, passfile: this.#passfile,
      applicationName: this.#c.name, slot, upstreamName: up.name,
    };
  }

  #confText(up: Upstream | null, standby: boolean): string {
    const pgc = this.#c.postgresql;
    return renderPghaConf({
      port: this.#port, listenHost: splitHostPort(pgc.listen).host, socketDir: pgc.socket_dir,
      parameters: [this.#o.dynamic().postgresql.parameters, pgc.parameters, sslParameters(pgc.ssl), this.#o.extraParameters?.() ?? {}],
      standby: standby ? this.#standbyConf(up) : null,
      // With the lease witness a standby keeps the setting too (a standby ignores it): the moment
      // recovery ends, the promoted server already waits for the witness.
      syncNames: standby && !this.#witness ? '' : this.#syncNames,
    });
  }

  async #renderConf(up: Upstream | null, standby: boolean): Promise<void> {
    // A data directory Patroni managed (live migration): make postgresql.conf include pgha.conf.
    if (await adoptPatroniConf(this.#dir, this.#runAs)) {
      this.#o.logger.warn({ event: 'patroni conf adopted' }, 'postgresql.conf was Patroni\'s: kept as postgresql.conf.patroni, replaced by one that includes pgha.conf');
    }
    await this.#writePassfile(standby ? up : null);
    await writeAtomic(this.#path('pgha.conf'), this.#confText(up, standby), this.#runAs);
  }

  async #configureStandby(from: Upstream | null): Promise<void> {
    await this.#renderConf(from, true);
    await writeAtomic(this.#path('standby.signal'), '', this.#runAs);
  }

  async setSyncNames(names: string[] | null, count: number, method: SyncMethod): Promise<boolean> {
    const plain = syncStandbyNames(names, count, method);
    const want = this.#witness ? witnessedSyncNames(names, count, method) : plain;
    this.#syncPlain = plain;
    const changed = want !== this.#syncNames;
    this.#syncNames = want;
    await this.applyConfig(null);
    return changed;
  }

  async flushLsn(): Promise<number | null> {
    const [r] = await this.#probe.query<{ lsn: string }>('select pg_current_wal_flush_lsn()::text as lsn');
    return r === undefined ? null : parseLsn(r.lsn);
  }

  async applyConfig(upstream: Upstream | null): Promise<boolean> {
    if (livePostmaster(this.#dir) === null) return false;
    const standby = existsSync(this.#path('standby.signal'));
    const want = this.#confText(upstream, standby);
    let have = '';
    try { have = readFileSync(this.#path('pgha.conf'), 'utf8'); } catch { /* rewrite */ }
    if (have === want) return false;
    await this.#renderConf(upstream, standby);
    await this.reload();
    return true;
  }

  async start(as: 'primary' | 'standby', upstream: Upstream | null): Promise<void> {
    if (as === 'standby') await this.#configureStandby(upstream);
    else {
      await this.#renderConf(null, false);
      await unlink(this.#path('standby.signal')).catch(() => undefined);
    }
    if (livePostmaster(this.#dir) !== null) return;
    // The agent acts within milliseconds of a postmaster crash (the health connection drops), often
    // before init has reaped the dead postmaster; PostgreSQL would refuse to start meanwhile, and
    // three refusals in a row cost a failover. Init reaps in milliseconds on a normal host; 5 s
    // covers a slow container init (seen at about 1 s here). Past that, start anyway and report.
    const old = pidFromFile(this.#dir);
    if (old !== null && !(await waitForReap(old, ZOMBIE_WAIT_MS))) {
      this.#o.logger.warn({ event: 'zombie postmaster', pid: old }, `the old postmaster ${old} is still not reaped; starting anyway`);
    }
    // Not a live postmaster's: a stale file whose PID was reused would make the server refuse to start.
    await unlink(this.#path('postmaster.pid')).catch(() => undefined);
    await this.#touchLog();
    const t = String(this.#c.postgresql.pg_ctl_timeout);
    try {
      // -w: wait until the server accepts connections (read-only ones, for a standby).
      await this.#exec('pg_ctl', ['start', '-D', this.#dir, '-w', '-t', t, '-l', this.#logfile], this.#ctlTimeoutMs);
    } catch (err) {
      const fatal = fatalLines(this.#logfile);
      throw fatal === '' ? err : new PgHaError('PGHA_PG_COMMAND', `${(err as Error).message} | log: ${fatal}`, { cause: err });
    }
  }

  /** The server log exists, owned by the server's user, mode 0600 (it may hold query text). */
  async #touchLog(): Promise<void> {
    const fh = await open(this.#logfile, 'a', 0o600);
    await fh.close();
    if (this.#runAs !== undefined) await chown(this.#logfile, this.#runAs.uid, this.#runAs.gid);
  }

  async stop(mode: 'smart' | 'fast' | 'immediate'): Promise<void> {
    this.#probe.discard();
    const pid = livePostmaster(this.#dir);
    if (pid === null) return;
    if (mode === 'immediate') return this.#stopImmediate(pid);
    const t = String(this.#c.postgresql.pg_ctl_timeout);
    await this.#exec('pg_ctl', ['stop', '-D', this.#dir, '-m', mode, '-w', '-t', t], this.#ctlTimeoutMs)
      .catch((err: unknown) => { if (livePostmaster(this.#dir) !== null) throw err; });
  }

  /**
   * Immediate shutdown, used to fence a primary against its lease deadline: SIGQUIT to the
   * postmaster is exactly what `pg_ctl stop -m immediate` sends, without spawning pg_ctl and
   * without its 100 ms polling. The postmaster SIGQUITs every backend (no more commits from
   * here), SIGKILLs those still alive after 5 s, and exits once all are gone, which we poll for
   * every 10 ms. Bounded by pg_ctl_timeout like any stop.
   */
  async #stopImmediate(pid: number): Promise<void> {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      return; // exited in between
    }
    if (!(await waitForExit(pid, this.#c.postgresql.pg_ctl_timeout * 1000))) {
      throw new PgHaError('PGHA_PG_COMMAND', `postmaster ${pid} still alive ${this.#c.postgresql.pg_ctl_timeout} s after SIGQUIT`);
    }
  }

  async follow(upstream: Upstream | null): Promise<void> {
    await this.#configureStandby(upstream);
    await this.reload();
  }

  /** SIGHUP to the postmaster, as `pg_ctl reload` would send (primary_conninfo reloads on PostgreSQL 13+). */
  async reload(): Promise<void> {
    const pid = livePostmaster(this.#dir);
    if (pid === null) throw new PgHaError('PGHA_PG_NOT_RUNNING', 'cannot reload: PostgreSQL is not running');
    process.kill(pid, 'SIGHUP');
  }

  get #witness(): boolean {
    return this.#c.postgresql.lease_witness;
  }

  async promote(): Promise<{ timeline: number; lsn: string }> {
    if (this.#witness && this.#syncNames === '') {
      // A standby that never ran as primary under this agent: list the witness before recovery
      // ends, so no commit of the new primary is acknowledged without it (a reload; a standby ignores it).
      this.#syncNames = witnessedSyncNames(null, 0);
      this.#syncPlain = '';
      const path = this.#path('pgha.conf');
      const text = readFileSync(path, 'utf8').replace(/^synchronous_standby_names = .*$/m, `synchronous_standby_names = ${confValue(this.#syncNames)}`);
      await writeAtomic(path, text, this.#runAs);
      await this.reload();
    }
    const su = this.#c.postgresql.authentication.superuser;
    const wait = this.#c.postgresql.pg_ctl_timeout;
    // pg_promote(true, wait) returns once recovery has ended (true) or after `wait` s (false);
    // the statement may run 5 s past that before the server cancels it.
    const session = { host: this.#c.postgresql.socket_dir, port: this.#port, user: su.username, password: su.password, statementTimeoutMs: (wait + 5) * 1000 };
    const r = await withSession(session, async (c) => {
      const done = await c.query<{ ok: boolean }>('select pg_promote(true, $1) as ok', [wait]);
      if (done.rows[0]?.ok !== true) throw new PgHaError('PGHA_PG_COMMAND', `pg_promote did not finish within ${wait} s`);
      const now = await c.query<{ tli: number; lsn: string }>(
        `select ${CURRENT_TIMELINE_SQL} as tli, pg_current_wal_lsn()::text as lsn`);
      return now.rows[0];
    }).catch((err: unknown) => {
      throw err instanceof PgHaError ? err : new PgHaError('PGHA_PG_COMMAND', `promote: ${(err as Error).message}`, { cause: err });
    });
    if (r === undefined) throw new PgHaError('PGHA_PG_COMMAND', 'promote: no position after promotion');
    await unlink(this.#path('standby.signal')).catch(() => undefined); // the server removed it already
    await this.#renderConf(null, false);
    await this.reload();
    return { timeline: r.tli, lsn: r.lsn };
  }

  async readSource(source: Upstream): Promise<SourceState> {
    const target = upstreamTarget(source);
    // A passfile of its own: the main one names the upstream primary_conninfo uses right now.
    const passfile = `${this.#passfile}.source`;
    try {
      await writeAtomic(passfile, renderPgpass(peerPgpass(target.peers, [this.#rewinder])), this.#runAs);
      const info = peerConninfo(target.host, target.port, this.#rewinder.username, this.#rewinder, [
        ['dbname', 'postgres'], ['connect_timeout', 2], ['options', '-c statement_timeout=2000'], ...target.extra,
      ]);
      // connect_timeout 2 s per host, the statement 2 s: 3 s more than that is a hung psql.
      const r = await run(join(this.#c.postgresql.bin_dir, 'psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', info, '-c', SOURCE_STATE_SQL], {
        timeoutMs: 2000 * target.peers.length + 5000, runAs: this.#runAs, env: { PGPASSFILE: passfile, PGAPPNAME: this.#c.name }, secrets: this.#secrets,
      });
      return parseSourceState(r.stdout);
    } catch (err) {
      const msg = (err as Error).message.split('\n').filter((l) => l.trim() !== '').slice(-1)[0] ?? 'failed';
      return { reachable: false, error: msg.slice(0, 300), systemId: null, timeline: null, lsn: null, writable: null };
    }
  }

  #replication(): ReplicationContext {
    return {
      dataDir: this.#dir, binDir: this.#c.postgresql.bin_dir, runAs: this.#runAs, name: this.#c.name, passfile: this.#passfile,
      replication: this.#c.postgresql.authentication.replication, rewinder: this.#rewinder, secrets: this.#secrets,
      writePassfile: (peer, rewind) => this.#writePassfile(peer, rewind), configureStandby: (from) => this.#configureStandby(from),
    };
  }

  async clone(from: Upstream): Promise<void> {
    this.#control = null;
    const kept = this.#deltaPending();
    if (kept !== null) {
      if (await this.#deltaFromBackup(from, kept)) return;
      await wipeContents(this.#dir, this.#runAs);
      await unlink(this.#deltaMarker).catch(() => undefined);
    }
    await this.#claimEmptyDir('pg_basebackup', 'clone');
    if (this.#o.restoreReplica === undefined || !(await this.#restoreFromBackup(from))) await cloneFrom(this.#replication(), from);
    // pg_basebackup exits 0 (or the restore returns) only once the copy is complete and synced,
    // with the WAL it needs; configureStandby ran last. A failure left the marker: the directory
    // was emptied again, or, if the agent dies first, the next start empties it.
    await this.settle();
  }

  /** The repository's newest backup as `from`'s standby; false (directory emptied again) when that fails. */
  async #restoreFromBackup(from: Upstream): Promise<boolean> {
    try {
      await ensureDataDir(this.#dir, this.#runAs);
      await this.#o.restoreReplica?.();
      await this.#configureStandby(from);
      return true;
    } catch (err) {
      this.#o.logger.warn({ event: 'replica restore failed', err: { message: (err as Error).message } }, 'restore from the backup repository failed; cloning with pg_basebackup');
      await wipeContents(this.#dir, this.#runAs);
      return false;
    }
  }

  /** The system id a reinit kept the data directory for (the marker), or null. */
  #deltaPending(): string | null {
    try {
      const id = readFileSync(this.#deltaMarker, 'utf8').trim();
      return /^\d+$/.test(id) && isInitialized(this.#dir) ? id : null;
    } catch {
      return null;
    }
  }

  /** pgbackrest restore --delta over the kept directory, as `from`'s standby; false when that fails. */
  async #deltaFromBackup(from: Upstream, systemId: string): Promise<boolean> {
    if (this.#o.deltaRestore === undefined) return false;
    try {
      await this.#o.deltaRestore(systemId);
      await this.#configureStandby(from);
      await unlink(this.#deltaMarker);
      this.#ours = true;
      return true;
    } catch (err) {
      this.#o.logger.warn({ event: 'delta restore failed', err: { message: (err as Error).message } }, 'delta restore from the backup repository failed; emptying the data directory and cloning afresh');
      return false;
    }
  }

  async rewind(from: Upstream): Promise<void> {
    if (livePostmaster(this.#dir) !== null) throw new PgHaError('PGHA_PG_COMMAND', 'cannot rewind a running server: stop it first');
    this.#control = null;
    await rewindFrom(this.#replication(), from);
  }

  async crash(): Promise<void> {
    this.#probe.discard();
    const pid = livePostmaster(this.#dir);
    if (pid === null) throw new PgHaError('PGHA_PG_NOT_RUNNING', 'no postmaster to crash');
    for (const c of [...childPids(pid), pid]) { try { process.kill(c, 'SIGKILL'); } catch { /* gone */ } }
  }

  async checkpointLsn(): Promise<number | null> {
    return (await this.#controlData(livePostmaster(this.#dir) !== null))?.checkpointLsn ?? null;
  }

  async wipe(o: { forReclone?: boolean } = {}): Promise<void> {
    if (livePostmaster(this.#dir) !== null) throw new PgHaError('PGHA_PG_COMMAND', 'refusing to wipe the data of a running server');
    // A clone follows and create_replica_methods starts with pgbackrest: keep a PostgreSQL data
    // directory for a delta restore (clone() empties it after all if that fails).
    if (o.forReclone === true && this.#o.deltaRestore !== undefined && isInitialized(this.#dir)) {
      const id = (await this.#controlData(false).catch(() => null))?.systemId ?? null;
      if (id !== null) {
        await writeAtomic(this.#deltaMarker, `${id}\n`, this.#runAs);
        this.#control = null;
        this.#o.logger.info({ event: 'delta restore planned', systemId: id }, 'data directory kept for a delta restore from the backup repository');
        return;
      }
    }
    await unlink(this.#deltaMarker).catch(() => undefined);
    // Only what pgha made: a PostgreSQL data directory, one pgha found empty and filled, or one
    // the marker says an earlier agent process found empty and was filling.
    const foreign = this.#foreignEntries();
    if (foreign.length > 0 && !this.#ours && this.#unfinished() === null) throw this.#unsafe(foreign, 'refusing to delete files pgha did not create');
    this.#control = null;
    // A kill halfway through the deletion leaves a directory without PG_VERSION but with the
    // rest: the marker makes the next start finish the job instead of refusing the directory.
    if (existsSync(this.#dir)) {
      await this.#markUnfinished('wipe');
      await wipeContents(this.#dir, this.#runAs);
    }
    this.#ours = true;
    await this.settle();
  }

  readSlotStates(from: Upstream, names: string[]): Promise<SlotState[]> {
    return readSlotStates(this.#replication(), from, names);
  }

  async installSlotStates(states: SlotState[]): Promise<void> {
    if (livePostmaster(this.#dir) !== null) throw new PgHaError('PGHA_PG_COMMAND', 'slot state files are installed only while PostgreSQL is stopped');
    await installSlotStates(this.#dir, states, this.#runAs);
  }

  async readStoppedSlotPositions(): Promise<Record<string, number>> {
    if (livePostmaster(this.#dir) !== null) throw new PgHaError('PGHA_PG_COMMAND', 'slot state files are read only while PostgreSQL is stopped');
    return readStoppedSlotPositions(this.#dir);
  }

  async ensureSlots(slotNames: string[], dropAbsent: boolean): Promise<void> {
    await ensureSlots(this.#probe, slotNames, dropAbsent);
  }

  async close(): Promise<void> {
    this.#probe.close();
  }
}
