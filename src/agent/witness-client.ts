// Starts the lease witness (src/witness/main.ts, a Node process of its own) and tells it what the
// lease allows: the fence timer's deadline (on CLOCK_MONOTONIC, as an absolute time, so a freeze
// between the agent's reading of its clock and the write shifts nothing), "open" while the cluster
// is paused, "closed" otherwise. It is one more ExternalFence (fence.ts), told every deadline the
// fence timer arms.
//
// A witness that dies is started again (after RESTART_DELAY_MS) and told the current lease: while
// it is away, a primary that lists it in synchronous_standby_names acknowledges no commit, which
// is safe, so there is no "lost" escalation as for the fencing process; every death is logged.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { splitHostPort, type NodeConfig } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import { WITNESS_NAME } from '../witness/names.ts';
import { CLOSED, formatLease, type Lease, type WitnessStart } from '../witness/lease.ts';
import type { ExternalFence } from './fence.ts';

/** 500 ms before a dead witness is started again: soon (commits wait meanwhile), without a spawn loop. */
export const RESTART_DELAY_MS = 500;

/**
 * The witness holds a few buffers at a time: small V8 heaps keep it to a few tens of MB resident
 * (Node's defaults let an idle heap grow several times that). A witness that ever outgrew them
 * would die and be restarted, and commits would wait meanwhile.
 */
export const NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=32'];

/** src/witness/main.ts in a checkout, dist/witness/main.js when compiled: beside this module's folder. */
export function witnessScript(from = import.meta.url): string {
  const ext = from.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`../witness/main.${ext}`, from));
}

/** Where the witness connects: postgresql.listen, with a wildcard address replaced by loopback. */
export function witnessStart(c: Pick<NodeConfig, 'postgresql'>): WitnessStart {
  const { host, port } = splitHostPort(c.postgresql.listen);
  const r = c.postgresql.authentication.replication;
  const local = host === '0.0.0.0' || host === '*' || host === '' ? '127.0.0.1' : host === '::' || host === '[::]' ? '::1' : host.replace(/^\[(.*)\]$/, '$1');
  const tls = Object.fromEntries((['sslmode', 'sslrootcert', 'sslcert', 'sslkey'] as const).flatMap((k) => (r[k] === undefined ? [] : [[k, r[k]]])));
  const wantsTls = r.sslmode === 'require' || r.sslmode === 'verify-ca' || r.sslmode === 'verify-full';
  return { host: local, port, user: r.username, password: r.password, applicationName: WITNESS_NAME, ssl: c.postgresql.ssl !== undefined || wantsTls, tls };
}

/** CLOCK_MONOTONIC in ms (process.hrtime), the witness's clock. */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface WitnessOptions {
  start: WitnessStart;
  logger: Logger;
  /** The fence timer's clock, whose deadlines arm() receives (performance.now() in the agent). */
  now(): number;
  /** Tests: another interpreter or script. */
  node?: string;
  script?: string;
}

export class WitnessProcess implements ExternalFence {
  readonly #o: WitnessOptions;
  #child: ChildProcess | null = null;
  #lease: Lease = CLOSED;
  #closing = false;
  #restart: NodeJS.Timeout | null = null;

  constructor(o: WitnessOptions) {
    this.#o = o;
    this.#spawn();
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  #spawn(): void {
    const o = this.#o;
    const child = spawn(o.node ?? process.execPath, [...NODE_FLAGS, o.script ?? witnessScript()], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child = child;
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) { this.#report(out.slice(0, nl)); out = out.slice(nl + 1); }
    });
    child.stdin?.on('error', () => undefined);
    child.on('error', (err) => this.#died(child, `cannot run: ${err.message}`));
    child.on('exit', (code, signal) => this.#died(child, `exit ${code ?? signal}`));
    // The first line holds the password: it goes down the pipe, never into argv, the environment or a log.
    child.stdin?.write(`${JSON.stringify(o.start)}\n`);
    child.stdin?.write(formatLease(this.#lease));
  }

  #report(line: string): void {
    let r: { event?: unknown; why?: unknown; timeline?: unknown; start?: unknown };
    try { r = JSON.parse(line) as typeof r; } catch { return; }
    const fields = { event: `witness ${String(r.event)}`, why: r.why, timeline: r.timeline, start: r.start };
    if (r.event === 'streaming') this.#o.logger.info(fields, `lease witness streaming (timeline ${String(r.timeline)})`);
    else this.#o.logger.warn(fields, `lease witness: ${String(r.event)}${r.why === undefined ? '' : ` (${String(r.why)})`}`);
  }

  #died(child: ChildProcess, why: string): void {
    if (child !== this.#child || this.#closing) return;
    this.#child = null;
    this.#o.logger.error({ event: 'witness exited', why }, `the lease witness died (${why}): commits wait until it is back`);
    if (this.#restart === null) this.#restart = setTimeout(() => { this.#restart = null; if (!this.#closing) this.#spawn(); }, RESTART_DELAY_MS);
  }

  #send(l: Lease): void {
    this.#lease = l;
    this.#child?.stdin?.write(formatLease(l));
  }

  /** `deadline`: the same deadline on opts.now()'s clock, made absolute on CLOCK_MONOTONIC. */
  arm(msFromNow: number, deadline?: number): void {
    const at = deadline === undefined ? monotonicMs() + msFromNow : deadline + (monotonicMs() - this.#o.now());
    this.#send({ mode: 'deadline', at });
  }

  disarm(): void {
    this.#send(CLOSED);
  }

  /** The cluster is paused: the leader keeps no deadline, commits are confirmed. */
  hold(): void {
    this.#send({ mode: 'open' });
  }

  close(): void {
    this.#send(CLOSED);
    this.#closing = true;
    if (this.#restart !== null) clearTimeout(this.#restart);
    this.#child?.stdin?.end();
    this.#child?.kill('SIGTERM');
  }
}
