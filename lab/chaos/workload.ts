// The client workload of the fault-injection suite: several concurrent clients insert unique ids
// through HAProxy's read-write port, each recording one Op per attempt: when it was invoked and
// completed (the machine's clock, shared by clients and servers here), its outcome, and, for an
// acknowledged write, which server took it (address, system identifier, timeline, WAL position,
// the server's own clock at the insert).
import { spawn, type ChildProcess } from 'node:child_process';
import { PASSWORDS } from '../util.ts';
import { WriteProbe, classify, type Outcome } from '../probe.ts';

export { classify, type Outcome };

export interface Op {
  client: number;
  id: number;
  invokeMs: number;
  completeMs: number;
  outcome: Outcome;
  /** For ok: the server that acknowledged it. */
  server?: string;
  sysid?: string;
  tli?: number;
  lsn?: string;
  serverMs?: number;
  error?: string;
}

export const TABLE = 'chaos_w';
export const CREATE_TABLE = `create table if not exists ${TABLE} (id bigint primary key, client int not null, at timestamptz not null default clock_timestamp())`;

const INSERT = `insert into ${TABLE}(id, client) values ($1, $2) returning
  inet_server_addr()::text as server,
  (select system_identifier::text from pg_control_system()) as sysid,
  pg_walfile_name(pg_current_wal_insert_lsn()) as walfile,
  pg_current_wal_insert_lsn()::text as lsn,
  (extract(epoch from clock_timestamp()) * 1000)::float8 as server_ms`;

interface InsertRow { server: string; sysid: string; walfile: string; lsn: string; server_ms: number }

export interface WorkloadOptions {
  /** HAProxy's read-write port (clients 1..clients). */
  port: number;
  host?: string;
  clients: number;
  intervalMs: number;
  /** Also one libpq client (psql) with a multi-host connection string over these hosts. */
  libpqHosts?: string[];
  libpqPort?: number;
}

export class Workload {
  readonly ops: Op[] = [];
  #probes: WriteProbe<InsertRow>[] = [];

  readonly o: WorkloadOptions;
  #libpq: LibpqClient | null = null;

  constructor(o: WorkloadOptions) { this.o = o; }

  start(): void {
    for (let c = 1; c <= this.o.clients; c++) this.#probes.push(this.#client(c).start());
    if (this.o.libpqHosts !== undefined) {
      this.#libpq = new LibpqClient({ hosts: this.o.libpqHosts, port: this.o.libpqPort ?? 5432, client: this.o.clients + 1, intervalMs: this.o.intervalMs, ops: this.ops });
      this.#libpq.start();
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#probes.map((p) => p.stop()), this.#libpq?.stop()]);
  }

  /** Client `client`: the lab's write probe with ids client * 10^7 + 1, 2, ..., each attempt an Op. */
  #client(client: number): WriteProbe<InsertRow> {
    return new WriteProbe<InsertRow>({
      host: this.o.host ?? '127.0.0.1', port: this.o.port, firstId: client * 10_000_000 + 1,
      statement: (id) => ({ text: INSERT, values: [id, client] }),
      // Connect within 1 s (HAProxy answers at once; a dead backend is redispatched); a write waits
      // at most 4 s, longer than a synchronous commit takes while a standby is healthy, so a
      // timeout means the cluster could not acknowledge it.
      connectMs: 1000, queryMs: 4000,
      // After a failure, retry soon: the outage is measured between acknowledgements.
      pauseMs: this.o.intervalMs, failPauseMs: 50,
      onAttempt: (a) => {
        const op: Op = { client, id: a.id, invokeMs: a.invokeMs, completeMs: a.completeMs, outcome: a.outcome };
        const row = a.row;
        if (a.ok && row !== undefined) {
          Object.assign(op, { server: row.server.replace(/\/32$/, ''), sysid: row.sysid,
            tli: parseInt(row.walfile.slice(0, 8), 16), lsn: row.lsn, serverMs: row.server_ms });
        }
        if (a.error !== undefined) op.error = a.error;
        this.ops.push(op);
      },
    });
  }
}

/**
 * A client that writes through libpq itself, the way an application with a multi-host connection
 * string does (`host=a,b,c target_session_attrs=read-write`): one `psql` process, one INSERT at a
 * time on its stdin, one result line on its stdout. psql exits when its connection breaks; the
 * client starts a new one, which libpq points at whichever host is writable then.
 */
