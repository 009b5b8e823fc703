// Patroni's callbacks (docs/callbacks.md): `command action role scope`, run with an argument
// array (never a shell), in their own process group, with a timeout that kills that group, the
// agent's environment minus anything that looks like a secret, and their output logged. The
// on_* callbacks are fired and never awaited; pre_promote and before_stop are awaited, bounded
// by their own timeouts. Nothing here throws into the HA loop except a pre_promote veto.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { CALLBACK_ACTIONS, type NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { LocalPostgres, SyncMethod, SourceState } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import type { SlotState } from '../postgres/slot-copy.ts';
import type { PostgresControl, Upstream } from '../postgres/types.ts';

export type CallbackAction = typeof CALLBACK_ACTIONS[number];
export type CallbackName = CallbackAction | 'pre_promote' | 'before_stop';
/** Patroni 3's role names (Patroni 2 passed `master` for the primary). */
export type CallbackRole = 'primary' | 'replica';

export interface CallbackOutcome {
  ok: boolean;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Could not be started: ENOENT, EACCES, ... */
  error: string | null;
  ms: number;
  stdout: string;
  stderr: string;
}

/** Bytes of each of stdout and stderr kept for the log (the first ones). */
export const OUTPUT_LIMIT = 4096;
/**
 * After the callback exits, how long its pipes may stay open (a background child it left
 * behind holds them) before we stop reading: its output so far is logged, the child lives on.
 */
const PIPE_GRACE_MS = 1000;

/** Environment variables a callback does not inherit: PGPASSWORD, *_TOKEN, *SECRET*, ... */
const SECRET_ENV = /PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE/i;

export function callbackEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !SECRET_ENV.test(k)) out[k] = v;
  return out;
}

/** Run `argv` once, killing its process group after `timeoutMs`. Never rejects. */
export function runCommand(argv: readonly string[], timeoutMs: number, env: Record<string, string>): Promise<CallbackOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const out = { stdout: '', stderr: '' };
    let timedOut = false;
    let settled = false;
    let exit: { code: number | null; signal: string | null } | null = null;
    const finish = (error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const code = exit?.code ?? null;
      resolve({ ok: error === null && !timedOut && code === 0, code, signal: exit?.signal ?? null, timedOut, error, ms: Math.round(performance.now() - started), ...out });
    };
    // detached: its own process group, so a timeout kills the script and everything it started.
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    const timer = setTimeout(() => {
      timedOut = true;
      try { if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    for (const s of ['stdout', 'stderr'] as const) {
      child[s]?.setEncoding('utf8');
      child[s]?.on('data', (chunk: string) => { if (out[s].length < OUTPUT_LIMIT) out[s] = (out[s] + chunk).slice(0, OUTPUT_LIMIT); });
    }
    child.on('error', (err: NodeJS.ErrnoException) => finish(`${err.code ?? 'error'}: ${err.message}`));
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      setTimeout(() => { child.stdout?.destroy(); child.stderr?.destroy(); finish(null); }, PIPE_GRACE_MS).unref();
    });
    child.on('close', () => finish(null));
  });
}

export interface CallbacksOptions {
  /** The live node configuration (a reload changes callbacks and timeouts in place). */
  config(): NodeConfig;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/**
 * At most one running instance per on_* callback. An event while one runs is queued; a later
 * event replaces the queued one (only the latest state matters to a VIP or DNS script).
 */
export class Callbacks {
  readonly #o: CallbacksOptions;
  readonly #running = new Map<CallbackName, Promise<void>>();
  readonly #queued = new Map<CallbackAction, CallbackRole>();

  constructor(o: CallbacksOptions) {
    this.#o = o;
  }

  #command(name: CallbackName): string[] | undefined {
    const pg = this.#o.config().postgresql;
    return name === 'pre_promote' ? pg.pre_promote : name === 'before_stop' ? pg.before_stop : pg.callbacks[name];
  }

