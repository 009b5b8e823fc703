// A real PgBouncer (Debian's 1.18) for tests, the bench and the demo: transaction pooling, one
// wildcard database routed to `server` (HAProxy's read-write port), an admin user for pgha, and
// the client users with their passwords in its auth_file. Run as the postgres OS user (PgBouncer
// refuses root); its log goes to <dir>/pgbouncer.log.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { lookupOsUser } from '../src/postgres/instance.ts';

export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';

export interface PgbouncerOptions {
  /** A directory it may write (made if absent; owned by postgres). */
  dir: string;
  port: number;
  /** Where pooled server connections go. */
  server: { host: string; port: number };
  admin: { user: string; password: string };
  /** Client users and their passwords (also used towards PostgreSQL). */
  users: Record<string, string>;
  /** Server connections per user/database pair. */
  poolSize?: number;
  /** Run as this OS user (default: postgres; null: as the caller, who must not be root). */
  owner?: { uid: number; gid: number } | null;
}

export interface PgbouncerHandle {
  child: ChildProcess;
  port: number;
  logPath: string;
  /** SIGKILL and wait for the exit. */
  stop(): Promise<void>;
}

const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;

export function pgbouncerIni(o: PgbouncerOptions): string {
  return [
    '[databases]',
    `* = host=${o.server.host} port=${o.server.port}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${o.port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${join(o.dir, 'userlist.txt')}`,
    `admin_users = ${o.admin.user}`,
    'pool_mode = transaction',
    'max_client_conn = 200',
    `default_pool_size = ${o.poolSize ?? 10}`,
    // node-postgres sends none of the parameters PgBouncer does not track, but psql and JDBC do.
    'ignore_startup_parameters = extra_float_digits,options',
    // A failed server login (no primary behind HAProxy for a moment) is retried after 100 ms
    // instead of the default 15 s, so queued clients wait for the new primary, not for a timer.
    'server_login_retry = 0.1',
    // A client queued (paused, or waiting for a server connection) gives up after 30 s.
    'query_wait_timeout = 30',
    `logfile = ${join(o.dir, 'pgbouncer.log')}`,
    `pidfile = ${join(o.dir, 'pgbouncer.pid')}`,
    '',
  ].join('\n');
}

/** Start PgBouncer and wait until it accepts TCP on its port (at most 10 s: it starts in milliseconds). */
export async function startPgbouncer(o: PgbouncerOptions): Promise<PgbouncerHandle> {
  const user = o.owner === undefined ? lookupOsUser('postgres') : o.owner;
  const own = (path: string) => { if (user !== null) chownSync(path, user.uid, user.gid); };
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  own(o.dir);
  const users = { ...o.users, [o.admin.user]: o.admin.password };
  const files: Array<[string, string]> = [
    ['userlist.txt', Object.entries(users).map(([u, p]) => `${quote(u)} ${quote(p)}`).join('\n') + '\n'],
    ['pgbouncer.ini', pgbouncerIni(o)],
  ];
  for (const [name, text] of files) {
    writeFileSync(join(o.dir, name), text, { mode: 0o600 });
    own(join(o.dir, name));
  }
  const ids = user === null ? {} : { uid: user.uid, gid: user.gid };
  const child = spawn(PGBOUNCER_BIN, [join(o.dir, 'pgbouncer.ini')], { ...ids, stdio: 'ignore', cwd: o.dir });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = performance.now() + 10_000;
  while (!(await accepts(o.port))) {
    if (child.exitCode !== null || performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pgbouncer did not start on port ${o.port} (see ${join(o.dir, 'pgbouncer.log')})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child, port: o.port, logPath: join(o.dir, 'pgbouncer.log'),
    stop: async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); await exited; },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