export class LibpqClient {
  readonly #o: { hosts: string[]; port: number; client: number; intervalMs: number; ops: Op[] };
  #running = false;
  #loop: Promise<void> | null = null;

  constructor(o: { hosts: string[]; port: number; client: number; intervalMs: number; ops: Op[] }) { this.#o = o; }

  start(): void { this.#running = true; this.#loop = this.#run(); }
  async stop(): Promise<void> { this.#running = false; await this.#loop; }

  async #run(): Promise<void> {
    let seq = 0;
    while (this.#running) {
      const session = new PsqlSession(this.#o.hosts, this.#o.port);
      const ready = await session.ready();
      while (this.#running) {
        const id = this.#o.client * 10_000_000 + ++seq;
        const op: Op = { client: this.#o.client, id, invokeMs: Date.now(), completeMs: 0, outcome: 'fail' };
        if (!ready) { op.error = session.error; op.completeMs = Date.now(); this.#o.ops.push(op); break; }
        const r = await session.run(`${INSERT.replace('$1', String(id)).replace('$2', String(this.#o.client))};`);
        op.completeMs = Date.now();
        if (r.ok) {
          const [server = '', sysid = '', walfile = '', lsn = '', ms = ''] = r.line.split('|');
          Object.assign(op, { outcome: 'ok', server: server.replace(/\/32$/, ''), sysid, tli: parseInt(walfile.slice(0, 8), 16), lsn, serverMs: Number(ms) });
        } else {
          op.outcome = r.outcome;
          op.error = r.error.slice(0, 120);
        }
        this.#o.ops.push(op);
        if (!r.ok && r.outcome === 'unknown') break; // the session is gone or unusable
        await new Promise((res) => setTimeout(res, r.ok ? this.#o.intervalMs : 50));
      }
      session.close();
      if (this.#running) await new Promise((res) => setTimeout(res, 50));
    }
  }
}

type RunResult = { ok: true; line: string } | { ok: false; outcome: Outcome; error: string };

class PsqlSession {
  readonly #child: ChildProcess;
  #out = '';
  #err = '';
  #exited = false;
  #wake: (() => void) | null = null;
  error = '';

  constructor(hosts: string[], port: number) {
    // connect_timeout 1 s per host: a live host answers in milliseconds, a cut-off one never.
    const conninfo = `host=${hosts.join(',')} port=${port} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=1`;
    this.#child = spawn('/usr/bin/psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose', conninfo], {
      env: { PATH: '/usr/bin:/bin', PGPASSWORD: PASSWORDS.superuser, PGCONNECT_TIMEOUT: '1' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child.stdout?.on('data', (d: Buffer) => { this.#out += d.toString(); this.#wake?.(); });
    this.#child.stderr?.on('data', (d: Buffer) => { this.#err += d.toString(); this.#wake?.(); });
    this.#child.on('exit', () => { this.#exited = true; this.#wake?.(); });
    this.#child.stdin?.on('error', () => undefined);
  }

  async ready(): Promise<boolean> {
    const r = await this.run("select 'ready';");
    if (!r.ok) this.error = r.error;
    return r.ok;
  }

  /** One statement: its single output line, an SQL error, or an unknown outcome (exit, timeout). */
  async run(sql: string): Promise<RunResult> {
    this.#out = '';
    this.#err = '';
    if (this.#exited) return { ok: false, outcome: 'fail', error: 'psql has exited' };
    this.#child.stdin?.write(`${sql}\n`);
    // 4 s, as for the pg clients: longer than a healthy synchronous commit takes.
    const end = Date.now() + 4000;
    for (;;) {
      const nl = this.#out.indexOf('\n');
      if (nl >= 0) return { ok: true, line: this.#out.slice(0, nl) };
      if (/ERROR:/.test(this.#err) && this.#err.endsWith('\n')) {
        const code = /ERROR:\s+([0-9A-Z]{5}):/.exec(this.#err)?.[1];
        return { ok: false, outcome: classify(code === undefined ? new Error(this.#err) : { code }, true), error: this.#err.trim() };
      }
      if (this.#exited) return { ok: false, outcome: 'unknown', error: this.#err.trim() || 'psql exited' };
      if (Date.now() > end) return { ok: false, outcome: 'unknown', error: 'timeout' };
      await new Promise<void>((res) => { this.#wake = res; setTimeout(res, 100); });
    }
  }

  close(): void {
    try { this.#child.kill('SIGKILL'); } catch { /* gone */ }
  }
}
