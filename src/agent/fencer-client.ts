// Starts the fencing process (bin/pgha-fencer.pl, run by perl) and tells it every deadline the
// fence timer arms.
//
// A fencing process that dies (killed, out of memory) is started again at once and told the
// current deadline, so a frozen agent is still fenced at it. If it cannot be kept running
// (MAX_RESTARTS deaths within RESTART_WINDOW_MS, or it cannot be spawned at all), `onLost` is
// called: the agent then stops PostgreSQL in immediate mode and exits (src/agent/main.ts), so a
// leader never runs on without a guard outside its own event loop; systemd restarts the agent.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgHaError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';

/** perl-base is Essential on Debian: /usr/bin/perl is on every host. */
export const PERL = '/usr/bin/perl';
/**
 * bin/pgha-fencer.pl of this installation: the nearest `bin/pgha-fencer.pl` two or three levels
 * above this module (src/agent/ in a checkout; compiled code may sit one level deeper).
 */
export function fencerScript(from = dirname(fileURLToPath(import.meta.url))): string {
  const candidates = [join(from, '../../bin/pgha-fencer.pl'), join(from, '../../../bin/pgha-fencer.pl')];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}
/** Deaths tolerated within RESTART_WINDOW_MS: a fencer killed once is restarted; one that dies on every start is not. */
export const MAX_RESTARTS = 3;
/** 60 s: a fencer that keeps dying within a minute of each start will not stay up. */
export const RESTART_WINDOW_MS = 60_000;

/** CLOCK_MONOTONIC in ms: comparable with the fencing process's clock. */
const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n);

export interface FencerOptions {
  dataDir: string;
  logger: Logger;
  /** The fencing process is gone for good: stop PostgreSQL, exit. */
  onLost(err: PgHaError): void;
  /** Tests: another script or interpreter. */
  script?: string;
  perl?: string;
}

type Message = { armed: true; deadline: number } | { armed: false };

export class FencerProcess {
  readonly #o: FencerOptions;
  #child: ChildProcess | null = null;
  /** The last message sent: a restarted fencer gets it first. */
  #last: Message = { armed: false };
  #deaths: number[] = [];
  #closing = false;
  #lost = false;

  constructor(o: FencerOptions) {
    this.#o = o;
    this.#spawn();
  }

  /** The running fencing process's PID (tests). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  #spawn(): void {
    const child = spawn(this.#o.perl ?? PERL, [this.#o.script ?? fencerScript(), this.#o.dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child = child;
    child.stdout?.on('data', (d: Buffer) => this.#o.logger.warn({ event: 'demoted', why: 'fencing process', detail: d.toString().trim() }, 'fencing process: the lease deadline passed'));
    child.stdin?.on('error', () => undefined);
    // 'error': it could not be spawned (or signalled); 'exit': it ended. Either may come alone.
    child.on('error', (err) => this.#died(child, `cannot run: ${err.message}`));
    child.on('exit', (code, signal) => this.#died(child, `exit ${code ?? signal}`));
    this.#write(child, this.#last);
  }

  #died(child: ChildProcess, why: string): void {
    if (child !== this.#child || this.#closing || this.#lost) return;
    this.#child = null;
    const now = performance.now();
    this.#deaths = this.#deaths.filter((t) => now - t < RESTART_WINDOW_MS);
    this.#deaths.push(now);
    if (this.#deaths.length > MAX_RESTARTS) {
      this.#lost = true;
      this.#o.onLost(new PgHaError('PGHA_FENCER_LOST', `the fencing process died ${this.#deaths.length} times within ${RESTART_WINDOW_MS / 1000} s (last: ${why})`));
      return;
    }
    this.#o.logger.error({ event: 'fencer exited', why }, `the fencing process died (${why}): starting it again`);
    this.#spawn();
  }

  /** `msFromNow`: the deadline relative to now on any clock. */
  arm(msFromNow: number): void {
    this.#send({ armed: true, deadline: monotonicMs() + msFromNow });
  }

  disarm(): void {
    this.#send({ armed: false });
  }

  #send(m: Message): void {
    this.#last = m;
    if (this.#child !== null) this.#write(this.#child, m);
  }

  #write(child: ChildProcess, m: Message): void {
    child.stdin?.write(`${JSON.stringify(m)}\n`);
  }

  /** Disarm and let it exit (clean agent shutdown). */
  close(): void {
    this.disarm();
    this.#closing = true;
    this.#child?.stdin?.end();
  }
}
