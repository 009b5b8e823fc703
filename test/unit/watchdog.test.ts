// The watchdog layer: the keepalive gate, the /dev/watchdog write protocol and the systemd
// notification client.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { DeviceWatchdog, checkDevice } from '../../src/agent/watchdog-device.ts';
import { longestTimeoutMs, mayPet } from '../../src/agent/watchdog-gate.ts';
import { SystemdNotify } from '../../src/agent/sd-notify.ts';
import type { Logger } from '../../src/log/logger.ts';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';

const logged: string[] = [];
const logger = { info: () => undefined, warn: (_: unknown, m: string) => logged.push(m), error: (_: unknown, m: string) => logged.push(m) } as unknown as Logger;
const dir = mkdtempSync(join(tmpdir(), 'pgha-wd-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('keepalive gate', () => {
  it.each([
    ['no lease: always', { now: 0, leaseDeadline: null, timeoutMs: 1500 }, true],
    ['right after a renewal', { now: 0, leaseDeadline: 2250, timeoutMs: 1500 }, true],
    ['too close to the deadline', { now: 1200, leaseDeadline: 2250, timeoutMs: 1500 }, false],
    ['past the deadline', { now: 3000, leaseDeadline: 2250, timeoutMs: 1500 }, false],
  ])('%s', (_, i, want) => {
    expect(mayPet({ ...i, fenceMarginMs: 750, safetyMs: 375 })).toBe(want);
  });

  // Whatever the timing, a watchdog kept alive under the gate fires at least `safety` before the
  // earliest moment etcd can expire the key (the deadline plus fence_margin).
  test.prop([fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 5_000 })])(
    'a permitted keepalive never lets the watchdog fire after the key can expire',
    (now, deadline, timeoutMs, fenceMarginMs, safetyMs) => {
      if (mayPet({ now, leaseDeadline: deadline, timeoutMs, fenceMarginMs, safetyMs })) {
        expect(now + timeoutMs).toBeLessThanOrEqual(deadline + fenceMarginMs - safetyMs);
      }
    },
  );

  it('the longest usable timeout leaves a full retry_timeout for the renewal', () => {
    expect(longestTimeoutMs({ ttl: 3, retry_timeout: 1 }, 500)).toBe(1500);
  });
});

// This machine has no /dev/watchdog, and the softdog module cannot be loaded in the test
// environment. The write protocol is checked against a plain file: it records every byte written,
// in order (a FIFO would block the open until a reader appears). Not a real device.
describe('/dev/watchdog protocol (against a plain file)', () => {
  const w = { mode: 'automatic' as const, safety_margin: 0.5 };
  const d = { ttl: 3, retry_timeout: 1 };

  it('checks the device and its timeout before using it', () => {
    const dev = join(dir, 'watchdog');
    writeFileSync(dev, '');
    expect(checkDevice({ ...w, device: join(dir, 'missing') }, d).ok).toBe(false);
    expect(checkDevice({ ...w, device: dev }, d)).toMatchObject({ ok: false, reason: expect.stringContaining('unknown') });
    expect(checkDevice({ ...w, device: dev, timeout: 1 }, d)).toEqual({ ok: true, timeoutMs: 1000, reason: 'ok' });
    expect(checkDevice({ ...w, device: dev, timeout: 2 }, d)).toMatchObject({ ok: false, timeoutMs: 2000 });
  });

  it('writes a keepalive on each renewal the gate allows, and the magic V before closing', () => {
    const dev = join(dir, 'watchdog-proto');
    writeFileSync(dev, '');
    const wd = new DeviceWatchdog({ device: dev, timeoutMs: 1000, safetyMs: 500, fenceMarginMs: () => 750, logger });
    wd.arm(500); // 500 + 750 - 500 < 1000: too close, and the device is not even opened
    expect(wd.isOpen).toBe(false);
    wd.arm(2250);
    wd.arm(2000);
    expect(readFileSync(dev, 'utf8')).toBe('11');
    wd.arm(700); // the gate refuses: no keepalive, the device will fire unless a renewal comes
    expect(readFileSync(dev, 'utf8')).toBe('11');
    wd.beat(10_000, 12_000); // between renewals, the deadline still far enough: keepalive
    wd.beat(11_500, 12_000); // too close to the deadline: none
    wd.beat(10_000, null); // no lease: none (the device is only kept while leading)
    expect(readFileSync(dev, 'utf8')).toBe('111');
    wd.disarm();
    expect(readFileSync(dev, 'utf8')).toBe('111V');
    wd.beat(10_000, 12_000); // closed: beats do not reopen it
    expect(readFileSync(dev, 'utf8')).toBe('111V');
    expect(wd.isOpen).toBe(false);
    wd.disarm(); // idempotent
    expect(readFileSync(dev, 'utf8')).toBe('111V');
  });

  it('logs, and does not throw, when the device cannot be opened', () => {
    const wd = new DeviceWatchdog({ device: join(dir, 'gone'), timeoutMs: 1000, safetyMs: 500, fenceMarginMs: () => 750, logger });
    expect(() => wd.arm(2250)).not.toThrow();
    expect(logged.at(-1)).toMatch(/could not write to the watchdog device/);
  });
});

