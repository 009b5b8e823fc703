// Runs PostgreSQL's binaries: argument arrays only (never a shell), a timeout on every run,
// optionally as another OS user, and error messages that never carry a password.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { PgHaError } from '../errors.ts';

export interface RunAs { uid: number; gid: number }

export interface ExecOptions {
  timeoutMs: number;
  runAs?: RunAs | undefined;
  env?: Record<string, string>;
}

export interface ExecResult { stdout: string; stderr: string }

/** Run `bin` with `args`; reject with PGHA_PG_COMMAND and the tail of stderr on failure. */
export function run(bin: string, args: string[], o: ExecOptions): Promise<ExecResult> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', ...o.env };
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: o.timeoutMs, env, maxBuffer: 16 * 1024 * 1024, ...(o.runAs ?? {}) }, (err, stdout, stderr) => {
      if (err === null) return resolve({ stdout, stderr });
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      const why = (err as { killed?: boolean }).killed ? `timed out after ${o.timeoutMs} ms` : `exit ${String(err.code)}`;
      reject(new PgHaError('PGHA_PG_COMMAND', `${bin.split('/').pop()} ${args[0] ?? ''}: ${why}: ${tail}`, { cause: err }));
    });
  });
}

/** uid/gid of an OS user, from /etc/passwd (no shell, no getent). */
export function lookupOsUser(name: string): RunAs {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  const parts = line?.split(':');
  if (parts === undefined || parts.length < 4) throw new Error(`OS user ${name} does not exist`);
  return { uid: Number(parts[2]), gid: Number(parts[3]) };
}
