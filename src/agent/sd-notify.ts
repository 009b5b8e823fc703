// systemd notification (Type=notify, WatchdogSec=): READY=1 once started, WATCHDOG=1 while the HA
// loop runs and its lease allows (watchdog-gate.ts).
//
// systemd/pgha.service starts the agent through bin/notify-socket.pl, which hands it a datagram
// socket already connected to NOTIFY_SOCKET ($PGHA_NOTIFY_FD; Node has no unix datagram sockets
// of its own). Each message is then one write(2) from the agent's own process, which the kernel
// stamps with the main PID, so the unit can use NotifyAccess=main: PostgreSQL's backends, which
// run as the same user in the same cgroup, cannot feed the watchdog in the agent's place.
// bin/pgha.js also goes through that launcher by itself when it finds NOTIFY_SOCKET without the
// descriptor (the agent started some other way), so notifying forks nothing. Only without it
// (no perl, the socket path missing at start, or main.ts run without the shim) is each message
// one run of /usr/bin/systemd-notify (an argument array, no shell), which only NotifyAccess=all
// accepts: a unit with NotifyAccess=main then never sees READY=1 and fails to start, which is
// the safe way round.
import { writeSync } from 'node:fs';
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
  /** A datagram socket connected to NOTIFY_SOCKET, from bin/notify-socket.pl; null: use systemd-notify. */
  readonly #fd: number | null;
  /** WatchdogSec as systemd passed it (WATCHDOG_USEC), if meant for this process. */
  readonly watchdogMs: number | null;
  #busy = false;
  #lastPet = -Infinity;
  #failed = false;

  constructor(o: NotifyOptions) {
    this.#o = o;
    this.#socket = o.env.NOTIFY_SOCKET || undefined;
    const fd = Number(o.env.PGHA_NOTIFY_FD);
    this.#fd = this.#socket !== undefined && o.env.PGHA_NOTIFY_FD !== undefined && Number.isInteger(fd) && fd > 2 ? fd : null;
    const usec = Number(o.env.WATCHDOG_USEC);
    const forUs = o.env.WATCHDOG_PID === undefined || Number(o.env.WATCHDOG_PID) === o.pid;
    this.watchdogMs = this.#socket !== undefined && forUs && Number.isFinite(usec) && usec > 0 ? usec / 1000 : null;
  }

  get enabled(): boolean {
    return this.#socket !== undefined;
  }

  /** Messages leave from this process itself (NotifyAccess=main works), not from a child. */
  get fromMainProcess(): boolean {
    return this.#fd !== null;
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
    if (this.#fd !== null) {
      try {
        writeSync(this.#fd, message);
        this.#done(message, true, '');
      } catch (err) {
        this.#done(message, false, (err as Error).message); // EAGAIN: systemd's queue is full
      }
      return;
    }
    this.#busy = true;
    const child = spawn(this.#o.bin ?? SYSTEMD_NOTIFY, [message], {
      stdio: 'ignore', env: { NOTIFY_SOCKET: socket, PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    // systemd answers the barrier within milliseconds; 2 s means it is not reading its socket.
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    const done = (ok: boolean, why: string) => {
      clearTimeout(timer);
      this.#busy = false;
      this.#done(message, ok, why);
    };
    child.once('error', (err) => done(false, err.message));
    child.once('exit', (code, signal) => done(code === 0, `exit ${code ?? signal}`));
  }

  #done(message: string, ok: boolean, why: string): void {
    if (!ok && !this.#failed) this.#o.logger.warn({ event: 'sd_notify failed', message, why }, `sd_notify ${message} failed: ${why}`);
    this.#failed = !ok;
  }
}
