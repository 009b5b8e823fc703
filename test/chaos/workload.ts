// The client workload of the fault-injection suite: several concurrent clients insert unique ids
// through HAProxy's read-write port, each recording one Op per attempt: when it was invoked and
// completed (the machine's clock, shared by clients and servers here), its outcome, and, for an
// acknowledged write, which server took it (address, system identifier, timeline, WAL position,
// the server's own clock at the insert).
import pg from 'pg';
import { PASSWORDS } from '../support/cluster.ts';

export type Outcome = 'ok' | 'fail' | 'unknown';

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

/**
 * An error that proves the statement did not commit: the server answered with an SQLSTATE of a
 * class that rejects the statement (read-only transaction, disk full, ...). Connection loss,
 * timeouts and administrator shutdowns leave the outcome unknown: the commit may have happened.
 */
export function classify(err: unknown, sent: boolean): Outcome {
  if (!sent) return 'fail';
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return 'unknown';
  if (code.startsWith('08') || code.startsWith('57') || code.startsWith('58') || code === 'XX000') return 'unknown';
  return 'fail';
}

interface InsertRow { server: string; sysid: string; walfile: string; lsn: string; server_ms: number }

export class Workload {
  readonly ops: Op[] = [];
  #running = false;
  #loops: Promise<void>[] = [];

  readonly o: { port: number; host?: string; clients: number; intervalMs: number };

  constructor(o: { port: number; host?: string; clients: number; intervalMs: number }) { this.o = o; }

  start(): void {
    this.#running = true;
    for (let c = 1; c <= this.o.clients; c++) this.#loops.push(this.#client(c));
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }

  #connect(): pg.Client {
    // Connect within 1 s (HAProxy answers at once; a dead backend is redispatched); a write waits
    // at most 4 s, longer than a synchronous commit takes while a standby is healthy, so a
    // timeout means the cluster could not acknowledge it.
    const c = new pg.Client({ host: this.o.host ?? '127.0.0.1', port: this.o.port, user: 'postgres', password: PASSWORDS.superuser,
      database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 4000 });
    c.on('error', () => undefined);
    return c;
  }

  async #client(client: number): Promise<void> {
    let seq = 0;
    let conn: pg.Client | null = null;
    while (this.#running) {
      const id = client * 10_000_000 + ++seq;
      const op: Op = { client, id, invokeMs: Date.now(), completeMs: 0, outcome: 'fail' };
      let sent = false;
      try {
        if (conn === null) { conn = this.#connect(); await conn.connect(); }
        sent = true;
        const r = await conn.query<InsertRow>(INSERT, [id, client]);
        const row = r.rows[0];
        if (row === undefined) throw new Error('insert returned no row');
        Object.assign(op, { outcome: 'ok', server: row.server.replace(/\/32$/, ''), sysid: row.sysid,
          tli: parseInt(row.walfile.slice(0, 8), 16), lsn: row.lsn, serverMs: row.server_ms });
      } catch (e) {
        op.outcome = classify(e, sent);
        op.error = (e as Error).message.slice(0, 120);
        const dead: pg.Client | null = conn;
        conn = null;
        void dead?.end().catch(() => undefined);
      }
      op.completeMs = Date.now();
      this.ops.push(op);
      await new Promise((r) => setTimeout(r, op.outcome === 'ok' ? this.o.intervalMs : 50));
    }
    await conn?.end().catch(() => undefined);
  }
}
