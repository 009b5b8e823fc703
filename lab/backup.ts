// Helpers for the backup tests: a pgBackRest repository in a temp directory owned by postgres,
// the backup: section for TestCluster's `configure`, and a scratch restore (pgbackrest restore
// into a fresh directory, started on its own port with archiving off) to read back what a
// backup and the archive hold. Everything lives under directories the test removes.
import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { type NodeHandle } from './loopback.ts';
import { superuserClient, queryOnce } from './util.ts';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const user = lookupOsUser('postgres');

export function makeRepo(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'pgha-repo-'));
  chownSync(path, user.uid, user.gid);
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * TestCluster's `configure` hook: the backup: section, with every member listed as a local peer
 * (all on this host: TestCluster puts node j's data in <dir>/node<j>/data, its socket in
 * <dir>/node<j>, its PostgreSQL on pgPortBase + j).
 */
export function withBackup(repo: string, pgPortBase: number, extra: Record<string, unknown> = {}) {
  return (_i: number, cfg: Record<string, any>): void => {
    const dir = dirname(dirname(cfg.postgresql.data_dir as string));
    cfg.backup = {
      repositories: [{ path: repo, retention_full: 2 }],
      peers: Object.fromEntries([1, 2, 3].map((j) => [`node${j}`, { path: join(dir, `node${j}`, 'data'), 'socket-path': join(dir, `node${j}`), port: pgPortBase + j }])),
      ...extra,
    };
  };
}

export function asPostgres(bin: string, args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { uid: user.uid, gid: user.gid, cwd: '/', timeout: timeoutMs, env: { PATH: '/usr/bin:/bin', LC_ALL: 'C', ...env } }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${bin} ${args.join(' ')}: ${err.message}\n${stderr}\n${stdout}`));
      else resolve({ stdout, stderr });
    });
  });
}

export interface Scratch { dir: string; port: number; query(sql: string): Promise<Array<Record<string, unknown>>>; stop(): Promise<void> }

/**
 * pgbackrest restore (with `options`, e.g. --type=time --target=...) of the node's stanza into a
 * new directory under `parent`, started on `port` with archiving off (it must not push into the
 * repository) and no upstream; resolves once recovery has finished and it accepts writes.
 */
export async function scratchRestore(n: NodeHandle, parent: string, port: number, options: string[]): Promise<Scratch> {
  const dir = join(parent, `scratch-${port}-${Date.now()}`);
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, user.uid, user.gid);
  const conf = `${n.dataDir}.pgbackrest/pgbackrest.conf`;
  // A restore of a small test database and its WAL: seconds; 120 s covers a loaded machine.
  await asPostgres('/usr/bin/pgbackrest', [`--config=${conf}`, '--stanza=itest', `--pg1-path=${dir}`, '--archive-mode=off', '--log-level-console=warn', ...options, 'restore'], 120_000);
  // postgresql.auto.conf is read last: it wins over the restored pgha.conf (the member's port,
  // socket, upstream and archive_command).
  appendFileSync(join(dir, 'postgresql.auto.conf'), `port = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\narchive_mode = off\nprimary_conninfo = ''\nprimary_slot_name = ''\n`);
  // Recovery of a few WAL segments: seconds; pg_ctl waits up to 120 s.
  await asPostgres(`${PG_BIN}/pg_ctl`, ['start', '-D', dir, '-w', '-t', '120', '-l', `${dir}.log`], 130_000);
  const query = async (sql: string) => (await queryOnce(superuserClient({ host: '127.0.0.1', port, connectMs: 3000, queryMs: 10_000 }), sql)).rows as Array<Record<string, unknown>>;
  // A restore with a target pauses or promotes at it; wait until it accepts writes (promoted).
  const end = performance.now() + 60_000;
  while ((await query('select pg_is_in_recovery() as r').catch(() => [{ r: true }]))[0]?.r !== false) {
    if (performance.now() > end) throw new Error(`scratch restore on ${port} did not finish recovery`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    dir, port, query,
    stop: async () => {
      await asPostgres(`${PG_BIN}/pg_ctl`, ['stop', '-D', dir, '-m', 'immediate', '-w'], 30_000).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}.log`, { force: true });
    },
  };
}