describe('systemd notify', () => {
  it('reads WatchdogSec from WATCHDOG_USEC, for this process only', () => {
    const base = { pid: 42, now: () => 0, logger };
    expect(new SystemdNotify({ ...base, env: {} }).enabled).toBe(false);
    expect(new SystemdNotify({ ...base, env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1500000' } }).watchdogMs).toBe(1500);
    expect(new SystemdNotify({ ...base, env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1500000', WATCHDOG_PID: '42' } }).watchdogMs).toBe(1500);
    expect(new SystemdNotify({ ...base, env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1500000', WATCHDOG_PID: '7' } }).watchdogMs).toBeNull();
    expect(new SystemdNotify({ ...base, env: { WATCHDOG_USEC: '1500000' } }).watchdogMs).toBeNull();
  });

  it('sends READY=1 and rate-limited WATCHDOG=1 through systemd-notify to a datagram socket', async () => {
    const socket = join(dir, 'notify.sock');
    const got: string[] = [];
    // python's recv() drops the fd systemd-notify attaches to BARRIER=1, which releases it.
    const py: ChildProcess = spawn('python3', ['-c', 'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("up",flush=True)\nwhile True: print(s.recv(4096).decode().replace("\\n"," "),flush=True)', socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    py.stdout?.on('data', (b: Buffer) => got.push(...b.toString().split('\n').filter(Boolean)));
    try {
      const until = async (f: () => boolean) => { for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 50)); };
      await until(() => got.includes('up'));
      let now = 0;
      const n = new SystemdNotify({ env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '1000000' }, pid: process.pid, now: () => now, logger });
      n.ready();
      await until(() => got.includes('READY=1'));
      now = 1000;
      n.pet();
      await until(() => got.includes('WATCHDOG=1'));
      await new Promise((r) => setTimeout(r, 200)); // let the child exit
      now = 1100; // less than WatchdogSec/4 since the last: skipped
      n.pet();
      now = 1300;
      n.pet();
      await until(() => got.filter((m) => m === 'WATCHDOG=1').length === 2);
      await new Promise((r) => setTimeout(r, 200));
      // Each message is followed by systemd-notify's BARRIER=1 (it waits until it is processed).
      expect(got.filter((m) => m !== 'up' && m !== 'BARRIER=1')).toEqual(['READY=1', 'WATCHDOG=1', 'WATCHDOG=1']);
    } finally {
      py.kill('SIGKILL');
    }
  });
});

// The fence order (src/agent/act.ts): the deadline, which gates the watchdogs' keepalives and arms
// the fencing process, is dropped only once PostgreSQL is down. A fence that failed leaves it in
// place, so the outside watchdogs still stop PostgreSQL.
describe('fencing keeps the deadline until PostgreSQL is down', () => {
  const setup = (stop: () => Promise<void>) => {
    const events: string[] = [];
    const external = { arm: () => events.push('external armed'), disarm: () => events.push('external disarmed') };
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined, external });
    const actor = new Actor({
      fence, logger, now: () => 0,
      pg: { stop: async () => { events.push('stop'); await stop(); } } as unknown as PostgresControl,
      setLeadership: (held: boolean) => events.push(`leader ${held}`),
      fenced: () => events.push(`fenced, deadline ${String(fence.deadline)}`),
    } as unknown as ActorDeps);
    fence.arm(60_000);
    events.length = 0;
    return { actor, fence, events };
  };

  it('a successful fence stops PostgreSQL first, then drops the deadline and beats', async () => {
    const { actor, fence, events } = setup(async () => undefined);
    await actor.fenceNow('test');
    expect(events).toEqual(['leader false', 'stop', 'external disarmed', 'fenced, deadline null']);
    expect(fence.deadline).toBeNull();
    fence.disarm();
  });

  it('a failed fence keeps the deadline and the fencing process armed', async () => {
    const { actor, fence, events } = setup(async () => { throw new Error('postmaster still alive'); });
    await actor.fenceNow('test');
    expect(events).toEqual(['leader false', 'stop']);
    expect(fence.deadline).toBe(60_000);
    expect(mayPet({ now: 61_000, leaseDeadline: fence.deadline, timeoutMs: 1000, fenceMarginMs: 500, safetyMs: 250 })).toBe(false);
    expect(logged.some((m) => m.startsWith('FENCE FAILED'))).toBe(true);
    fence.disarm();
  });
});
