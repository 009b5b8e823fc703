// Starts the fencing process (fencer.mjs) and tells it every deadline the fence timer arms.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../log/logger.ts';

const FENCER = new URL('./fencer.mjs', import.meta.url).pathname;
/**
 * The fencer allocates almost nothing: a 1 MB young generation instead of V8's default 16 MB
 * semi-spaces, and one V8 worker thread instead of one per core.
 */
const FENCER_FLAGS = ['--max-semi-space-size=1', '--v8-pool-size=1'];

/** CLOCK_MONOTONIC in ms: comparable with the fencing process's clock. */
const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n);

export class FencerProcess {
  #child: ChildProcess;

  constructor(dataDir: string, logger: Logger) {
    this.#child = spawn(process.execPath, [...FENCER_FLAGS, FENCER, dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout?.on('data', (d: Buffer) => logger.warn({ event: 'demoted', why: 'fencing process', detail: d.toString().trim() }, 'fencing process stopped PostgreSQL: the lease deadline passed'));
    this.#child.on('exit', (code, signal) => logger.warn({ event: 'fencer exited', code, signal }, 'the fencing process exited'));
    this.#child.stdin?.on('error', () => undefined);
  }

  /** `msFromNow`: the deadline relative to now on any clock. */
  arm(msFromNow: number): void {
    this.#send({ armed: true, deadline: monotonicMs() + msFromNow });
  }

  disarm(): void {
    this.#send({ armed: false });
  }

  #send(m: object): void {
    this.#child.stdin?.write(`${JSON.stringify(m)}\n`);
  }

  /** Disarm and let it exit (clean agent shutdown). */
  close(): void {
    this.disarm();
    this.#child.stdin?.end();
  }
}
