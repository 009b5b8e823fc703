// Logical slots and publications on the running server (the I/O behind the sync_logical action).
//
// Leader: create the configured logical slots, drop the retired ones, keep the configured
// publications, and read every managed slot's confirmed position for /status. That work runs in
// the background, one run at a time, kicked by each loop: creating a logical slot waits for the
// transactions running at that moment, and the loop must keep renewing the leader key meanwhile.
//
// Standby (streaming from the leader): copy the leader's slots it lacks (slot-copy.ts: the
// server is stopped for the copy, a few seconds), advance each copy to the position the leader
// published (pg_replication_slot_advance, which on PostgreSQL 11 to 15 also runs during
// recovery: fast-forward decoding moves confirmed_flush, restart_lsn and catalog_xmin without an
// output plugin), and drop copies no longer configured. docs/logical-replication.md.
import type pg from 'pg';
import type { DynamicConfig } from '../config/schema.ts';
import { describeError } from '../errors.ts';
import type { ClusterView, Lsn } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import { formatLsn, parseLsn } from '../postgres/lsn.ts';
import { withSession } from '../postgres/probe.ts';
import type { PostgresControl, Upstream } from '../postgres/types.ts';
import { reconcilePublications } from './publications.ts';
import type { LogicalSlotStatus, LogicalSnapshot } from './types.ts';

export type { LogicalSlotStatus, LogicalSnapshot };
import { leaderPositions, logicalSlotSpecs, planLeaderSlots, planStandbySlots, publicationSpecs, type LogicalSlotSpec, type SlotRow } from './plan.ts';

export interface LocalConnection { host: string; port: number; user: string; password: string }

export interface LogicalDeps {
  local: LocalConnection;
  pg: PostgresControl;
  logger: Logger;
  /** Monotonic ms. */
  now(): number;
}

/** A statement that creates a logical slot waits for every transaction running then: 30 s, then try again next run. */
const STATEMENT_MS = 30_000;
/** Publications are compared with the configuration at most this often when it did not change (ms). */
const PUBLICATION_RECHECK_MS = 60_000;
/**
 * The advance just before a promotion may hold it this long per slot (ms): the copies are
 * normally within a second of the published position, which fast-forward decoding covers in
 * milliseconds; a copy far behind is left behind rather than delaying the failover.
 */
const PROMOTION_ADVANCE_MS = 2_000;
/** A failed copy (it restarts the standby) is tried again after this long (ms). */
const COPY_RETRY_MS = 30_000;
/** After this many failed advances in a row, a copy is dropped and copied afresh. */
const MAX_ADVANCE_FAILURES = 3;
/** A standby with nothing configured looks for leftover copies this often (ms). */
const IDLE_CHECK_MS = 5_000;
/**
 * Slots are read at most this often (ms), leader and standby: each reading is a new session (a
 * backend started). A second keeps a copy's position within about two seconds of the consumer's.
 */
const CHECK_EVERY_MS = 1_000;
/** How long the leader waits for a terminated consumer's walsender to release a removed slot (ms). */
const RELEASE_WAIT_MS = 2_000;

const SLOTS_SQL = `select slot_name::text as name, slot_type::text as type, plugin::text as plugin, database::text as database,
  active, active_pid, confirmed_flush_lsn::text as confirmed, restart_lsn::text as restart,
  (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text as current
  from pg_replication_slots order by slot_name`;

interface RawSlot { name: string; type: string; plugin: string | null; database: string | null; active: boolean; active_pid: number | null; confirmed: string | null; restart: string | null; current: string | null }

export class LogicalSlots {
  readonly #d: LogicalDeps;
  #leaderRun: Promise<void> | null = null;
  #advanceRun: Promise<void> | null = null;
  #published: Record<string, Lsn> | undefined;
  readonly #retiring = new Set<string>();
  #pubKey = '';
  #pubCheckedAt = -Infinity;
  #lastCopyAt = -Infinity;
  #lastStandbyCheck = -Infinity;
  #lastLeaderRun = -Infinity;
  readonly #advanceFailures = new Map<string, number>();
  readonly #lastErrors = new Map<string, string>();
  #snapshot: LogicalSnapshot | null = null;