  async #run(name: CallbackName, cmd: string[], role: CallbackRole, timeoutMs: number): Promise<CallbackOutcome> {
    const argv = [...cmd, name, role, this.#o.config().scope];
    const r = await runCommand(argv, timeoutMs, callbackEnv(this.#o.env ?? process.env));
    const fields = { event: 'callback', callback: name, argv, code: r.code, signal: r.signal, ms: r.ms, stdout: r.stdout, stderr: r.stderr };
    if (r.ok) this.#o.logger.info(fields, `callback ${name} ${role} done`);
    else {
      const why = r.error ?? (r.timedOut ? `killed after ${timeoutMs} ms (timeout)` : `exited with ${r.code ?? r.signal}`);
      this.#o.logger.warn({ ...fields, err: { code: 'PGHA_CALLBACK_FAILED', message: why } }, `callback ${name} failed: ${why}`);
    }
    return r;
  }

  /** Fire an on_* callback without waiting for it (queued behind a running one). */
  fire(action: CallbackAction, role: CallbackRole): void {
    if (this.#command(action) === undefined) return;
    if (this.#running.has(action)) {
      this.#queued.set(action, role);
      return;
    }
    const next = async () => {
      for (let r: CallbackRole | undefined = role; r !== undefined; r = this.#queued.get(action)) {
        this.#queued.delete(action);
        const cmd = this.#command(action); // read again: a reload may have changed or removed it
        if (cmd !== undefined) await this.#run(action, cmd, r, this.#o.config().postgresql.callback_timeout * 1000);
      }
    };
    const p = next().catch((err: unknown) => this.#o.logger.error({ err }, `callback ${action} failed`)).finally(() => this.#running.delete(action));
    this.#running.set(action, p);
  }

  /**
   * Run pre_promote or before_stop and wait for it (bounded by its timeout). Null when none is
   * configured.
   */
  async gate(name: 'pre_promote' | 'before_stop', role: CallbackRole): Promise<CallbackOutcome | null> {
    const cmd = this.#command(name);
    if (cmd === undefined) return null;
    const pg = this.#o.config().postgresql;
    return this.#run(name, cmd, role, (name === 'pre_promote' ? pg.pre_promote_timeout : pg.before_stop_timeout) * 1000);
  }

  /** pre_promote: resolves when promotion may go ahead; throws PGHA_PROMOTE_VETOED otherwise. */
  async prePromote(): Promise<void> {
    const r = await this.gate('pre_promote', 'replica');
    if (r === null || r.ok) return;
    const why = r.error ?? (r.timedOut ? 'it ran past pre_promote_timeout' : `it exited with ${r.code ?? r.signal}`);
    throw new PgHaError('PGHA_PROMOTE_VETOED', `pre_promote vetoed this promotion: ${why}`);
  }

  /** Wait for the on_* callbacks running now (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()]);
  }

  /** idle(), but at most `ms`: true when every callback finished. */
  async drain(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
    try {
      return await Promise.race([this.idle().then(() => true as const), late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The local PostgreSQL with the callbacks around its steps: on_start / on_role_change after a
 * start, before_stop and on_stop around a clean stop, on_role_change after a promotion,
 * on_reload after a reload; on_restart replaces on_stop + on_start inside `restart()`.
 * A fencing stop (immediate) runs no before_stop: nothing may delay it.
 */
export class CallbackPostgres implements PostgresControl {
  readonly #pg: PostgresControl;
  readonly #cb: Callbacks;
  #role: CallbackRole | null = null;
  #running = false;
  #inRestart = false;

  constructor(pg: PostgresControl, cb: Callbacks) {
    this.#pg = pg;
    this.#cb = cb;
  }

  async observe(): Promise<LocalPostgres> {
    const l = await this.#pg.observe();
    this.#running = l.running;
    if (l.running && this.#role === null && l.role !== null) this.#role = l.role === 'primary' ? 'primary' : 'replica';
    return l;
  }

  async start(as: 'primary' | 'standby', upstream: Upstream | null): Promise<void> {
    await this.#pg.start(as, upstream);
    const role: CallbackRole = as === 'primary' ? 'primary' : 'replica';
    const was = this.#role;
    this.#role = role;
    this.#running = true;
    if (this.#inRestart) return;
    this.#cb.fire(was !== null && was !== role ? 'on_role_change' : 'on_start', role);
  }

  async stop(mode: 'smart' | 'fast' | 'immediate'): Promise<void> {
    const wasRunning = this.#running;
    if (wasRunning && mode !== 'immediate') await this.#cb.gate('before_stop', this.#role ?? 'replica');
    await this.#pg.stop(mode);
    this.#running = false;
    if (wasRunning && !this.#inRestart) this.#cb.fire('on_stop', this.#role ?? 'replica');
  }

  async promote(): Promise<{ timeline: number; lsn: string }> {
    const r = await this.#pg.promote();
    this.#role = 'primary';
    this.#cb.fire('on_role_change', 'primary');
    return r;
  }

  async reload(): Promise<void> {
    await this.#pg.reload();
    this.#cb.fire('on_reload', this.#role ?? 'replica');
  }

  async applyConfig(upstream: Upstream | null): Promise<boolean> {
    const reloaded = await this.#pg.applyConfig(upstream);
    if (reloaded) this.#cb.fire('on_reload', this.#role ?? 'replica');
    return reloaded;
  }

  /** An operator's restart: one on_restart at the end instead of on_stop and on_start. */
  async restart<T>(fn: () => Promise<T>): Promise<T> {
    this.#inRestart = true;
    try {
      return await fn();
    } finally {
      this.#inRestart = false;
      if (this.#running) this.#cb.fire('on_restart', this.#role ?? 'replica');
    }
  }

  initdb(): Promise<void> { return this.#pg.initdb(); }
  createRoles(): Promise<void> { return this.#pg.createRoles(); }
  follow(upstream: Upstream | null): Promise<void> { return this.#pg.follow(upstream); }
  clone(from: Upstream): Promise<void> { return this.#pg.clone(from); }
  rewind(from: Upstream): Promise<void> { return this.#pg.rewind(from); }
  checkpointLsn(): Promise<number | null> { return this.#pg.checkpointLsn(); }
  wipe(o?: { forReclone?: boolean }): Promise<void> { return this.#pg.wipe(o); }
  settle(): Promise<void> { return this.#pg.settle(); }
  ensureSlots(slotNames: string[], dropAbsent: boolean): Promise<void> { return this.#pg.ensureSlots(slotNames, dropAbsent); }
  async readSlotStates(from: Upstream, names: string[]): Promise<SlotState[]> {
    if (this.#pg.readSlotStates === undefined) throw new Error('copying logical slots is not supported here');
    return this.#pg.readSlotStates(from, names);
  }
  async readStoppedSlotPositions(): Promise<Record<string, number>> {
    if (this.#pg.readStoppedSlotPositions === undefined) throw new Error('reading slot state files is not supported here');
    return this.#pg.readStoppedSlotPositions();
  }
  async installSlotStates(states: SlotState[]): Promise<void> {
    if (this.#pg.installSlotStates === undefined) throw new Error('copying logical slots is not supported here');
    return this.#pg.installSlotStates(states);
  }
  setSyncNames(names: string[] | null, count: number, method: SyncMethod): Promise<boolean> { return this.#pg.setSyncNames(names, count, method); }
  flushLsn(): Promise<number | null> { return this.#pg.flushLsn(); }
  crash(): Promise<void> { return this.#pg.crash(); }
  async readSource(source: Upstream): Promise<SourceState> {
    if (this.#pg.readSource === undefined) return { reachable: false, error: 'reading a source cluster is not supported here', systemId: null, timeline: null, lsn: null, writable: null };
    return this.#pg.readSource(source);
  }
  close(): Promise<void> { return this.#pg.close(); }
}
