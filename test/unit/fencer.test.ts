// Finding 10: the fencing process with real child processes. It SIGKILLs only our postmaster (by
// name and working directory, like the agent), never a process that reused a stale PID; a fencer
// that dies is started again with the current deadline; one that cannot be kept running is
// reported (the agent then stops PostgreSQL and exits).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FencerProcess, MAX_RESTARTS, fencerScript } from '../../src/agent/fencer-client.ts';
import type { PgHaError } from '../../src/errors.ts';
import type { Logger } from '../../src/log/logger.ts';

const logged: string[] = [];
const logger = { info: () => undefined, debug: () => undefined, warn: (_: unknown, m: string) => logged.push(m), error: (_: unknown, m: string) => logged.push(m) } as unknown as Logger;

// Waits below: a fencer starts (a perl process) in a few ms on this machine; 5 s (10 s for a
// restart plus a 1.5 s deadline) only bounds a failing test.
const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) return false; await sleep(10); }
  return true;
}

describe('the fencing process', () => {
  let dir: string;
  let data: string;
  let other: string;
  const procs: ChildProcess[] = [];
  const fencers: FencerProcess[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgha-fencer-'));
    data = join(dir, 'data');
    other = join(dir, 'other');
    mkdirSync(data);
    mkdirSync(other);
    mkdirSync(join(dir, 'bin'));
    // A process whose name (comm) is "postgres": the kernel names it after the path it ran.
    symlinkSync('/bin/sleep', join(dir, 'bin', 'postgres'));
    logged.length = 0;
  });
  afterEach(() => {
    for (const f of fencers.splice(0)) f.close();
    for (const p of procs.splice(0)) if (alive(p)) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** A stand-in process with its PID in postmaster.pid. */
  const postmaster = (bin: string, cwd: string): ChildProcess => {
    const p = spawn(bin, ['600'], { cwd, stdio: 'ignore' });
    procs.push(p);
    writeFileSync(join(data, 'postmaster.pid'), `${p.pid}\n${data}\n`);
    return p;
  };
  const fencer = (o: Partial<ConstructorParameters<typeof FencerProcess>[0]> = {}) => {
    const f = new FencerProcess({ dataDir: data, logger, onLost: () => undefined, ...o });
    fencers.push(f);
    return f;
  };

  it('kills our postmaster when the deadline passes', async () => {
    const pm = postmaster(join(dir, 'bin', 'postgres'), data);
    fencer().arm(50);
    expect(await until(() => !alive(pm), 5000)).toBe(true);
  });

  it('keeps the deadline on the same monotonic clock: not before it, and at it', async () => {
    const pm = postmaster(join(dir, 'bin', 'postgres'), data);
    fencer().arm(600);
    await sleep(300);
    expect(alive(pm)).toBe(true);
    expect(await until(() => !alive(pm), 5000)).toBe(true);
  });

  it('a disarm cancels the deadline', async () => {
    const pm = postmaster(join(dir, 'bin', 'postgres'), data);
    const f = fencer();
    f.arm(200);
    f.disarm();
    await sleep(600);
    expect(alive(pm)).toBe(true);
  });

  it('when the agent is gone, still fences at the last deadline, then exits', async () => {
    const pm = postmaster(join(dir, 'bin', 'postgres'), data);
    const p = spawn('/usr/bin/perl', [fencerScript(), data], { stdio: ['pipe', 'pipe', 'inherit'] });
    procs.push(p);
    let out = '';
    p.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    const deadline = Number(process.hrtime.bigint() / 1_000_000n) + 300;
    p.stdin?.end(`garbage\n{"armed":true,"deadline":${deadline}}\n`);
    expect(await until(() => !alive(pm), 5000)).toBe(true);
    expect(await until(() => !alive(p), 5000)).toBe(true);
    expect(p.exitCode).toBe(0);
    expect(JSON.parse(out.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ event: 'fenced', pid: pm.pid });
  });

  it.each([
    ['a process of another program that reused the PID', '/bin/sleep', 'data'],
    ['a postgres of another data directory', join('bin', 'postgres'), 'other'],
  ])('never kills %s', async (_, bin, cwd) => {
    const p = postmaster(bin.startsWith('/') ? bin : join(dir, bin), join(dir, cwd));
    fencer().arm(0);
    // The fencer reports the PID it refused on its stdout, which the client logs.
    expect(await until(() => logged.some((l) => l.includes('fencing process')), 5000)).toBe(true);
    await sleep(200);
    expect(alive(p)).toBe(true);
  });

  it('a killed fencer is started again and still fences at the deadline it was given', async () => {
    const pm = postmaster(join(dir, 'bin', 'postgres'), data);
    const f = fencer();
    expect(await until(() => f.pid !== undefined, 5000)).toBe(true);
    const first = f.pid as number;
    f.arm(1500);
    process.kill(first, 'SIGKILL');
    expect(await until(() => f.pid !== undefined && f.pid !== first, 5000)).toBe(true);
    expect(logged).toContainEqual(expect.stringContaining('the fencing process died (exit SIGKILL): starting it again'));
    expect(alive(pm)).toBe(true);
    expect(await until(() => !alive(pm), 10_000)).toBe(true);
  });

  it('reports PGHA_FENCER_LOST when it keeps dying, and when it cannot be spawned', async () => {
    const dying = join(dir, 'dies.pl');
    writeFileSync(dying, 'exit 3;\n');
    const lost: PgHaError[] = [];
    fencer({ script: dying, onLost: (e) => lost.push(e) });
    expect(await until(() => lost.length > 0, 10_000)).toBe(true);
    expect(lost[0]?.code).toBe('PGHA_FENCER_LOST');
    expect(lost[0]?.message).toContain(`died ${MAX_RESTARTS + 1} times`);
    const unspawnable: PgHaError[] = [];
    fencer({ perl: join(dir, 'no-such-perl'), onLost: (e) => unspawnable.push(e) });
    expect(await until(() => unspawnable.length > 0, 5000)).toBe(true);
    expect(unspawnable[0]?.message).toContain('cannot run');
    await sleep(100);
    expect(lost).toHaveLength(1);
    expect(unspawnable).toHaveLength(1);
  });
});
