// The one write probe of the lab: a client that commits one row per attempt to a PostgreSQL port
// (a member, or HAProxy's read-write port), reconnecting after an error, and records every
// attempt with its outcome:
//   ok       the server acknowledged the commit;
//   fail     the write certainly did not commit (no connection, or an SQLSTATE that rejects it);
//   unknown  the connection broke, timed out or was shut down after the statement was sent: the
//            commit may have happened (classify()).
// The benchmarks (outage and loss per event), the chaos workload (one probe per client, checked
// by lab/chaos/checker.ts) and the integration tests' writers (sessionWriter) all use it.
import pg from 'pg';
import { superuserClient } from './util.ts';

export type Outcome = 'ok' | 'fail' | 'unknown';

/**
 * An error that proves the statement did not commit: the server answered with an SQLSTATE of a
 * class that rejects the statement (read-only transaction, disk full, ...). Connection loss,
 * timeouts and administrator shutdowns leave the outcome unknown: the commit may have happened.
 * `sent`: false when the failure came before the statement left the client (connecting).
 */
export function classify(err: unknown, sent: boolean): Outcome {
  if (!sent) return 'fail';
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return 'unknown';
  if (code.startsWith('08') || code.startsWith('57') || code.startsWith('58') || code === 'XX000') return 'unknown';
  return 'fail';
}

export interface Attempt<Row = Record<string, unknown>> {
  id: number;
  /** performance.now() when the attempt began and ended (durations, outages). */
  start: number;
  end: number;
  /** Date.now() at the same moments (compared with server clocks and other processes' logs). */
  invokeMs: number;
  completeMs: number;
  outcome: Outcome;
  /** outcome === 'ok'. */
  ok: boolean;
  /** The statement's first row for an acknowledged write (e.g. INSERT ... RETURNING). */
  row?: Row;
  error?: string;
}

export interface WriteProbeOptions<Row> {
  port: number;
  host?: string;
  /** The table of the default statement `insert into <table>(id) values ($1)`. */
  table?: string;
  /** The statement of attempt `id` instead of the default insert. */
  statement?: (id: number) => { text: string; values: unknown[] };
  /** Run once on each new session before the first write (e.g. create table if not exists). */
  setup?: string;
  /** The first id (then +1 per attempt); default 1. */
  firstId?: number;
  connectMs: number;
  queryMs: number;
  /** Pause after an acknowledged write, and after a failed one (default: pauseMs). */
  pauseMs?: number;
  failPauseMs?: number;
  /** Stop at the first attempt that is not acknowledged (a writer on one session). */
  stopOnFailure?: boolean;
  /** Called with each attempt as it completes. */
  onAttempt?: (a: Attempt<Row>) => void;
}

export class WriteProbe<Row = Record<string, unknown>> {
  readonly attempts: Attempt<Row>[] = [];
  readonly #o: WriteProbeOptions<Row>;
  #stop = false;
  #done: Promise<void> | null = null;

