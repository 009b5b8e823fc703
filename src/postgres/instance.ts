// The local PostgreSQL, driven through Debian's binaries (initdb, pg_ctl, pg_basebackup,
// pg_rewind, pg_controldata) and one health client. Implements PostgresControl.
import { chownSync, existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, chmod, mkdir, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import { splitHostPort } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { LocalPostgres } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import { defaultHba, renderHba, renderPghaConf, renderPgpass, syncStandbyNames, upstreamFromConf, type StandbyConf } from './conf.ts';
import { parseControlData, type ControlData } from './controldata.ts';
import { run, type RunAs } from './exec.ts';
import { formatLsn } from './lsn.ts';
import { Probe } from './probe.ts';
import { createRoles, ensureSlots } from './roles.ts';
import { slotNameFor, type PostgresControl, type Upstream } from './types.ts';

export { lookupOsUser } from './exec.ts';

export interface PostgresControlOptions {
  config: NodeConfig;
  dynamic: () => DynamicConfig;
  logger: Logger;
  runAs?: RunAs;
}

export function createPostgresControl(o: PostgresControlOptions): PostgresControl {
  return new LocalInstance(o);
}

class LocalInstance implements PostgresControl {
  readonly #o: PostgresControlOptions;
  readonly #c: NodeConfig;
  readonly #probe: Probe;
  readonly #passfile: string;
  readonly #logfile: string;
  #control: { mtimeMs: number; data: ControlData } | null = null;
  /** synchronous_standby_names this primary should run with ('' = asynchronous). */
  #syncNames = '';

  constructor(o: PostgresControlOptions) {
    this.#o = o;
    this.#c = o.config;
    const pgc = o.config.postgresql;
    // Outside the data directory, so pg_basebackup and pg_rewind never copy them.
    this.#passfile = `${pgc.pgpass ?? `${pgc.data_dir}.pgpass`}`;
    this.#logfile = `${pgc.data_dir}.log`;
    this.#probe = new Probe({
      socketDir: pgc.socket_dir, port: splitHostPort(pgc.listen).port,
      user: pgc.authentication.superuser.username, password: pgc.authentication.superuser.password,
      // One health query must fit well inside a loop: retry_timeout bounds it.
      budgetMs: Math.round(o.dynamic().retry_timeout * 1000),
    });
  }

  get #dir(): string { return this.#c.postgresql.data_dir; }
  #bin(name: string): string { return join(this.#c.postgresql.bin_dir, name); }
  get #ctlTimeoutMs(): number { return this.#c.postgresql.pg_ctl_timeout * 1000; }

  async #write(path: string, text: string, mode = 0o600): Promise<void> {
    await writeFile(path, text, { mode });
    if (this.#o.runAs) chownSync(path, this.#o.runAs.uid, this.#o.runAs.gid);
  }

  #exec(bin: string, args: string[], timeoutMs: number, env: Record<string, string> = {}) {
    return run(this.#bin(bin), args, { timeoutMs, runAs: this.#o.runAs, env });
  }

  #postmasterAlive(): boolean {
    try {
      const pid = Number(readFileSync(join(this.#dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (!Number.isInteger(pid) || pid <= 0) return false;
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  async #controlData(): Promise<ControlData | null> {
    const file = join(this.#dir, 'global', 'pg_control');
    if (!existsSync(file)) return null;
    const mtimeMs = statSync(file).mtimeMs;
    if (this.#control?.mtimeMs === mtimeMs) return this.#control.data;
    const { stdout } = await this.#exec('pg_controldata', ['-D', this.#dir], 10_000); // reads one 8 kB file
    this.#control = { mtimeMs, data: parseControlData(stdout) };
    return this.#control.data;
  }

  async observe(): Promise<LocalPostgres> {
    const empty: LocalPostgres = {
      dataDir: 'empty', systemId: null, controlState: 'unknown', running: false, accepting: false,
      role: null, timeline: null, lsn: null, streaming: false, upstream: null, pendingRestart: false, syncStandbys: [],
    };
    if (!existsSync(join(this.#dir, 'PG_VERSION'))) return empty;
    const cd = await this.#controlData().catch(() => null);
    const standbySignal = existsSync(join(this.#dir, 'standby.signal'));
    let upstream: string | null = null;
    try { upstream = upstreamFromConf(readFileSync(join(this.#dir, 'pgha.conf'), 'utf8')); } catch { /* none yet */ }
    const local: LocalPostgres = {
      ...empty, dataDir: 'initialized', systemId: cd?.systemId ?? null,
      // standby.signal is what we wrote last: it beats a pg_control copied by pg_basebackup.
      controlState: standbySignal ? 'standby' : (cd?.state ?? 'unknown'),
      timeline: cd?.timeline ?? null, running: this.#postmasterAlive(), upstream: standbySignal ? upstream : null,
    };
    if (!local.running) { this.#probe.discard(); return local; }
    try {
      const h = await this.#probe.health();
      return { ...local, accepting: true, role: h.inRecovery ? 'standby' : 'primary', timeline: h.timeline ?? local.timeline, lsn: h.lsn, streaming: h.streaming, pendingRestart: h.pendingRestart, syncStandbys: h.syncStandbys };
    } catch {
      return local;
    }
  }

  async initdb(): Promise<void> {
    const pgc = this.#c.postgresql;
    const pwfile = `${this.#dir}.initpw`;
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await this.#write(pwfile, pgc.authentication.superuser.password);
    const args = ['-D', this.#dir, '--data-checksums', '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', `--username=${pgc.authentication.superuser.username}`, `--pwfile=${pwfile}`];
    for (const opt of this.#c.bootstrap.initdb) {
      if (typeof opt === 'string') { if (opt !== 'data-checksums') args.push(`--${opt}`); }
      else for (const [k, v] of Object.entries(opt)) args.push(`--${k}=${String(v)}`);
    }
    try {
      // initdb writes and fsyncs a few hundred files: seconds normally, a minute on slow disks.
      await this.#exec('initdb', args, 120_000);
    } finally {
      await unlink(pwfile).catch(() => undefined);
    }
    await appendFile(join(this.#dir, 'postgresql.conf'), "\ninclude_if_exists = 'pgha.conf'\n");
    const auth = pgc.authentication;
    const hba = this.#c.bootstrap.pg_hba ?? defaultHba({ superuser: auth.superuser.username, replication: auth.replication.username, rewind: auth.rewind?.username ?? null });
    await this.#write(join(this.#dir, 'pg_hba.conf'), renderHba(hba));
  }

  async createRoles(): Promise<void> {
    await createRoles(this.#probe, this.#c);
  }

  async #writePassfile(): Promise<void> {
    const a = this.#c.postgresql.authentication;
    const entries = [a.replication, a.superuser, ...(a.rewind ? [a.rewind] : [])].map((cred) => ({ host: '*', port: '*' as const, database: '*', user: cred.username, password: cred.password }));
    await this.#write(this.#passfile, renderPgpass(entries));
  }

  #standbyConf(up: Upstream | null): StandbyConf | null {
    if (up === null) return null;
    const { host, port } = splitHostPort(up.conn);
    const useSlots = this.#o.dynamic().postgresql.use_slots;
    return {
      host, port, user: this.#c.postgresql.authentication.replication.username, passfile: this.#passfile,
      applicationName: this.#c.name, slot: useSlots ? slotNameFor(this.#c.name) : null, upstreamName: up.name,
    };
  }

  #confText(up: Upstream | null, standby: boolean): string {
    const pgc = this.#c.postgresql;
    const { host, port } = splitHostPort(pgc.listen);
    return renderPghaConf({
      port, listenHost: host, socketDir: pgc.socket_dir,
      parameters: [this.#o.dynamic().postgresql.parameters, pgc.parameters],
      standby: standby ? this.#standbyConf(up) : null,
      syncNames: standby ? '' : this.#syncNames,
    });
  }

  async setSyncNames(names: string[] | null, count: number): Promise<void> {
    this.#syncNames = syncStandbyNames(names, count);
    await this.applyConfig(null);
  }

  async #renderConf(up: Upstream | null, standby: boolean): Promise<void> {
    await this.#writePassfile();
    await this.#write(join(this.#dir, 'pgha.conf'), this.#confText(up, standby));
  }

  async applyConfig(upstream: Upstream | null): Promise<boolean> {
    if (!this.#postmasterAlive()) return false;
    const standby = existsSync(join(this.#dir, 'standby.signal'));
    const want = this.#confText(upstream, standby);
    let have = '';
    try { have = readFileSync(join(this.#dir, 'pgha.conf'), 'utf8'); } catch { /* rewrite */ }
    if (have === want) return false;
    await this.#write(join(this.#dir, 'pgha.conf'), want);
    await this.reload();
    return true;
  }

  async start(as: 'primary' | 'standby', upstream: Upstream | null): Promise<void> {
    await this.#renderConf(upstream, as === 'standby');
    const signal = join(this.#dir, 'standby.signal');
    if (as === 'standby') await this.#write(signal, '');
    else await unlink(signal).catch(() => undefined);
    if (this.#postmasterAlive()) return;
    await rm(join(this.#dir, 'postmaster.pid'), { force: true });
    // -w waits until the server accepts connections (or pg_ctl_timeout passes).
    await this.#exec('pg_ctl', ['start', '-D', this.#dir, '-w', '-t', String(this.#c.postgresql.pg_ctl_timeout), '-l', this.#logfile], this.#ctlTimeoutMs + 5_000);
  }

  async stop(mode: 'smart' | 'fast' | 'immediate'): Promise<void> {
    this.#probe.discard();
    if (!this.#postmasterAlive()) return;
    await this.#exec('pg_ctl', ['stop', '-D', this.#dir, '-m', mode, '-w', '-t', String(this.#c.postgresql.pg_ctl_timeout)], this.#ctlTimeoutMs + 5_000)
      .catch((err: unknown) => { if (this.#postmasterAlive()) throw err; });
  }

  async follow(upstream: Upstream | null): Promise<void> {
    await this.#renderConf(upstream, true);
    await this.reload();
  }

  async reload(): Promise<void> {
    await this.#exec('pg_ctl', ['reload', '-D', this.#dir], 10_000); // sends SIGHUP: instant
  }

  async promote(): Promise<{ timeline: number; lsn: string }> {
    // pg_promote waits until recovery has ended; pg_ctl_timeout bounds it.
    const [r] = await this.#probe.query<{ ok: boolean }>('select pg_promote(true, $1) as ok', [this.#c.postgresql.pg_ctl_timeout]);
    if (r?.ok !== true) throw new PgHaError('PGHA_PG_COMMAND', 'pg_promote did not finish in time');
    await unlink(join(this.#dir, 'standby.signal')).catch(() => undefined);
    await this.#renderConf(null, false);
    await this.reload();
    const h = await this.#probe.health();
    return { timeline: h.timeline ?? 0, lsn: h.lsn === null ? '0/0' : formatLsn(h.lsn) };
  }

  async clone(from: Upstream): Promise<void> {
    const { host, port } = splitHostPort(from.conn);
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    if ((await readdir(this.#dir)).length > 0) throw new PgHaError('PGHA_PG_COMMAND', `cannot clone into a non-empty ${this.#dir}`);
    await this.#writePassfile();
    try {
      // A base backup copies the whole cluster: allow an hour before calling it stuck.
      await this.#exec('pg_basebackup', ['-D', this.#dir, '-h', host, '-p', String(port), '-U', this.#c.postgresql.authentication.replication.username,
        '-X', 'stream', '-c', 'fast', '--no-password'], 3_600_000, { PGPASSFILE: this.#passfile, PGAPPNAME: this.#c.name });
    } catch (err) {
      await this.wipe();
      throw err;
    }
    await chmod(this.#dir, 0o700);
    await this.#renderConf(from, true);
    await this.#write(join(this.#dir, 'standby.signal'), '');
  }

  async rewind(from: Upstream): Promise<void> {
    const { host, port } = splitHostPort(from.conn);
    const a = this.#c.postgresql.authentication;
    const user = (a.rewind ?? a.superuser).username;
    await this.#writePassfile();
    const source = `host=${host} port=${port} user=${user} dbname=postgres connect_timeout=5`;
    await this.#checkpointIfPromotedRecently(host, port);
    try {
      // pg_rewind copies only changed blocks; it also runs crash recovery first when needed (PG 13+).
      await this.#exec('pg_rewind', ['-D', this.#dir, `--source-server=${source}`], 3_600_000, { PGPASSFILE: this.#passfile });
    } catch (err) {
      throw new PgHaError('PGHA_PG_REWIND_FAILED', (err as Error).message, { cause: err });
    }
    await this.#renderConf(from, true);
    await this.#write(join(this.#dir, 'standby.signal'), '');
  }

  /**
   * pg_rewind reads the source's timeline from its last checkpoint. Right after a promotion that
   * is still the old timeline and the rewound server cannot start ("requested timeline does not
   * contain minimum recovery point"); a CHECKPOINT on the source first makes it current.
   */
  async #checkpointIfPromotedRecently(host: string, port: number): Promise<void> {
    const su = this.#c.postgresql.authentication.superuser;
    const c = new pg.Client({ host, port, user: su.username, password: su.password, database: 'postgres', connectionTimeoutMillis: 5000, query_timeout: 60_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const r = await c.query<{ current: number; checkpoint: number }>(
        "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int as current, (select timeline_id from pg_control_checkpoint()) as checkpoint");
      const row = r.rows[0];
      if (row !== undefined && row.current !== row.checkpoint) await c.query('checkpoint');
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  async crash(): Promise<void> {
    this.#probe.discard();
    const pid = Number(readFileSync(join(this.#dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) throw new PgHaError('PGHA_PG_NOT_RUNNING', 'no postmaster to crash');
    let children: number[] = [];
    try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* none */ }
    for (const c of [...children, pid]) { try { process.kill(c, 'SIGKILL'); } catch { /* gone */ } }
  }

  async checkpointLsn(): Promise<number | null> {
    return (await this.#controlData())?.checkpointLsn ?? null;
  }

  async wipe(): Promise<void> {
    this.#control = null;
    if (!existsSync(this.#dir)) return;
    for (const f of await readdir(this.#dir)) await rm(join(this.#dir, f), { recursive: true, force: true });
  }

  async ensureSlots(slotNames: string[], dropAbsent: boolean): Promise<void> {
    await ensureSlots(this.#probe, slotNames, dropAbsent);
  }

  async close(): Promise<void> {
    this.#probe.close();
  }
}
