// Pure renderers for pgBackRest: the member's pgbackrest.conf, its passfile line for the local
// socket, and the PostgreSQL parameters that hand WAL to pgBackRest (archive_command,
// restore_command). Tested without pgBackRest. The conf file may hold object-storage credentials
// (repository options): it is written mode 0600 into the member's own backup directory.
import { join } from 'node:path';
import { splitHostPort, type NodeConfig } from '../config/schema.ts';
import type { BackupConfig } from './config.ts';
import { SHELL_SAFE_PATH } from './config.ts';

export type ParamValue = string | number | boolean;

/** Files of one member's backup directory. */
export interface BackupPaths {
  dir: string;
  conf: string;
  passfile: string;
  log: string;
  lock: string;
  spool: string;
}

export function backupPaths(c: Pick<NodeConfig, 'postgresql' | 'backup'>): BackupPaths {
  const dir = c.backup?.dir ?? `${c.postgresql.data_dir}.pgbackrest`;
  return { dir, conf: join(dir, 'pgbackrest.conf'), passfile: join(dir, 'pgpass'), log: join(dir, 'log'), lock: join(dir, 'lock'), spool: join(dir, 'spool') };
}

export function stanzaOf(c: Pick<NodeConfig, 'scope' | 'backup'>): string {
  return c.backup?.stanza ?? c.scope;
}

const optValue = (v: ParamValue): string => (typeof v === 'boolean' ? (v ? 'y' : 'n') : String(v));

function line(key: string, v: ParamValue): string {
  const s = optValue(v);
  if (/[\r\n]/.test(s)) throw new Error(`pgbackrest.conf: ${key} holds a line break`);
  return `${key}=${s}`;
}

/**
 * pgbackrest.conf for this member. [global]: repositories, retention, compression, archiving,
 * and this member's own log, lock and spool directories (pgBackRest's defaults under /var need
 * root). [stanza]: pg1 is always this member's own PostgreSQL (over its Unix socket); with
 * `peers`, pg2.. are the other members, which backup-standby needs.
 */
export function renderPgbackrestConf(c: NodeConfig & { backup: BackupConfig }, self = c.name): string {
  const b = c.backup;
  const p = backupPaths(c);
  const g: string[] = [];
  b.repositories.forEach((r, i) => {
    const n = `repo${i + 1}`;
    g.push(line(`${n}-type`, r.type), line(`${n}-path`, r.path), line(`${n}-retention-full`, r.retention_full));
    if (r.retention_diff !== undefined) g.push(line(`${n}-retention-diff`, r.retention_diff));
    for (const [k, v] of Object.entries(r.options).sort(([x], [y]) => x.localeCompare(y))) g.push(line(`${n}-${k}`, v));
  });
  g.push(line('compress-type', b.compression.type));
  if (b.compression.level !== undefined) g.push(line('compress-level', b.compression.level));
  g.push(line('process-max', b.process_max), line('archive-async', b.archive.async), line('archive-timeout', b.archive.timeout));
  if (b.archive.queue_max !== undefined) g.push(line('archive-push-queue-max', b.archive.queue_max));
  g.push(line('log-path', p.log), line('lock-path', p.lock), line('spool-path', p.spool));
  // Errors on stderr for the agent's messages; details in the log directory.
  g.push('log-level-console=warn', 'log-level-stderr=error', 'log-level-file=info', 'start-fast=y', 'delta=y');
  if (b.backup_standby) g.push('backup-standby=y');
  const stanza = [...pgLines(1, pgOf(c))];
  let i = 2;
  for (const [name, opts] of Object.entries(b.peers).sort(([x], [y]) => x.localeCompare(y))) {
    if (name === self) continue;
    stanza.push(...pgLines(i++, opts));
  }
  return `# Written by pgha; changes are overwritten. Set them in the backup: section.\n[global]\n${g.join('\n')}\n\n[${stanzaOf(c)}]\n${stanza.join('\n')}\n`;
}

function pgOf(c: NodeConfig): Record<string, ParamValue> {
  return {
    path: c.postgresql.data_dir, port: splitHostPort(c.postgresql.listen).port,
    'socket-path': c.postgresql.socket_dir, user: c.postgresql.authentication.superuser.username,
  };
}

function pgLines(i: number, opts: Record<string, ParamValue>): string[] {
  return Object.entries(opts).map(([k, v]) => line(`pg${i}-${k}`, v));
}

/**
 * libpq passfile for pgBackRest's connections to the local PostgreSQL (and the peers'), over
 * Unix sockets. libpq matches the host field against the socket directory (only its compiled-in
 * default directory is matched as `localhost`). Only the superuser, only these sockets and ports.
 */
export function backupPgpass(c: NodeConfig & { backup: BackupConfig }): string {
  const su = c.postgresql.authentication.superuser;
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  const hostOf = (dir: string) => (dir === DEFAULT_SOCKET_DIR ? 'localhost' : dir);
  const entries = new Set([`${esc(hostOf(c.postgresql.socket_dir))}:${splitHostPort(c.postgresql.listen).port}`]);
  for (const [name, p] of Object.entries(c.backup.peers)) {
    if (name === c.name) continue;
    const dir = typeof p['socket-path'] === 'string' ? p['socket-path'] : DEFAULT_SOCKET_DIR;
    entries.add(`${esc(hostOf(dir))}:${typeof p.port === 'number' || typeof p.port === 'string' ? p.port : 5432}`);
  }
  return [...entries].map((e) => `${e}:*:${esc(su.username)}:${esc(su.password)}\n`).join('');
}

/** Debian's libpq default socket directory (and pgBackRest's pg-socket-path default). */
const DEFAULT_SOCKET_DIR = '/var/run/postgresql';

/** The start of every pgbackrest call: binary, --config, --stanza (never through a shell). */
export function pgbackrestArgs(c: NodeConfig & { backup: BackupConfig }): { bin: string; args: string[] } {
  return { bin: c.backup.bin, args: [`--config=${backupPaths(c).conf}`, `--stanza=${stanzaOf(c)}`] };
}

/**
 * The parameters pgha sets when backup: is configured (they win over the user's).
 * - archive_mode on: the primary archives. Not `always` (standbys archiving too): pgBackRest
 *   2.45's check and backup refuse it ("archive_mode=always not supported"). After a promotion the
 *   new primary archives the old timeline's last partial segment and everything after it.
 * - archive_command: pgbackrest archive-push; restore_command: archive-get, so a standby that
 *   fell behind its slot (or has none) catches up from the repository.
 * PostgreSQL runs both through /bin/sh: every part is checked against SHELL_SAFE_PATH or the
 * stanza pattern, so nothing needs quoting.
 */
export function archiveParameters(c: NodeConfig & { backup: BackupConfig }): Record<string, ParamValue> {
  const { bin, args } = pgbackrestArgs(c);
  for (const part of [bin, backupPaths(c).conf]) {
    if (!SHELL_SAFE_PATH.test(part)) throw new Error(`backup: ${part} cannot go into archive_command unquoted`);
  }
  const base = [bin, ...args].join(' ');
  return {
    archive_mode: 'on',
    archive_command: `${base} archive-push %p`,
    restore_command: `${base} archive-get %f "%p"`,
  };
}

/** Directories the agent creates (mode 0700) before writing the conf. */
export function backupDirs(p: BackupPaths): string[] {
  return [p.dir, p.log, p.lock, p.spool];
}

