// The executor: performs the steps of a plan and reports one Outcome per step it ran. Each
// method is one action; the order of the effects inside each is part of the safety argument and
// is written down where it is coded. The data-directory steps are in act-data.ts, the leader's
// upkeep in act-leader.ts. It keeps nothing between loops: what must be remembered
// (start failures, rewinds, slots seen, a veto) travels back in the outcomes to remember()
// (src/ha/memory.ts), and decide() makes every choice (a re-clone, the start after a clone).
import { memberByName } from '../ha/view.ts';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import type { Dcs, KeepaliveResult } from '../dcs/types.ts';
import { PgHaError, describeError, isPgHaError } from '../errors.ts';
import { failsafeDeadline, leaseDeadline } from '../ha/lease.ts';
import type { Action, ClusterView, FailsafeHold, FailsafeRecord, KeyRevisions, LocalPostgres, Outcome, PromoteReason } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import type { Poolers } from '../pooler/poolers.ts';
import type { PostgresControl, Upstream } from '../postgres/types.ts';
import type { LogicalSlots } from '../slots/manager.ts';
import type { FenceTimer } from './fence.ts';
import { SOURCE_UPSTREAM } from '../ha/standby.ts';
import { sourceHosts } from '../config/schema.ts';
import { adopt, bootstrap, bootstrapStandby, clearUnsafe, clone, reclone, rewind, wipeUnfinished } from './act-data.ts';
import { ensureSlots, publishLeaderLsn, setSyncNames, syncLogical, writeSync } from './act-leader.ts';
import type { Activity } from './member.ts';


export interface ActorDeps {
  config: NodeConfig;
  dcs: Dcs;
  pg: PostgresControl;
  logger: Logger;
  fence: FenceTimer;
  now(): number;
  /** A failsafe promise this member gave that is still running (it must not take the key). */
  failsafeHold(): FailsafeHold | null;
  /** Dynamic config as last read from etcd (fence_margin). */
  dynamic(): DynamicConfig;
  setActivity(a: Activity): Promise<void>;
  /** Leadership changed by an action (acquired, released, fenced): the API must know at once. */
  setLeadership(held: boolean): void;
  /** PostgreSQL was fenced and the deadline dropped: keep the watchdogs alive now, not a beat later. */
  fenced?(): void;
  /** The pre_promote callback: resolves to go ahead, throws PGHA_PROMOTE_VETOED to refuse. */
  prePromote?(): Promise<void>;
  /** Publish our member key now (`vetoed`: tagged nofailover, after a pre_promote veto). */
  republish?(o: { vetoed: boolean }): Promise<void>;
  /** Fencing starts (GET /metrics counts these). */
  fencing?(why: string): void;
  /** pg_promote() succeeded (GET /metrics counts these and the outage). */
  promoted?(reason: PromoteReason): void;
  /** Logical slots and publications (src/slots/manager.ts); absent: sync_logical does nothing. */
  logical?: LogicalSlots;
  /** The PgBouncer poolers paused around a switchover (pgbouncer.poolers; absent: none). */
  poolers?: Poolers;
  /** A bootstrap finished (the new primary runs): backups create the stanza, in the background. */
  bootstrapped?(): void;
}

/** The facts of this loop the steps act on (plain values, read by the loop). */
export interface ActContext {
  cluster: ClusterView | null;
  local: LocalPostgres;
  /** The keepalive etcd acknowledged this loop (the lease's proven start); null: none. */
  keepalive?: KeepaliveResult | null;
}

/** What a successful step reports besides success (see Outcome). */
export type Facts = Omit<Extract<Outcome, { ok: true }>, 'action' | 'ok'>;

export class Actor {
  readonly #d: ActorDeps;
  /** An acquire is in flight (within one step, never across loops): no failsafe leader is confirmed meanwhile. */
  acquiring = false;

  constructor(deps: ActorDeps) {
    this.#d = deps;
  }

