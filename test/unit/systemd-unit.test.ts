// Finding 15: systemd/pgha.service accepts notifications from the agent only (NotifyAccess=main)
// and is hardened. The unit is checked with systemd-analyze (verify, security --offline), and the
// agent's notifications are shown to come from its own PID when started through
// bin/notify-socket.pl, as the unit starts it (systemd-notify, a child, has another PID).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupOsUser } from '../../src/postgres/exec.ts';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const UNIT = readFileSync(join(ROOT, 'systemd/pgha.service'), 'utf8');
const ANALYZE = '/usr/bin/systemd-analyze';
const hasAnalyze = existsSync(ANALYZE);
/** Exposure (systemd-analyze's scale of 0-100, shown as 0.0-10.0) the unit may not exceed: 2.5 "OK". */
const MAX_EXPOSURE = 25;

/** The agent runs as postgres; so do these tests' stand-ins when the tests run as root. */
const asPostgres = process.getuid?.() === 0 ? lookupOsUser('postgres') : {};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgha-unit-'));
  chmodSync(dir, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The unit with /opt/pgha pointing at this checkout, so that verify finds the programs it runs. */
function unitHere(): string {
  const path = join(dir, 'pgha.service');
  writeFileSync(path, UNIT.replaceAll('/opt/pgha', ROOT));
  return path;
}

const directive = (key: string): string[] => [...UNIT.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1] ?? '');

describe('systemd/pgha.service', () => {
  it('takes notifications from the main process only, which the launcher makes the agent', () => {
    expect(directive('NotifyAccess')).toEqual(['main']);
    expect(directive('ExecStart')).toEqual(['/usr/bin/perl /opt/pgha/bin/notify-socket.pl /opt/pgha/node_modules/.bin/node --max-semi-space-size=1 /opt/pgha/bin/pgha.js --config /etc/pgha/pgha.yml']);
  });

  it('sets the hardening directives, and not MemoryDenyWriteExecute (Node JITs)', () => {
    for (const [k, v] of Object.entries({
      NoNewPrivileges: 'yes', ProtectSystem: 'strict', PrivateTmp: 'yes', ProtectHome: 'yes', ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes', ProtectKernelLogs: 'yes', SystemCallArchitectures: 'native', RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    })) expect(directive(k), k).toEqual([v]);
    expect(directive('ReadWritePaths')).toEqual(['-/var/lib/pgha -/var/lib/postgresql']);
    expect(directive('MemoryDenyWriteExecute')).toEqual([]);
    expect(directive('PrivateDevices')).toEqual([]); // it would hide /dev/watchdog
  });

  it.skipIf(!hasAnalyze)('passes systemd-analyze verify', async () => {
    const r = await run(ANALYZE, ['verify', unitHere()]);
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
  });

  it.skipIf(!hasAnalyze)(`has an exposure of at most ${MAX_EXPOSURE / 10} in systemd-analyze security --offline`, async () => {
    const args = ['security', '--offline=yes', `--threshold=${MAX_EXPOSURE}`, '--no-pager', unitHere()];
    const r = await run(ANALYZE, args).catch((err: { stdout?: string; code?: number }) => ({ stdout: err.stdout ?? '', failed: err.code }));
    expect(r).not.toHaveProperty('failed');
    expect(r.stdout).toMatch(/✓ NotifyAccess=\s+Service child processes cannot alter service state/);
  });
  // systemd-analyze is part of the systemd package (scripts/ensure-deps.mjs installs it for the tests).
  if (!hasAnalyze) it.skip('systemd-analyze checks: /usr/bin/systemd-analyze is not installed', () => undefined);
});

describe('notifications come from the agent\'s own PID', () => {
  /** A datagram socket like systemd's: it records each sender's PID (SO_PASSCRED). */
  async function listener(path: string): Promise<{ got: Array<{ pid: number; msg: string }>; proc: ChildProcess }> {
    const py = [
      'import os,socket,struct,sys',
      's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)',
      's.bind(sys.argv[1])',
      's.setsockopt(socket.SOL_SOCKET,socket.SO_PASSCRED,1)',
      'os.chmod(sys.argv[1],0o777)',
      'print("up",flush=True)',
      'while True:',
      '  m,anc,_,_=s.recvmsg(4096,socket.CMSG_SPACE(12)+socket.CMSG_SPACE(64))',
      '  pid=0',
      '  for l,t,d in anc:',
      '    if l==socket.SOL_SOCKET and t==socket.SCM_CREDENTIALS: pid=struct.unpack("iII",d[:12])[0]',
      '    if l==socket.SOL_SOCKET and t==socket.SCM_RIGHTS: [os.close(f) for f in struct.unpack("%di"%(len(d)//4),d)]',
      '  print(pid,m.decode().replace("\\n"," "),flush=True)',
    ].join('\n');
    const proc = spawn('python3', ['-c', py, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const got: Array<{ pid: number; msg: string }> = [];
    let up = false;
    let buffered = '';
    proc.stdout?.on('data', (b: Buffer) => {
      const lines = (buffered + b.toString()).split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines.filter(Boolean)) {
        if (line === 'up') { up = true; continue; }
        const [pid, ...msg] = line.split(' ');
        got.push({ pid: Number(pid), msg: msg.join(' ') });
      }
    });
    // python3 binds in about 50 ms; 5 s only bounds a failing test.
    for (let i = 0; i < 200 && !up; i++) await new Promise((r) => setTimeout(r, 25));
    return { got, proc };
  }

  /**
   * Run a Node script that sends READY=1 the agent's way, as the postgres user like the unit (as
   * root, systemd-notify could stamp its message with its parent's PID); resolves with its PID.
   */
  function agentLike(viaLauncher: boolean, socket: string): Promise<number> {
    const sdNotify = join(ROOT, 'src/agent/sd-notify.ts');
    const script = `const { SystemdNotify } = await import(${JSON.stringify(sdNotify)});
const logger = { warn: (_, m) => console.error(m) };
new SystemdNotify({ env: process.env, pid: process.pid, now: () => performance.now(), logger }).ready();
await new Promise((r) => setTimeout(r, 500)); // the listener prints the message meanwhile`;
    const node = [process.execPath, '--input-type=module', '-e', script];
    const [cmd, ...args] = viaLauncher ? ['/usr/bin/perl', join(ROOT, 'bin/notify-socket.pl'), ...node] : node;
    const child = spawn(cmd as string, args, { ...asPostgres, env: { PATH: process.env.PATH, NOTIFY_SOCKET: socket }, stdio: ['ignore', 'inherit', 'inherit'] });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(child.pid as number) : reject(new Error(`exit ${code}`))));
    });
  }

  it('through bin/notify-socket.pl READY=1 carries the agent\'s PID (NotifyAccess=main accepts it); through systemd-notify it does not', async () => {
    const socket = join(dir, 'notify.sock');
    const { got, proc } = await listener(socket);
    try {
      const pid = await agentLike(true, socket);
      expect(got).toContainEqual({ pid, msg: 'READY=1' });
      got.length = 0;
      const fallbackPid = await agentLike(false, socket);
      const ready = got.find((g) => g.msg === 'READY=1');
      expect(ready).toBeDefined();
      expect(ready?.pid).not.toBe(fallbackPid); // sent by the systemd-notify child: dropped under NotifyAccess=main
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
