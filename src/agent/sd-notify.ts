// systemd notification (Type=notify, WatchdogSec=): READY=1 once started, WATCHDOG=1 while the HA
// loop runs and its lease allows (watchdog-gate.ts). Node has no unix datagram sockets, so each
// message is one run of systemd-notify (an argument array, no shell). Since systemd 246 it waits
// until systemd has processed the message (a barrier), so systemd can still attribute it to this
// unit's cgroup; the sender is that child, hence NotifyAccess=all in systemd/pgha.service.
import { spawn } from 'node:child_process';
import type { Logger } from '../log/logger.ts';

export const SYSTEMD_NOTIFY = '/usr/bin/systemd-notify';

export interface NotifyOptions {
  env: NodeJS.ProcessEnv;
  pid: number;
  /** Monotonic clock, ms. */
  now(): number;
  logger: Logger;
  bin?: string;
  /** A WATCHDOG=1 was sent (GET /metrics counts them). */
  onPet?: () => void;
}

export class SystemdNotify {
  readonly #o: NotifyOptions;
  readonly #socket: string | undefined;
  /** WatchdogSec as systemd passed it (WATCHDOG_USEC), if meant for this process. */
  readonly watchdogMs: number | null;
  #busy = false;
  #lastPet = -Infinity;
  #failed = false;

  constructor(o: NotifyOptions) {
    this.#o = o;
    this.#socket = o.env.NOTIFY_SOCKET || undefined;
    const usec = Number(o.env.WATCHDOG_USEC);
    const forUs = o.env.WATCHDOG_PID === undefined || Number(o.env.WATCHDOG_PID) === o.pid;
    this.watchdogMs = this.#socket !== undefined && forUs && Number.isFinite(usec) && usec > 0 ? usec / 1000 : null;
  }

  get enabled(): boolean {
    return this.#socket !== undefined;
  }

  ready(): void {
    this.#send('READY=1');
  }

  /**
   * WATCHDOG=1, at most every quarter of WatchdogSec (systemd recommends every half; a quarter
   * leaves room for one slow spawn) and never while the previous message is still in flight.
   */
  pet(): void {
    if (this.watchdogMs === null || this.#busy) return;
    const t = this.#o.now();
    if (t - this.#lastPet < Math.max(100, this.watchdogMs / 4)) return;
    this.#lastPet = t;
    this.#send('WATCHDOG=1');
    this.#o.onPet?.();
  }

  #send(message: string): void {
    const socket = this.#socket;
    if (socket === undefined) return;
    this.#busy = true;
    const child = spawn(this.#o.bin ?? SYSTEMD_NOTIFY, [message], {
      stdio: 'ignore', env: { NOTIFY_SOCKET: socket, PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    // systemd answers the barrier within milliseconds; 2 s means it is not reading its socket.
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    const done = (ok: boolean, why: string) => {
      clearTimeout(timer);
      this.#busy = false;
      if (!ok && !this.#failed) this.#o.logger.warn({ event: 'sd_notify failed', message, why }, `systemd-notify ${message} failed: ${why}`);
      this.#failed = !ok;
    };
    child.once('error', (err) => done(false, err.message));
    child.once('exit', (code, signal) => done(code === 0, `exit ${code ?? signal}`));
  }
}