  /** Run the plan's actions in order, one outcome each; the first failure ends the plan. */
  async run(actions: Action[], ctx: ActContext): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    for (const action of actions) {
      try {
        outcomes.push({ action, ok: true, ...(await this.#one(action, ctx)) });
      } catch (err) {
        this.#d.logger.warn({ event: 'action failed', action: action.kind, err: describeError(err) }, `${action.kind} failed`);
        const e = describeError(err);
        outcomes.push({
          action, ok: false, error: e.code === undefined ? e.message : `${e.code}: ${e.message}`, retryable: err instanceof PgHaError && err.retryable,
          ...(action.kind === 'promote' && isPgHaError(err, 'PGHA_PROMOTE_VETOED') ? { vetoedAt: this.#d.now() } : {}),
        });
        break;
      }
    }
    return outcomes;
  }

  /**
   * Keep the lease (and, for a leader, the key and its fence deadline) alive every loop_wait
   * while a long step runs: initdb, a base backup, pg_rewind, crash recovery on start. The step
   * itself is bounded (pg_ctl_timeout, command timeouts), so this cannot hold the key forever.
   */
  async #withHeartbeat<T>(fn: () => Promise<T>): Promise<T> {
    let busy = false;
    const beat = async () => {
      if (this.#d.fence.deadline !== null) {
        const r = await this.#d.dcs.renewLeader();
        if (this.#d.fence.deadline !== null) this.#armFrom(r.sentAt, r.ttl);
      } else {
        await this.#d.dcs.keepalive();
      }
    };
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      beat().catch(() => undefined).finally(() => { busy = false; });
    }, this.#d.dynamic().loop_wait * 1000);
    try {
      return await fn();
    } finally {
      clearInterval(timer);
    }
  }

  async #one(a: Action, ctx: ActContext): Promise<Facts> {
    // step_down: before_stop (up to before_stop_timeout) runs before the clean stop, with the key held.
    // A standby's sync_logical may stop and start PostgreSQL to copy a slot; emptying a half-made
    // copy of a large cluster (wipe_unfinished) deletes many files.
    const long = a.kind === 'bootstrap' || a.kind === 'bootstrap_standby' || a.kind === 'clone' || a.kind === 'reclone' || a.kind === 'wipe_unfinished'
      || a.kind === 'rewind' || a.kind === 'start' || a.kind === 'promote'
      || a.kind === 'step_down' || (a.kind === 'sync_logical' && a.as === 'standby');
    return long ? this.#withHeartbeat(() => this.#step(a, ctx)) : this.#step(a, ctx);
  }

  /** One case per action. */
  async #step(a: Action, ctx: ActContext): Promise<Facts> {
    switch (a.kind) {
      case 'bootstrap': await bootstrap(this.#d); return {};
      case 'bootstrap_standby': await bootstrapStandby(this.#d, this.#upstream(ctx, SOURCE_UPSTREAM)); return {};
      case 'adopt_cluster': await adopt(this.#d, ctx.local); return {};
      case 'wipe_unfinished': await wipeUnfinished(this.#d, a.step, ctx.local); return {};
      case 'settle_data': await this.#d.pg.settle(); return {};
      case 'clone': await clone(this.#d, this.#upstream(ctx, a.from)); return {};
      case 'reclone': await reclone(this.#d, this.#upstream(ctx, a.from), ctx.local); return {};
      case 'clear_unsafe': await clearUnsafe(this.#d); return {};
      case 'acquire': return { lease: await this.acquire(ctx.keepalive ?? null) };
      case 'renew': return { lease: await this.renew(a.fenceOnFailure) };
      case 'release': await this.release(); return {};
      case 'promote': await this.promote(a.reason, ctx); return {};
      case 'start': await this.start(a.as, a.upstream === null ? null : this.#upstream(ctx, a.upstream)); return {};
      case 'follow': await this.follow(a.upstream === null ? null : this.#upstream(ctx, a.upstream)); return {};
      case 'fence': await this.fenceNow('plan'); return {};
      case 'rewind': await rewind(this.#d, this.#upstream(ctx, a.from), ctx.local); return {};
      case 'ensure_slots': await ensureSlots(this.#d, a.members, a.permanent); return {};
      case 'publish_leader_lsn': return publishLeaderLsn(this.#d, ctx.local, ctx.cluster, a.last);
      case 'sync_logical': await syncLogical(this.#d, a, ctx, (name) => this.#upstream(ctx, name)); return {};
      case 'advance_logical': await this.#d.logical?.advanceNow(this.#d.dynamic(), ctx.cluster); return {};
      case 'step_down': await this.stepDown(ctx); return {};
      case 'clear_failover': await this.clearFailover(ctx); return {};
      case 'write_sync': await writeSync(this.#d, a.members, a.acks, revisionsOf(ctx)); return {};
      case 'write_failsafe': await this.writeFailsafe(a.record, ctx); return {};
      case 'failsafe_extend': this.failsafeExtend(a.sentAt); return {};
      case 'set_sync_names': return setSyncNames(this.#d, a.names, a.count, a.method ?? 'first', ctx.local.syncChangedAt === null);
    }
  }

  async clearFailover(ctx: Pick<ActContext, 'cluster'>): Promise<void> {
    const r = revisionsOf(ctx);
    await this.#d.dcs.clearFailover(r.failover);
    r.failover = '0';
  }

  async writeFailsafe(record: FailsafeRecord | null, ctx: Pick<ActContext, 'cluster'>): Promise<void> {
    const r = revisionsOf(ctx);
    r.failsafe = await this.#d.dcs.writeFailsafe(record, r.failsafe);
  }

  #upstream(ctx: ActContext, name: string): Upstream {
    if (name === SOURCE_UPSTREAM) {
      const sc = (ctx.cluster?.config ?? this.#d.dynamic()).standby_cluster;
      if (sc == null) throw new PgHaError('PGHA_STANDBY_SOURCE_INVALID', 'no standby_cluster in the dynamic configuration');
      const first = sourceHosts(sc)[0];
      return { name: SOURCE_UPSTREAM, conn: `${first?.host}:${first?.port}`, source: sc };
    }
    const m = memberByName(ctx.cluster, name);
    if (m === undefined) throw new PgHaError('PGHA_DCS_BAD_VALUE', `member ${name} has not published its address`);
    return { name: m.name, conn: m.conn };
  }

  /** Deadline from the lease TTL etcd reported (the lease's real one) and the current margin (src/ha/lease.ts). */
  #armFrom(sentAt: number, ttlSeconds: number): void {
    this.#d.fence.arm(leaseDeadline(sentAt, ttlSeconds, this.#d.dynamic()));
  }

  /** The bootstrap step (act-data.ts), callable on its own. */
  bootstrap(): Promise<void> {
    return bootstrap(this.#d);
  }

  /**
   * Acquire order: (1) no failsafe promise is running (a call may have arrived after the plan
   * was made); (2) from here until leadership is recorded, POST /failsafe is refused; (3) the key;
   * (4) the fence deadline from this loop's acknowledged keepalive.
   */
  async acquire(keepalive: KeepaliveResult | null): Promise<KeepaliveResult> {
    const hold = this.#d.failsafeHold();
    if (hold !== null) throw new PgHaError('PGHA_FAILSAFE_REFUSED', `we confirmed ${hold.leader} in failsafe mode: not taking the key`);
    this.acquiring = true;
    try {
      if (!(await this.#d.dcs.acquireLeader())) throw new PgHaError('PGHA_DCS_CONFLICT', 'lost the race for the leader key');
      if (keepalive === null) throw new PgHaError('PGHA_LEASE_LOST', 'no acknowledged keepalive yet');
      this.#armFrom(keepalive.sentAt, keepalive.ttl);
      this.#d.setLeadership(true);
      this.#d.logger.info({ event: 'leader key acquired' }, 'acquired the leader key');
      return keepalive;
    } finally {
      this.acquiring = false;
    }
  }

  /**
   * etcd unreachable and every member confirmed us (failsafe_mode): stay primary one more TTL
   * from the send time of that round, less fence_margin (src/ha/lease.ts says why that is safe).
   */
  failsafeExtend(sentAt: number): void {
    const deadline = failsafeDeadline(this.#d.fence.deadline, sentAt, this.#d.dynamic());
    if (deadline !== null) this.#d.fence.arm(deadline);
  }

  async renew(fenceOnFailure: boolean): Promise<KeepaliveResult> {
    try {
      // The loop's etcd (budgeted-dcs.ts) gives a running failsafe primary only until a failsafe
      // round is due; the failed renewal makes the next loop ask the members at once.
      const r = await this.#d.dcs.renewLeader();
      this.#armFrom(r.sentAt, r.ttl);
      return r;
    } catch (err) {
      this.#d.logger.warn({ event: 'lease lost', err: describeError(err) }, 'could not renew the leader key');
      if (fenceOnFailure) await this.fenceNow('renewal failed after the lease deadline');
      throw err;
    }
  }

  /** Release order: disarm nothing until the key is gone; the caller stopped PostgreSQL first. */
  async release(): Promise<void> {
    this.#d.setLeadership(false);
    await this.#d.dcs.releaseLeader();
    this.#d.fence.disarm();
    this.#d.logger.info({ event: 'leader key released' }, 'released the leader key');
  }

  /**
   * Promotion order: (0) pre_promote, if configured (the heartbeat renews the key meanwhile); a
   * veto drops the request that named us (if any) and releases the key at once, PostgreSQL still
   * a standby, so no member holds the key while refusing to promote; the failed outcome says
   * so, and remember() keeps this member nofailover (out of the race) for one ttl so another can win;
   * (1) the key is ours with a live deadline (the preceding acquire or renew proved it; checked
   * here against the clock, after pre_promote's wait); (2) pg_promote; (3) history entry.
   */
  async promote(reason: PromoteReason, ctx: Pick<ActContext, 'cluster'> = { cluster: null }): Promise<void> {
    if (this.#d.prePromote !== undefined) {
      try {
        await this.#d.prePromote();
      } catch (err) {
        this.#d.logger.error({ event: 'promotion vetoed', err: describeError(err) }, 'pre_promote vetoed the promotion: releasing the leader key');
        // Published as nofailover first, so the others, woken by the release, race without us.
        await this.#d.republish?.({ vetoed: true }).catch(() => undefined);
        // A switchover or failover request naming us would keep every other member out of the
        // race until it goes stale: drop it first, then free the key (which wakes the others).
        if (reason !== 'failover') await this.clearFailover(ctx).catch((e: unknown) => this.#d.logger.warn({ err: describeError(e) }, 'could not clear the request'));
        await this.release();
        throw err;
      }
    }
    const deadline = this.#d.fence.deadline;
    if (deadline === null || this.#d.now() >= deadline) throw new PgHaError('PGHA_LEASE_LOST', 'no live lease to promote under');
    const r = await this.#d.pg.promote();
    this.#d.promoted?.(reason);
    // RESUME the poolers (a no-op unless the old leader paused them) once writes go through; after
    // a failover, RECONNECT first (server connections to the dead primary). In the background,
    // never delaying the history entry. Not after a switchover: see src/pooler/poolers.ts.
    void this.#d.poolers?.resumeWhenWritable(null, reason === 'failover');
    this.#d.logger.info({ event: 'promoted', timeline: r.timeline, lsn: r.lsn }, `promoted to primary on timeline ${r.timeline}`);
    await this.#d.dcs
      .appendHistory({ timeline: r.timeline, lsn: r.lsn, reason, time: new Date().toISOString(), leader: this.#d.config.name })
      .catch((err: unknown) => this.#d.logger.warn({ err: describeError(err) }, 'could not record history'));
  }

  /** Start PostgreSQL (a failure counts in Memory.startFailures, through the outcome). */
  async start(as: 'primary' | 'standby', upstream: Upstream | null): Promise<void> {
    await this.#d.pg.start(as, upstream);
    this.#d.logger.info({ event: 'started', as, upstream: upstream?.name ?? null }, `PostgreSQL started as ${as}`);
  }

  async follow(upstream: Upstream | null): Promise<void> {
    await this.#d.pg.follow(upstream);
    this.#d.logger.info({ event: 'following', upstream: upstream?.name ?? null }, `following ${upstream?.name ?? 'nobody'}`);
  }

  /**
   * Stop PostgreSQL at once. Never throws: a failed fence is logged loudly. Fence order:
   * (1) give up leadership (the API stops answering /primary at once); (2) stop PostgreSQL in
   * immediate mode; (3) only once it is down, drop the deadline, which disarms the
   * fencing process and lets the watchdogs be kept alive again (`fenced`). If (2) fails, the
   * deadline stays where it was: the fencing process fires at it and systemd's watchdog gets no
   * more WATCHDOG=1, so PostgreSQL is still stopped from outside this process.
   */
  async fenceNow(why: string): Promise<void> {
    this.#d.setLeadership(false);
    this.#d.fencing?.(why);
    this.#d.logger.warn({ event: 'demoted', why }, `fencing: stopping PostgreSQL immediately (${why})`);
    try {
      await this.#d.pg.stop('immediate');
    } catch (err) {
      this.#d.logger.error({ event: 'fence failed', err: describeError(err) }, 'FENCE FAILED: the fencing process and the watchdog must stop PostgreSQL');
      return;
    }
    this.#d.fence.disarm();
    this.#d.fenced?.();
  }

  /**
   * Switchover, the leader's part, in order: (1) stop PostgreSQL cleanly: connected standbys
   * receive every WAL record up to the shutdown checkpoint; (2) record that checkpoint's position
   * in the request, so the candidate promotes only once it has it (then this server can follow
   * the new timeline without pg_rewind); (3) release the key. decide() follows it with (4), a
   * `start` as a standby.
   * With pgbouncer.poolers: (0) PAUSE (and RECONNECT) them first, while /primary still answers
   * 200 (HAProxy would otherwise cut the sessions of in-flight transactions), bounded by
   * pause_timeout; after (3), RESUME them in the background once the new primary is writable
   * (docs/pgbouncer.md).
   */
  async stepDown(ctx: Pick<ActContext, 'cluster'>): Promise<void> {
    const { pg, dcs, logger } = this.#d;
    await this.#d.poolers?.pause();
    try {
      this.#d.setLeadership(false); // /primary answers 503 from here on: HAProxy drains us first
      await pg.stop('fast');
      const lsn = await pg.checkpointLsn();
      if (lsn !== null) await this.#publishFinalSlots(lsn, ctx);
      if (lsn !== null) await dcs.setShutdownLsn(lsn);
      await this.release();
      logger.info({ event: 'demoted', why: 'switchover', shutdownLsn: lsn }, 'stepped down for a switchover');
    } finally {
      // Also when a step failed: paused poolers are released within resume_timeout whatever happens.
      void this.#d.poolers?.resumeWhenWritable(this.#d.config.postgresql.connect_address ?? this.#d.config.postgresql.listen, false);
    }
  }

  /**
   * Switchover: the clean stop made each walsender wait for its consumer's last confirmation,
   * and the shutdown checkpoint wrote the slots to disk. Publish those final positions before the
   * key is released, so that the candidate advances its copies to them before it promotes
   * (advance_logical): a consumer then resumes exactly where it stopped.
   */
  async #publishFinalSlots(lsn: number, ctx: Pick<ActContext, 'cluster'>): Promise<void> {
    const published = this.#d.logical?.published();
    const read = this.#d.pg.readStoppedSlotPositions;
    if (published === undefined || read === undefined) return;
    try {
      const onDisk = await read.call(this.#d.pg);
      const slots = Object.fromEntries(Object.entries(published).map(([n, p]) => [n, Math.max(p, onDisk[n] ?? 0)]));
      const r = revisionsOf(ctx);
      r.status = await this.#d.dcs.writeLeaderLsn(lsn, slots, r.status);
      this.#d.logger.info({ event: 'logical slots final', slots }, 'published the logical slots\' final positions for the switchover');
    } catch (err) {
      this.#d.logger.warn({ event: 'logical slots final', err: describeError(err) }, 'could not publish the logical slots\' final positions: consumers may receive the last changes again');
    }
  }

}

/**
 * The revisions of the view this plan was made from, for the conditional writes (src/dcs/types.ts).
 * Each successful write moves its key's entry on, so a second write of a key in the same plan
 * (narrow, then widen /sync) is not taken for a conflict. No view: nothing is written.
 */
export function revisionsOf(ctx: Pick<ActContext, 'cluster'>): KeyRevisions {
  if (ctx.cluster === null) throw new PgHaError('PGHA_DCS_UNAVAILABLE', 'etcd was not read this loop: not writing', { retryable: true });
  return ctx.cluster.revisions;
}
