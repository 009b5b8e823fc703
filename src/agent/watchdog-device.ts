// /dev/watchdog (Patroni's `watchdog`): open while this member holds a lease, written to on each
// renewal and each beat of the HA loop that the gate allows (watchdog-gate.ts), closed with the
// magic 'V' when the lease is given up. If the agent stops writing (frozen, dead, past its
// deadline), the kernel resets the host when the device's timeout runs out. The keepalive comes
// from the agent's own event loop, not from the fencing process: the device must notice a frozen agent by itself, and
// the fencing process is the other, independent line. Node cannot ioctl, so the timeout is the
// driver's (softdog: soft_margin), read from sysfs or given as watchdog.timeout, and checked
// against ttl. Not tested against a real device: this machine has none (docs/data-safety.md).
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import type { NodeConfig } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import type { ExternalFence } from './fence.ts';
import { longestTimeoutMs, mayPet } from './watchdog-gate.ts';

export interface DeviceCheck {
  ok: boolean;
  timeoutMs: number | null;
  reason: string;
}

/** sysfs timeout of a watchdog device: /dev/watchdog is watchdog0. */
export function sysfsTimeout(device: string): number | null {
  const name = basename(device) === 'watchdog' ? 'watchdog0' : basename(device);
  try {
    const s = Number(readFileSync(`/sys/class/watchdog/${name}/timeout`, 'utf8').trim());
    return Number.isInteger(s) && s > 0 ? s : null;
  } catch {
    return null;
  }
}

/** Can this device guard a lease of `ttl`? Checked at start-up, without opening it. */
export function checkDevice(w: NodeConfig['watchdog'], d: { ttl: number; retry_timeout: number }): DeviceCheck {
  if (!existsSync(w.device)) return { ok: false, timeoutMs: null, reason: `${w.device} does not exist` };
  try { accessSync(w.device, constants.W_OK); } catch { return { ok: false, timeoutMs: null, reason: `${w.device} is not writable by this user` }; }
  const s = w.timeout ?? sysfsTimeout(w.device);
  if (s === null) return { ok: false, timeoutMs: null, reason: `the timeout of ${w.device} is unknown (no sysfs entry): set watchdog.timeout` };
  const max = longestTimeoutMs(d, w.safety_margin * 1000);
  if (s * 1000 > max) return { ok: false, timeoutMs: s * 1000, reason: `timeout ${s} s is longer than ttl - safety_margin - retry_timeout (${max / 1000} s)` };
  return { ok: true, timeoutMs: s * 1000, reason: 'ok' };
}

export interface DeviceWatchdogOptions {
  device: string;
  timeoutMs: number;
  safetyMs: number;
  fenceMarginMs(): number;
  logger: Logger;
  /** A keepalive was written (GET /metrics counts them). */
  onPet?: () => void;
}

export class DeviceWatchdog implements ExternalFence {
  readonly #o: DeviceWatchdogOptions;
  #fd: number | null = null;

  constructor(o: DeviceWatchdogOptions) {
    this.#o = o;
  }

  get timeoutMs(): number {
    return this.#o.timeoutMs;
  }

  get isOpen(): boolean {
    return this.#fd !== null;
  }

  /** A renewal moved the fence deadline to `msFromNow`: open the device and keep it alive if safe. */
  arm(msFromNow: number): void {
    if (!this.#mayPet(0, msFromNow)) return;
    this.#write(true);
  }

  /**
   * The HA loop is alive (every beat, between renewals too): keep an open device alive while the
   * lease deadline allows. Without these, a renewal later than the device's timeout (still well
   * inside the lease) would reset the host before the fence had any reason to act.
   */
  beat(now: number, leaseDeadline: number | null): void {
    if (this.#fd === null || leaseDeadline === null || !this.#mayPet(now, leaseDeadline)) return;
    this.#write(false);
  }

  #mayPet(now: number, leaseDeadline: number): boolean {
    return mayPet({ now, leaseDeadline, timeoutMs: this.#o.timeoutMs, fenceMarginMs: this.#o.fenceMarginMs(), safetyMs: this.#o.safetyMs });
  }

  #write(open: boolean): void {
    try {
      // O_WRONLY only: opening starts the watchdog; no O_CREAT, so a missing device is an error.
      if (open) this.#fd ??= openSync(this.#o.device, constants.O_WRONLY);
      if (this.#fd !== null) {
        writeSync(this.#fd, '1');
        this.#o.onPet?.();
      }
    } catch (err) {
      this.#o.logger.error({ event: 'watchdog failed', device: this.#o.device, err: { code: 'PGHA_WATCHDOG_UNAVAILABLE', message: (err as Error).message } }, 'could not write to the watchdog device');
    }
  }

  /** Lease given up: magic close ('V' then close) so the device stops counting. */
  disarm(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    try { writeSync(fd, 'V'); } catch { /* closing anyway */ }
    try { closeSync(fd); } catch { /* already closed */ }
  }
}