  constructor(d: LogicalDeps) {
    this.#d = d;
  }

  /** Leader: the positions to publish in /status; undefined before the first run as leader. */
  published(): Record<string, Lsn> | undefined {
    return this.#published;
  }

  snapshot(): LogicalSnapshot | null {
    return this.#snapshot;
  }

  /** Leader: start a background run unless one is in flight. Never throws. */
  kickLeader(cfg: DynamicConfig, cluster: ClusterView | null): void {
    if (this.#leaderRun !== null || this.#d.now() - this.#lastLeaderRun < CHECK_EVERY_MS) return;
    this.#lastLeaderRun = this.#d.now();
    this.#leaderRun = this.#leaderOnce(cfg, cluster)
      .catch((err: unknown) => this.#warnOnce('leader', 'logical slots: could not check the leader\'s slots', err))
      .finally(() => { this.#leaderRun = null; });
  }

  /** Standby streaming from `leader`: drop, copy (restarting, when allowed) and advance copies. */
  async syncStandby(cfg: DynamicConfig, cluster: ClusterView | null, leader: Upstream, mayRestart: boolean): Promise<void> {
    this.#published = undefined; // a former leader's positions are not ours to publish again
    this.#retiring.clear();
    this.#pubKey = '';
    if (this.#advanceRun !== null) return;
    const want = logicalSlotSpecs(cfg);
    const now = this.#d.now();
    this.#lastLeaderRun = -Infinity; // a promotion later runs the leader's check at once
    const idle = want.length === 0 && (this.#snapshot?.slots.length ?? 1) === 0;
    if (now - this.#lastStandbyCheck < (idle ? IDLE_CHECK_MS : CHECK_EVERY_MS)) return;
    this.#lastStandbyCheck = now;
    const published = cluster?.logicalSlots ?? null;
    let rows = await this.#slots();
    const plan = planStandbySlots(rows, want, published);
    for (const name of plan.drop) await this.#dropLocal(name, 'not configured, built otherwise, or ahead of the leader\'s position');
    if (plan.copy.length > 0 && mayRestart && now - this.#lastCopyAt >= COPY_RETRY_MS) {
      this.#lastCopyAt = now;
      await this.#copy(leader, want.filter((w) => plan.copy.includes(w.name)));
    }
    if (plan.drop.length > 0 || plan.copy.length > 0) rows = await this.#slots().catch(() => rows);
    this.#snapshot = { role: 'standby', slots: rows.filter((r) => r.type === 'logical').map((r) => standbyStatus(r, published)), checkedAt: Date.now() };
    const advance = plan.advance.filter((a) => !plan.drop.includes(a.name));
    if (advance.length > 0) {
      this.#advanceRun = this.#advance(advance).finally(() => { this.#advanceRun = null; });
    }
  }

  /**
   * Switchover candidate, just before it takes the key: advance each copy to the position the
   * old leader published (its final one, after its clean stop), and wait for it. Never throws.
   */
  async advanceNow(cfg: DynamicConfig, cluster: ClusterView | null): Promise<void> {
    if (this.#advanceRun !== null) return; // one is running already: the promotion does not wait for it
    try {
      const rows = await this.#slots();
      const plan = planStandbySlots(rows, logicalSlotSpecs(cfg), cluster?.logicalSlots ?? null);
      if (plan.advance.length > 0) await this.#advance(plan.advance, PROMOTION_ADVANCE_MS);
    } catch (err) {
      this.#warnOnce('advance now', 'could not advance the logical slot copies before the promotion', err);
    }
  }

  async #leaderOnce(cfg: DynamicConfig, cluster: ClusterView | null): Promise<void> {
    const want = logicalSlotSpecs(cfg);
    const wanted = new Set(want.map((w) => w.name));
    for (const n of Object.keys(cluster?.logicalSlots ?? {})) if (!wanted.has(n)) this.#retiring.add(n);
    for (const n of [...this.#retiring]) if (wanted.has(n)) this.#retiring.delete(n);
    let rows = await this.#slots();
    const plan = planLeaderSlots(rows, want, [...this.#retiring]);
    for (const r of plan.drop) await this.#dropOnLeader(r);
    for (const w of plan.create) await this.#create(w);
    if (plan.drop.length > 0 || plan.create.length > 0) rows = await this.#slots();
    for (const n of [...this.#retiring]) if (!rows.some((r) => r.name === n && r.type === 'logical')) this.#retiring.delete(n);
    this.#published = leaderPositions(rows, want, [...this.#retiring]);
    this.#snapshot = { role: 'leader', slots: rows.filter((r) => r.type === 'logical').map(leaderStatus(this.#current)), checkedAt: Date.now() };
    await this.#publications(cfg);
  }

  async #publications(cfg: DynamicConfig): Promise<void> {
    const want = publicationSpecs(cfg);
    const key = JSON.stringify(want);
    const now = this.#d.now();
    if (key === this.#pubKey && now - this.#pubCheckedAt < PUBLICATION_RECHECK_MS) return;
    try {
      const done = await reconcilePublications((db, fn) => this.#session(db, fn), want);
      for (const line of done) this.#d.logger.info({ event: 'publication' }, line);
      this.#pubKey = key;
      this.#pubCheckedAt = now;
      this.#lastErrors.delete('publications');
    } catch (err) {
      this.#warnOnce('publications', 'publications: could not apply the configuration', err);
    }
  }

  async #create(w: LogicalSlotSpec): Promise<void> {
    try {
      await this.#session(w.database, (c) => c.query('select pg_create_logical_replication_slot($1, $2)', [w.name, w.plugin]));
      this.#d.logger.info({ event: 'logical slot created', slot: w.name, plugin: w.plugin, database: w.database }, `created logical slot ${w.name} (${w.plugin}, database ${w.database})`);
      this.#lastErrors.delete(`create ${w.name}`);
    } catch (err) {
      this.#warnOnce(`create ${w.name}`, `could not create logical slot ${w.name}`, err);
    }
  }

  /** Leader: a removed slot goes even with a consumer connected (its walsender is ended first). */
  async #dropOnLeader(r: SlotRow): Promise<void> {
    try {
      await this.#session('postgres', async (c) => {
        if (r.active && r.activePid !== null) {
          await c.query('select pg_terminate_backend($1)', [r.activePid]);
          const until = this.#d.now() + RELEASE_WAIT_MS;
          while (this.#d.now() < until && (await c.query('select 1 from pg_replication_slots where slot_name = $1 and active', [r.name])).rowCount !== 0) {
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        await c.query('select pg_drop_replication_slot($1)', [r.name]);
      });
      this.#d.logger.info({ event: 'logical slot dropped', slot: r.name }, `dropped logical slot ${r.name}`);
    } catch (err) {
      this.#warnOnce(`drop ${r.name}`, `could not drop logical slot ${r.name} (tried again next loop)`, err);
    }
  }

  async #dropLocal(name: string, why: string): Promise<void> {
    try {
      await this.#session('postgres', (c) => c.query('select pg_drop_replication_slot($1)', [name]));
      this.#advanceFailures.delete(name);
      this.#d.logger.info({ event: 'logical slot dropped', slot: name }, `dropped the copy of logical slot ${name}: ${why}`);
    } catch (err) {
      this.#warnOnce(`drop ${name}`, `could not drop the copy of logical slot ${name}`, err);
    }
  }

  /** Copy the leader's state files of `specs`: stop (fast), install, start again as its standby. */
  async #copy(leader: Upstream, specs: LogicalSlotSpec[]): Promise<void> {
    const { pg: control, logger } = this.#d;
    if (control.readSlotStates === undefined || control.installSlotStates === undefined) return;
    try {
      const states = (await control.readSlotStates(leader, specs.map((s) => s.name)))
        .filter((s) => specs.some((w) => w.name === s.name && s.type === 'logical' && w.plugin === s.plugin && w.database === s.database));
      if (states.length === 0) return;
      const names = states.map((s) => s.name);
      logger.info({ event: 'logical slot copy', slots: names, from: leader.name }, `copying logical slots ${names.join(', ')} from ${leader.name}: restarting PostgreSQL`);
      await control.stop('fast');
      try {
        await control.installSlotStates(states);
      } finally {
        await control.start('standby', leader);
      }
      this.#lastErrors.delete('copy');
    } catch (err) {
      this.#warnOnce('copy', `could not copy logical slots from ${leader.name} (tried again in ${COPY_RETRY_MS / 1000} s)`, err);
    }
  }

  async #advance(items: Array<{ name: string; database: string; to: Lsn }>, timeoutMs = STATEMENT_MS): Promise<void> {
    for (const a of items) {
      try {
        await this.#session(a.database, (c) => c.query('select pg_replication_slot_advance($1, $2::pg_lsn)', [a.name, formatLsn(a.to)]), timeoutMs);
        this.#advanceFailures.delete(a.name);
        this.#lastErrors.delete(`advance ${a.name}`);
      } catch (err) {
        const n = (this.#advanceFailures.get(a.name) ?? 0) + 1;
        this.#advanceFailures.set(a.name, n);
        this.#warnOnce(`advance ${a.name}`, `could not advance the copy of logical slot ${a.name} to ${formatLsn(a.to)}`, err);
        if (n >= MAX_ADVANCE_FAILURES) await this.#dropLocal(a.name, `${n} failed advances: copied afresh`);
      }
    }
  }

  async #slots(): Promise<SlotRow[]> {
    const raw = await this.#session('postgres', async (c) => (await c.query<RawSlot>(SLOTS_SQL)).rows);
    this.#current = raw[0]?.current == null ? null : parseLsn(raw[0].current);
    return raw.map((r) => ({
      name: r.name, type: r.type === 'logical' ? 'logical' : 'physical', plugin: r.plugin, database: r.database, active: r.active, activePid: r.active_pid,
      confirmedFlush: r.confirmed === null ? null : parseLsn(r.confirmed), restartLsn: r.restart === null ? null : parseLsn(r.restart),
    }));
  }

  /** The server's WAL position at the last slot reading (primary: current; standby: replayed). */
  #current: Lsn | null = null;

  #session<T>(database: string, fn: (c: pg.Client) => Promise<T>, statementTimeoutMs = STATEMENT_MS): Promise<T> {
    return withSession({ ...this.#d.local, database, statementTimeoutMs }, fn);
  }

  /** Warn once per distinct problem (the loop retries every loop_wait: no flood). */
  #warnOnce(key: string, msg: string, err: unknown): void {
    const text = describeError(err).message;
    if (this.#lastErrors.get(key) === text) return;
    this.#lastErrors.set(key, text);
    this.#d.logger.warn({ event: 'logical slots', err: describeError(err) }, msg);
  }
}

function leaderStatus(current: Lsn | null): (r: SlotRow) => LogicalSlotStatus {
  return (r) => ({
    name: r.name, plugin: r.plugin, database: r.database, active: r.active,
    confirmed_flush_lsn: r.confirmedFlush === null ? null : formatLsn(r.confirmedFlush),
    restart_lsn: r.restartLsn === null ? null : formatLsn(r.restartLsn),
    lag_bytes: current === null || r.confirmedFlush === null ? null : Math.max(0, current - r.confirmedFlush),
  });
}

function standbyStatus(r: SlotRow, published: Readonly<Record<string, Lsn>> | null): LogicalSlotStatus {
  const leader = published?.[r.name];
  return {
    name: r.name, plugin: r.plugin, database: r.database, active: r.active,
    confirmed_flush_lsn: r.confirmedFlush === null ? null : formatLsn(r.confirmedFlush),
    restart_lsn: r.restartLsn === null ? null : formatLsn(r.restartLsn),
    lag_bytes: leader === undefined || r.confirmedFlush === null ? null : Math.max(0, leader - r.confirmedFlush),
    leader_confirmed_flush_lsn: leader === undefined ? null : formatLsn(leader),
  };
}