  constructor(o: WriteProbeOptions<Row>) { this.#o = o; }

  start(): this { this.#done ??= this.#run(); return this; }
  async stop(): Promise<void> { this.#stop = true; await this.#done; }
  /** Whether the probe has ended by itself (stopOnFailure) or been stopped. */
  get stopped(): boolean { return this.#stop; }

  #statement(id: number): { text: string; values: unknown[] } {
    if (this.#o.statement !== undefined) return this.#o.statement(id);
    if (this.#o.table === undefined) throw new Error('WriteProbe: give a table or a statement');
    return { text: `insert into ${this.#o.table}(id) values ($1)`, values: [id] };
  }

  async #run(): Promise<void> {
    let c: pg.Client | null = null;
    for (let id = this.#o.firstId ?? 1; !this.#stop; id++) {
      const a: Attempt<Row> = { id, start: performance.now(), end: 0, invokeMs: Date.now(), completeMs: 0, outcome: 'fail', ok: false };
      let sent = false;
      try {
        if (c === null) {
          c = superuserClient({ host: this.#o.host ?? '127.0.0.1', port: this.#o.port, connectMs: this.#o.connectMs, queryMs: this.#o.queryMs });
          await c.connect();
          if (this.#o.setup !== undefined) await c.query(this.#o.setup);
        }
        sent = true;
        const st = this.#statement(id);
        const r = await c.query(st.text, st.values);
        a.outcome = 'ok';
        a.ok = true;
        if (r.rows[0] !== undefined) a.row = r.rows[0] as Row;
      } catch (e) {
        a.outcome = classify(e, sent);
        a.error = (e instanceof Error ? e.message : String(e)).slice(0, 120);
        const dead: pg.Client | null = c;
        c = null;
        void dead?.end().catch(() => undefined);
      }
      a.end = performance.now();
      a.completeMs = Date.now();
      this.attempts.push(a);
      this.#o.onAttempt?.(a);
      if (!a.ok && this.#o.stopOnFailure === true) { this.#stop = true; break; }
      const pause = a.ok ? this.#o.pauseMs : (this.#o.failPauseMs ?? this.#o.pauseMs);
      if (pause !== undefined && pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
    await c?.end().catch(() => undefined);
  }

  /** The acknowledged attempts, in order. */
  acks(): Attempt<Row>[] { return this.attempts.filter((a) => a.ok); }
  acked(): number[] { return this.acks().map((a) => a.id); }
  /** Date.now() of the first attempt that was not acknowledged; null while none. */
  failedAt(): number | null { return this.attempts.find((a) => !a.ok)?.completeMs ?? null; }

  /**
   * Outage of an event that started at t and was over at `until` (performance.now() ms): the
   * longest time between two consecutive acknowledged writes, from the last acknowledgement
   * before t to `until`.
   */
  outage(t: number, until: number): number {
    const acks = this.attempts.filter((a) => a.ok && a.end <= until).map((a) => a.end);
    const first = acks.findLastIndex((e) => e <= t);
    if (first < 0 || first === acks.length - 1) return Number.NaN;
    let gap = 0;
    for (let k = first + 1; k < acks.length; k++) gap = Math.max(gap, (acks[k] ?? 0) - (acks[k - 1] ?? 0));
    return gap;
  }

  /**
   * The outage from `from` up to the acknowledgement of the first write started at or after `to`
   * (ms). For an event that stops writes at once (a crash) `to` is when it began; for one that
   * stops them a little later (a switchover that first sends a request and waits for the answer
   * while writes still succeed) it is when the event was over.
   */
  longestGap(from: number, to: number): number {
    const end = this.attempts.find((a) => a.ok && a.start >= to)?.end;
    return end === undefined ? Number.NaN : this.outage(from, end);
  }

  /**
   * The longest time between two consecutive acknowledgements whose interval overlaps [from, to]
   * and none of `except` (ms; 0 when there is no such interval). A phase's write gap measured by
   * the gaps that touch it, and, with (-Infinity, Infinity) and the phases as `except`, the
   * longest gap elsewhere (the migration test bounds both).
   */
  longestGapWithin(from: number, to: number, except: ReadonlyArray<{ from: number; to: number }> = []): number {
    const acks = this.acks().map((a) => a.end);
    let gap = 0;
    for (let k = 1; k < acks.length; k++) {
      const a = acks[k - 1] ?? 0;
      const b = acks[k] ?? 0;
      if (b >= from && a <= to && !except.some((w) => b >= w.from && a <= w.to)) gap = Math.max(gap, b - a);
    }
    return gap;
  }

  /**
   * Acknowledged ids missing from `have` (the final primary's rows), each charged to the last
   * event that started before its acknowledgement or up to 5 s after it (a write acknowledged
   * just before a crash is lost by that crash).
   */
  lostByEvent(have: ReadonlySet<number>, events: ReadonlyArray<{ name: string; t: number }>): { lost: number[]; byEvent: Map<string, number> } {
    const lost = this.acked().filter((id) => !have.has(id));
    const byEvent = new Map<string, number>();
    for (const id of lost) {
      const end = this.attempts.find((a) => a.id === id)?.end ?? 0;
      const ev = events.filter((e) => e.t <= end + 5000).at(-1)?.name ?? 'before any event';
      byEvent.set(ev, (byEvent.get(ev) ?? 0) + 1);
    }
    return { lost, byEvent };
  }
}

/** A writer on one session that stops at its first failure (sessionWriter()). */
export interface Writer {
  /** Each acknowledged write: its id and the client's clock when the acknowledgement arrived. */
  readonly acks: Array<{ id: number; at: number }>;
  /** When the first write failed (the writer stops there); null while none has. */
  failedAt(): number | null;
  /** Stop after the write in flight and close the session. */
  stop(): Promise<void>;
}

/**
 * Write ids 1, 2, ... into `table` (created if absent) on one session to host:port, pausing
 * `pauseMs` between writes, until stopped or a write fails. `queryMs` bounds each write. `clock`
 * stamps the acknowledgements: 'wall' (Date.now) or 'monotonic' (performance.now).
 */
export function sessionWriter(o: { host?: string; port: number; table: string; connectMs?: number; queryMs: number; pauseMs?: number; clock?: 'wall' | 'monotonic' }): Writer {
  const p = new WriteProbe({
    port: o.port, table: o.table, connectMs: o.connectMs ?? 1000, queryMs: o.queryMs, stopOnFailure: true,
    ...(o.host === undefined ? {} : { host: o.host }), ...(o.pauseMs === undefined ? {} : { pauseMs: o.pauseMs }),
    setup: `create table if not exists ${o.table} (id int primary key, at timestamptz default clock_timestamp())`,
  }).start();
  return {
    get acks() { return p.acks().map((a) => ({ id: a.id, at: o.clock === 'monotonic' ? a.end : a.completeMs })); },
    failedAt: () => p.failedAt(),
    stop: () => p.stop(),
  };
}
