// The lab's port allocator. A test or script asks for a block of consecutive TCP ports
// (allocatePorts(n)) instead of picking numbers by hand.
//
// Why a range with lock files, not "listen on port 0": a cluster needs blocks (etcd's client and
// peer port, node i on base + i), and the port must stay reserved between the allocation and the
// moment etcd, PostgreSQL or an agent binds it, which can be seconds later in another process.
// So: the range 29000-32767 (above every fixed port the older tests use, below Linux's ephemeral
// range 32768-60999, where outgoing connections take their local ports); a reservation is one file
// per port under /tmp/pgha-ports, created with O_EXCL (atomic across processes), holding the pid
// of the process that owns it. A port is skipped when its file exists with a live owner, or when
// /proc/net/tcp{,6} shows a socket bound to it (whoever made it). Files of dead owners are taken
// over, and swept by the next process that allocates; the owner's own files are removed when it
// exits (and by releasePorts()).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const PORT_RANGE = { first: 29000, last: 32767 } as const;
const DIR = '/tmp/pgha-ports';
const mine = new Set<number>();
let hooked = false;

/** Local ports of every TCP socket on this host (any state), from /proc/net/tcp and tcp6. */
function boundPorts(): Set<number> {
  const ports = new Set<number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      const hex = local?.slice(local.lastIndexOf(':') + 1);
      if (hex !== undefined && hex !== '') ports.add(parseInt(hex, 16));
    }
  }
  return ports;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Reserve `port` for this process: true when it was free (no live owner). */
function reserve(port: number): boolean {
  if (mine.has(port)) return false;
  const file = join(DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      mine.add(port);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const text = readFileSafe(file);
      if (text === null) continue; // released meanwhile: try again
      // An empty file is being written right now: taken.
      if (text === '' || alive(Number(text))) return false;
      rmSync(file, { force: true }); // a dead owner's reservation: take it over
    }
  }
  return false;
}

function readFileSafe(file: string): string | null {
  try { return readFileSync(file, 'utf8'); } catch { return null; }
}

function release(port: number): void {
  if (!mine.delete(port)) return;
  if (readFileSafe(join(DIR, String(port))) === String(process.pid)) rmSync(join(DIR, String(port)), { force: true });
}

/**
 * The first of `count` consecutive ports, free now and reserved for this process until it exits
 * or releasePorts() is called. Throws when the range has no such block.
 */
export function allocatePorts(count = 1): number {
  if (!Number.isInteger(count) || count < 1) throw new Error(`allocatePorts: count ${count}`);
  mkdirSync(DIR, { recursive: true, mode: 0o1777 });
  hookExit();
  const bound = boundPorts();
  // Start at a random place so that parallel processes rarely contend for the same files.
  const span = PORT_RANGE.last - PORT_RANGE.first + 1;
  const offset = Math.floor(Math.random() * span);
  for (let k = 0; k < span; k++) {
    const base = PORT_RANGE.first + ((offset + k) % span);
    if (base + count - 1 > PORT_RANGE.last) continue;
    const block = Array.from({ length: count }, (_, i) => base + i);
    if (block.some((p) => bound.has(p) || existsSync(join(DIR, String(p))) && !reservable(p))) continue;
    const got: number[] = [];
    for (const p of block) {
      if (!reserve(p)) break;
      got.push(p);
    }
    if (got.length === count) return base;
    for (const p of got) release(p);
  }
  throw new Error(`no ${count} consecutive free ports in ${PORT_RANGE.first}-${PORT_RANGE.last}`);
}

/**
 * Reserve one given port: false when a socket is bound to it or another live process holds it.
 * (allocatePorts() is the usual way; this one is for a caller that needs a particular port.)
 */
export function reservePort(port: number): boolean {
  mkdirSync(DIR, { recursive: true, mode: 0o1777 });
  hookExit();
  return !boundPorts().has(port) && reserve(port);
}

/**
 * Once per process: release our files at exit, and remove the files of dead owners (a vitest worker
 * ended by a signal never runs its exit handler; reserve() would take such files over anyway).
 */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => { for (const p of [...mine]) release(p); });
  for (const f of readdirSync(DIR)) if (/^\d+$/.test(f) && reservable(Number(f))) rmSync(join(DIR, f), { force: true });
}

/** A reservation file whose owner is dead (so reserve() may take it over). */
function reservable(port: number): boolean {
  const owner = Number(readFileSafe(join(DIR, String(port))));
  return !Number.isNaN(owner) && owner > 0 && !alive(owner);
}

/** Give back the block of `count` ports from `base` (before the process exits). */
export function releasePorts(base: number, count = 1): void {
  for (let i = 0; i < count; i++) release(base + i);
}
