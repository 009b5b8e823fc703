// Runs pgbackrest: execFile with an argument array (never a shell), a timeout on every call, a
// minimal environment (PGPASSFILE for its connections to PostgreSQL, nothing inherited), and
// error messages with the redacted tail of its stderr. A failure is PGHA_BACKUP_COMMAND.
import { execFile, spawn } from 'node:child_process';
import type { NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import { redact } from '../postgres/exec.ts';
import type { BackupConfig } from './config.ts';
import { backupPaths, pgbackrestArgs } from './render.ts';

export type BackupNodeConfig = NodeConfig & { backup: BackupConfig };

/** Longest stderr excerpt put into an error message. */
const TAIL_CHARS = 800;

function secretsOf(c: BackupNodeConfig): string[] {
  const repoSecrets = c.backup.repositories.flatMap((r) => Object.entries(r.options).filter(([k]) => /key|secret|token|pass/i.test(k)).map(([, v]) => String(v)));
  return [c.postgresql.authentication.superuser.password, ...repoSecrets];
}

function envOf(c: BackupNodeConfig): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', PGPASSFILE: backupPaths(c).passfile };
}

export interface PgbackrestResult { stdout: string; stderr: string }

/** `pgbackrest --config --stanza <command> ...args`; rejects with PGHA_BACKUP_COMMAND on failure. */
export function pgbackrest(c: BackupNodeConfig, command: string, extra: string[], timeoutMs: number): Promise<PgbackrestResult> {
  const { bin, args } = pgbackrestArgs(c);
  return new Promise((resolve, reject) => {
    execFile(bin, [...args, ...extra, command], { timeout: timeoutMs, env: envOf(c), cwd: '/', maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) return resolve({ stdout, stderr });
      const killed = (err as { killed?: boolean }).killed === true;
      const why = killed ? `timed out after ${timeoutMs} ms` : `exit ${String(err.code)}`;
      const tail = redact(`${stderr}\n${stdout}`.trim().split('\n').filter((l) => l.trim() !== '').slice(-4).join(' | '), secretsOf(c)).slice(-TAIL_CHARS);
      reject(new PgHaError('PGHA_BACKUP_COMMAND', `pgbackrest ${command}: ${why}: ${tail}`, { cause: err }));
    });
  });
}

/**
 * A long pgbackrest call (backup, restore) whose stderr lines are handed to `onLine` as they come
 * (progress); killed with its process group after `timeoutMs`.
 */
export function pgbackrestStreaming(c: BackupNodeConfig, command: string, extra: string[], timeoutMs: number, onLine: (l: string) => void): Promise<PgbackrestResult> {
  const { bin, args } = pgbackrestArgs(c);
  const secrets = secretsOf(c);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...args, '--log-level-console=detail', ...extra, command], { env: envOf(c), cwd: '/', detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ } }, timeoutMs);
    const lines = (chunk: string, into: 'out' | 'err') => {
      if (into === 'out') out = (out + chunk).slice(-65_536); else err = (err + chunk).slice(-65_536);
      for (const l of chunk.split('\n')) if (l.trim() !== '') onLine(redact(l, secrets));
    };
    child.stdout.setEncoding('utf8').on('data', (s: string) => lines(s, 'out'));
    child.stderr.setEncoding('utf8').on('data', (s: string) => lines(s, 'err'));
    child.on('error', (e) => { clearTimeout(timer); reject(new PgHaError('PGHA_BACKUP_COMMAND', `pgbackrest ${command}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ stdout: out, stderr: err });
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `exit ${String(code ?? signal)}`;
      const tail = redact(`${err}\n${out}`.trim().split('\n').filter((l) => /ERROR|WARN/.test(l)).slice(-4).join(' | '), secrets).slice(-TAIL_CHARS);
      reject(new PgHaError('PGHA_BACKUP_COMMAND', `pgbackrest ${command}: ${why}: ${tail}`));
    });
  });
}
