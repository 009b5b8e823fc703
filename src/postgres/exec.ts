// Runs PostgreSQL's binaries: argument arrays only (never a shell), a timeout on every run,
// optionally as another OS user, a minimal environment, and error messages that never carry a
// password (the caller's secrets are cut out of the stderr tail before it becomes a message).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { PgHaError } from '../errors.ts';

export interface RunAs {
  uid: number;
  gid: number;
}

export interface ExecOptions {
  timeoutMs: number;
  runAs?: RunAs | undefined;
  /** Added to the minimal environment (PATH, LC_ALL=C). Nothing else is inherited. */
  env?: Record<string, string>;
  /** Strings that must never appear in an error message (passwords). */
  secrets?: readonly string[];
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** Longest stderr excerpt put into an error message. */
const TAIL_CHARS = 600;

/** Run `bin` with `args`; reject with PGHA_PG_COMMAND and the redacted tail of stderr on failure. */
export function run(bin: string, args: string[], o: ExecOptions): Promise<ExecResult> {
  // LC_ALL=C: pg_controldata's field names and every message are parsed or shown in English.
  // No PGPASSWORD or PG* variable leaks in from the agent's own environment.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', ...o.env };
  // cwd '/': the agent's own directory may not be readable by the postgres user.
  const opts = { timeout: o.timeoutMs, env, cwd: '/', maxBuffer: 16 * 1024 * 1024, ...(o.runAs ?? {}) };
  return new Promise((resolve, reject) => {
    execFile(bin, args, opts, (err, stdout, stderr) => {
      if (err === null) return resolve({ stdout, stderr });
      const killed = (err as { killed?: boolean }).killed === true;
      const why = killed ? `timed out after ${o.timeoutMs} ms` : `exit ${String(err.code)}`;
      reject(new PgHaError('PGHA_PG_COMMAND', `${describeCommand(bin, args)}: ${why}: ${tail(stderr, o.secrets ?? [])}`));
    });
  });
}

/** "pg_ctl start", "initdb": the binary and its subcommand, never an option value. */
function describeCommand(bin: string, args: string[]): string {
  const sub = args[0];
  return sub !== undefined && /^[a-z]+$/.test(sub) ? `${basename(bin)} ${sub}` : basename(bin);
}

function tail(stderr: string, secrets: readonly string[]): string {
  const lines = stderr.trim().split('\n').slice(-4).join(' | ');
  return redact(lines, secrets).slice(-TAIL_CHARS);
}

/** Replace every occurrence of each secret, and any `password=...` pair, by [REDACTED]. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(/password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/gi, 'password=[REDACTED]');
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('[REDACTED]');
  return out;
}

/** uid/gid of an OS user, from /etc/passwd (no shell, no getent). */
export function lookupOsUser(name: string, passwd = '/etc/passwd'): RunAs {
  const line = readFileSync(passwd, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  const parts = line?.split(':');
  const uid = Number(parts?.[2]);
  const gid = Number(parts?.[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || parts?.[2] === '' || parts?.[3] === '') {
    throw new Error(`OS user ${name} does not exist in ${passwd}`);
  }
  return { uid, gid };
}
