// The data directory and the files pgha keeps beside it: writing files owned by the server's OS
// user, the postmaster's liveness from postmaster.pid, and emptying the directory.
import { chmodSync, chownSync, closeSync, existsSync, fstatSync, openSync, readFileSync, readlinkSync, readSync, realpathSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { RunAs } from './exec.ts';

/**
 * Replace `path` with `text` atomically, owned by `runAs` when given, with `mode`: a crash or a
 * full disk leaves either the old file or the new one, never a truncated one. Steps: write a
 * temporary file in the same directory (O_EXCL: never a planted symlink), fsync it, rename it
 * over `path`, fsync the directory so the rename itself survives a power loss. On any failure
 * the temporary file is removed and `path` is untouched. Every file PostgreSQL or libpq reads
 * that pgha rewrites (pgha.conf, pg_hba.conf, postgresql.conf, standby.signal, the passfile)
 * goes through here.
 */
export async function writeAtomic(path: string, text: string, runAs: RunAs | undefined, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.pgha-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fh: FileHandle | null = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(text);
    await fh.chmod(mode); // open's mode is cut by the umask
    if (runAs !== undefined) await fh.chown(runAs.uid, runAs.gid);
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, path);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(path));
}

export async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Write a file that must not exist yet (O_EXCL: no following a planted symlink), removing a stale one first. */
export async function writeFresh(path: string, text: string, runAs: RunAs | undefined): Promise<void> {
  await unlink(path).catch(() => undefined);
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    if (runAs !== undefined) await fh.chown(runAs.uid, runAs.gid);
  } finally {
    await fh.close();
  }
}

/** Create `dir` (and parents) if needed; force mode 0700 and the owner. */
export async function ensureDataDir(dir: string, runAs: RunAs | undefined): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  if (runAs !== undefined) await chown(dir, runAs.uid, runAs.gid);
}

export function isInitialized(dir: string): boolean {
  return existsSync(join(dir, 'PG_VERSION'));
}

/** Remove everything inside `dir`, keeping the directory itself (mode 0700). */
export async function wipeContents(dir: string, runAs: RunAs | undefined): Promise<void> {
  if (!existsSync(dir)) return;
  for (const f of await readdir(dir)) await rm(join(dir, f), { recursive: true, force: true });
  chmodSync(dir, 0o700);
  if (runAs !== undefined) chownSync(dir, runAs.uid, runAs.gid);
}

/** PID on postmaster.pid's first line, or null. */
export function pidFromFile(dir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Is `pid` a live PostgreSQL process? kill(pid, 0) says the PID exists (EPERM: it exists but is
 * not ours). /proc then rules out a PID reused by another program after a crash, and a zombie
 * nobody reaped (a container whose init does not reap). Without /proc, existence is the answer.
 */
export function isLivePostgres(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(pid);
  if (st === null) return !existsSync('/proc/self'); // gone in between (false), or no procfs to ask (true)
  return (st.comm === 'postgres' || st.comm === 'postmaster') && st.state !== 'Z';
}

/** The command name and state letter of /proc/<pid>/stat; null when there is no such process (or no procfs). */
function procStat(pid: number): { comm: string; state: string } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = stat.lastIndexOf(')');
  return { comm: stat.slice(stat.indexOf('(') + 1, close), state: stat.slice(close + 2, close + 3) };
}

/** The direct children of `pid` (for a postmaster: its backends and auxiliary processes); [] when gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The live postmaster's PID, or null when none runs on this data directory. A postgres process
 * whose working directory is another data directory (another cluster on the host reusing the
 * PID of our crashed postmaster) does not count; when /proc hides the cwd, the PID check stands.
 */
export function livePostmaster(dir: string): number | null {
  const pid = pidFromFile(dir);
  if (pid === null || !isLivePostgres(pid)) return null;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dir) ? pid : null;
  } catch {
    return pid;
  }
}

/** Is `pid` a zombie: dead, but not yet reaped by its parent (init, for a postmaster)? */
export function isZombie(pid: number): boolean {
  return procStat(pid)?.state === 'Z';
}

/** Poll every `pollMs` until `done()`; false if `timeoutMs` passed first. */
async function pollUntil(done: () => boolean, timeoutMs: number, pollMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return true;
}

/**
 * A crashed postmaster stays a zombie until init reaps it, and until then a new postmaster
 * refuses to start: its lock-file check (kill(pid, 0)) still finds the old PID. Wait for that,
 * polling every 10 ms, at most `timeoutMs`. True if no zombie is left.
 */
export async function waitForReap(pid: number, timeoutMs: number): Promise<boolean> {
  return pollUntil(() => !isZombie(pid), timeoutMs, 10);
}

/** Poll until `pid` is no longer a live PostgreSQL process. True if it exited within `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number, pollMs = 10): Promise<boolean> {
  return pollUntil(() => !isLivePostgres(pid), timeoutMs, pollMs);
}

/**
 * The FATAL/PANIC lines among the last lines of the server log, for an error message when the
 * server would not start. Only those: a statement echoed into the log could carry a secret.
 */
export function fatalLines(logPath: string, max = 3): string {
  const TAIL_BYTES = 16 * 1024; // the log grows without bound: read only its end
  let fd: number | null = null;
  try {
    fd = openSync(logPath, 'r');
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, TAIL_BYTES));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    const lines = buf.toString('utf8').split('\n').slice(-40);
    return lines.filter((l) => /\b(FATAL|PANIC):/.test(l)).slice(-max).map((l) => l.slice(0, 300)).join(' | ');
  } catch {
    return '';
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
