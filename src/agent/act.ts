// Performs the actions of a plan. Each method is one action; the order of the steps inside each
// is part of the safety argument and is written down where it is coded.
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import type { Dcs, KeepaliveResult } from '../dcs/types.ts';
import { PgHaError, describeError } from '../errors.ts';
import type { Action, ClusterView, FailsafeHold, FailsafeRecord, KeyRevisions, LocalPostgres, PromoteReason, SyncMethod } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import type { Poolers } from '../pooler/poolers.ts';
import { slotNameFor, type PostgresControl, type Upstream } from '../postgres/types.ts';
import type { LogicalSlots } from '../slots/manager.ts';
import type { FenceTimer } from './fence.ts';
import type { Activity } from './member.ts';


export interface ActorDeps {
  config: NodeConfig;
  dcs: Dcs;
  pg: PostgresControl;
  logger: Logger;
  fence: FenceTimer;
  now(): number;
  /** performance.now() of the last keepalive etcd acknowledged (the lease's proven start). */
  lastKeepalive(): KeepaliveResult | null;
  /** A failsafe promise this member gave that is still running (it must not take the key). */
  failsafeHold(): FailsafeHold | null;
  /** A renewal failed on etcd (not on our key): the loop asks failsafe members first next time. */
  renewFailed?(err: unknown): void;
  /** Dynamic config as last read from etcd (fence_margin). */
  dynamic(): DynamicConfig;
  setActivity(a: Activity): Promise<void>;
  /** Leadership changed by an action (acquired, released, fenced): the API must know at once. */
  setLeadership(held: boolean): void;
  /** PostgreSQL was fenced and the deadline dropped: keep the watchdogs alive now, not a beat later. */
  fenced?(): void;
  /** The pre_promote callback: resolves to go ahead, throws PGHA_PROMOTE_VETOED to refuse. */
  prePromote?(): Promise<void>;
  /** Publish our member key now (after a veto: tagged nofailover while `vetoed`). */
  republish?(): Promise<void>;
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

export interface ActContext {
  cluster: ClusterView | null;
  local: LocalPostgres;
}

/** Rewinds after which a standby that has not streamed since is cloned afresh instead. */
export const MAX_REWINDS_WITHOUT_STREAMING = 3;

export class Actor {
  readonly #d: ActorDeps;
  startFailures = 0;
  /** Rewinds since this member last streamed from a leader; the loop resets it. */
  rewindsWithoutStreaming = 0;
  /** An acquire is in flight: this member must not confirm a failsafe leader meanwhile. */
  acquiring = false;
  /** until when (now()) a pre_promote veto keeps this member out of the race for the key. */
  vetoedUntil: number | null = null;

  /** A pre_promote veto is recent: this member neither races nor counts as a candidate. */
  get vetoed(): boolean {
    return this.vetoedUntil !== null && this.#d.now() < this.vetoedUntil;
  }
  #slotsSeen = new Map<string, number>();
  #lastPublishedLsn: number | null = null;
  #lastPublishedSlots = 'null';

  constructor(deps: ActorDeps) {
    this.#d = deps;
  }

  /** Run the plan's actions in order; the first failure ends the plan. */
  async run(actions: Action[], ctx: ActContext): Promise<void> {
    for (const action of actions) {
      try {
        await this.#one(action, ctx);
      } catch (err) {
        this.#d.logger.warn({ event: 'action failed', action: action.kind, err: describeError(err) }, `${action.kind} failed`);
        return;
      }
    }
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

  async #one(a: Action, ctx: ActContext): Promise<void> {
    // step_down: before_stop (up to before_stop_timeout) runs before the clean stop, with the key held.
    // A standby's sync_logical may stop and start PostgreSQL to copy a slot.
    const long = a.kind === 'bootstrap' || a.kind === 'clone' || a.kind === 'rewind' || a.kind === 'start' || a.kind === 'promote' || a.kind === 'step_down'
      || (a.kind === 'sync_logical' && a.as === 'standby');
    return long ? this.#withHeartbeat(() => this.#step(a, ctx)) : this.#step(a, ctx);
  }

  async #step(a: Action, ctx: ActContext): Promise<void> {
    switch (a.kind) {
      case 'bootstrap': return this.bootstrap();
      case 'adopt_cluster': return this.adopt(ctx.local);
      case 'clone': return this.clone(this.#upstream(ctx, a.from));
      case 'acquire': return this.acquire();
      case 'renew': return this.renew(a.fenceOnFailure);
      case 'release': return this.release();
      case 'promote': return this.promote(a.reason, ctx);
      case 'start': return this.start(a.as, a.upstream === null ? null : this.#upstream(ctx, a.upstream));
      case 'follow': return this.follow(a.upstream === null ? null : this.#upstream(ctx, a.upstream));
      case 'demote': return this.#d.pg.stop('fast');
      case 'fence': return this.fenceNow('plan');
      case 'rewind': return this.rewind(this.#upstream(ctx, a.from), ctx.local);
      case 'ensure_slots': return this.ensureSlots(a.members, a.permanent);
      case 'publish_leader_lsn': return this.publishLeaderLsn(ctx.local, ctx.cluster);
      case 'sync_logical': return this.syncLogical(a, ctx);
      case 'advance_logical': return this.#d.logical?.advanceNow(this.#d.dynamic(), ctx.cluster);
      case 'step_down': return this.stepDown(ctx);
      case 'clear_failover': return this.clearFailover(ctx);
      case 'write_sync': return this.writeSync(a.members, a.acks, ctx);
      case 'write_failsafe': return this.writeFailsafe(a.record, ctx);
      case 'failsafe_extend': return this.failsafeExtend(a.sentAt);
      case 'set_sync_names': return this.setSyncNames(a.names, a.count, a.method ?? 'first');
    }
  }

  /**
   * The revisions of the view this plan was made from, for the conditional writes (src/dcs/types.ts).
   * Each successful write moves its key's entry on, so a second write of a key in the same plan
   * (narrow, then widen /sync) is not taken for a conflict. No view: nothing is written.
   */
  #revisions(ctx: Pick<ActContext, 'cluster'>): KeyRevisions {
    if (ctx.cluster === null) throw new PgHaError('PGHA_DCS_UNAVAILABLE', 'etcd was not read this loop: not writing', { retryable: true });
    return ctx.cluster.revisions;
  }

  async clearFailover(ctx: Pick<ActContext, 'cluster'>): Promise<void> {
    const r = this.#revisions(ctx);
    await this.#d.dcs.clearFailover(r.failover);
    r.failover = '0';
  }

  async writeFailsafe(record: FailsafeRecord | null, ctx: ActContext): Promise<void> {
    const r = this.#revisions(ctx);
    r.failsafe = await this.#d.dcs.writeFailsafe(record, r.failsafe);
  }

  #upstream(ctx: ActContext, name: string): Upstream {
    const m = ctx.cluster?.members.find((x) => x.name === name);
    if (m === undefined) throw new PgHaError('PGHA_DCS_BAD_VALUE', `member ${name} has not published its address`);
    return { name: m.name, conn: m.conn };
  }

  /** Deadline from the lease TTL etcd reported (the lease's real one) and the current margin. */
  #armFrom(sentAt: number, ttlSeconds: number): void {
    const margin = this.#d.dynamic().fence_margin * 1000;
    this.#d.fence.arm(sentAt + ttlSeconds * 1000 - margin);
  }

  /**
   * Bootstrap steps, in order: (1) claim /initialize (bound to our lease, so a crash frees it);
   * (2) initdb; (3) start as primary; (4) create roles; (5) take the leader key; (6) write the
   * dynamic config; (7) replace the claim by the system id. A failure before (7) stops
   * PostgreSQL, wipes the data and gives up the claim, so another member can try.
   */
  async bootstrap(): Promise<void> {
    const { dcs, pg, logger, config } = this.#d;
    if (!(await dcs.claimInitialize())) throw new PgHaError('PGHA_DCS_CONFLICT', 'another member is bootstrapping');
    logger.info({ event: 'bootstrap' }, 'bootstrapping a new cluster');
    await this.#d.setActivity('bootstrapping');
    try {
      await pg.initdb();
      await pg.start('primary', null);
      await pg.createRoles();
      if (!(await dcs.acquireLeader())) throw new PgHaError('PGHA_BOOTSTRAP', 'leader key taken during bootstrap');
      // Arm from a keepalive sent now: the loop's last one was sent before initdb, which can take
      // longer than ttl - fence_margin (the heartbeat kept the lease alive meanwhile, but its
      // keepalives are not the loop's), and a deadline from it would fence the new primary at once.
      const ka = await dcs.renewLeader();
      this.#armFrom(ka.sentAt, ka.ttl);
      await dcs.writeConfigIfAbsent(config.bootstrap.dcs);
      const local = await pg.observe();
      if (local.systemId === null) throw new PgHaError('PGHA_BOOTSTRAP', 'no system identifier after initdb');
      await dcs.setInitialize(local.systemId);
      logger.info({ event: 'promoted', timeline: 1, systemId: local.systemId }, 'bootstrapped; running as primary');
      this.#d.bootstrapped?.();
    } catch (err) {
      logger.error({ event: 'bootstrap failed', err: describeError(err) }, 'bootstrap failed; cleaning up');
      await pg.stop('immediate').catch(() => undefined);
      await dcs.releaseLeader().catch(() => undefined);
      this.#d.fence.disarm();
      await pg.wipe().catch(() => undefined);
      await dcs.abandonInitialize().catch(() => undefined);
      throw err;
    } finally {
      await this.#d.setActivity(null);
    }
  }

  /** Existing data and no /initialize key (etcd was wiped): register our system id. */
  async adopt(local: LocalPostgres): Promise<void> {
    if (local.systemId === null) throw new PgHaError('PGHA_BOOTSTRAP', 'cannot adopt: no system identifier');
    if (!(await this.#d.dcs.claimInitialize())) return;
    await this.#d.dcs.writeConfigIfAbsent(this.#d.config.bootstrap.dcs);
    await this.#d.dcs.setInitialize(local.systemId);
    this.#d.logger.info({ event: 'adopted', systemId: local.systemId }, 'registered existing data as the cluster');
  }

  async clone(from: Upstream): Promise<void> {
    this.#d.logger.info({ event: 'clone', from: from.name }, `cloning from ${from.name}`);
    await this.#d.setActivity('cloning');
    try {
      await this.#d.pg.clone(from);
    } finally {
      await this.#d.setActivity(null);
    }
    await this.start('standby', from);
    // A fresh copy of the leader is what `pghactl verify` wanted: its unsafe mark goes (a clone
    // from a standby copies whatever that standby holds, but decide() never clones from a marked one).
    if (await this.#d.dcs.clearUnsafe(this.#d.config.name)) this.#d.logger.info({ event: 'unsafe_cleared' }, 'cloned afresh: unsafe mark (pghactl verify) removed');
  }

  /**
   * Acquire order: (1) no failsafe promise is running (a call may have arrived after the plan
   * was made); (2) from here until leadership is recorded, POST /failsafe is refused; (3) the key.
   */
  async acquire(): Promise<void> {
    const hold = this.#d.failsafeHold();
    if (hold !== null) throw new PgHaError('PGHA_FAILSAFE_REFUSED', `we confirmed ${hold.leader} in failsafe mode: not taking the key`);
    if (this.vetoed) {
      throw new PgHaError('PGHA_PROMOTE_VETOED', 'pre_promote vetoed our last promotion: not racing for the key for one ttl');
    }
    this.acquiring = true;
    try {
      if (!(await this.#d.dcs.acquireLeader())) throw new PgHaError('PGHA_DCS_CONFLICT', 'lost the race for the leader key');
      const ka = this.#d.lastKeepalive();
      if (ka === null) throw new PgHaError('PGHA_LEASE_LOST', 'no acknowledged keepalive yet');
      this.#armFrom(ka.sentAt, ka.ttl);
      this.#d.setLeadership(true);
      this.#d.logger.info({ event: 'leader key acquired' }, 'acquired the leader key');
    } finally {
      this.acquiring = false;
    }
  }

  /**
   * etcd unreachable and every member confirmed us (failsafe_mode): stay primary one more TTL
   * from the send time of that round, less fence_margin. Each member that confirmed received the
   * call after we sent it and will not act for a TTL from then, so this deadline ends first.
   */
  failsafeExtend(sentAt: number): void {
    const d = this.#d.dynamic();
    const deadline = sentAt + (d.ttl - d.fence_margin) * 1000;
    if (this.#d.fence.deadline === null || deadline <= this.#d.fence.deadline) return;
    this.#d.fence.arm(deadline);
  }

  async renew(fenceOnFailure: boolean): Promise<void> {
    try {
      const r = await this.#d.dcs.renewLeader();
      this.#armFrom(r.sentAt, r.ttl);
    } catch (err) {
      this.#d.logger.warn({ event: 'lease lost', err: describeError(err) }, 'could not renew the leader key');
      this.#d.renewFailed?.(err);
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
   * a standby, so no member holds the key while refusing to promote, and keeps this member out
   * of the race for one ttl so another can win;
   * (1) the key is ours with a live deadline (the preceding acquire or renew proved it; checked
   * here against the clock, after pre_promote's wait); (2) pg_promote; (3) history entry.
   */
  async promote(reason: PromoteReason, ctx: Pick<ActContext, 'cluster'> = { cluster: null }): Promise<void> {
    if (this.#d.prePromote !== undefined) {
      try {
        await this.#d.prePromote();
      } catch (err) {
        this.vetoedUntil = this.#d.now() + this.#d.dynamic().ttl * 1000;
        this.#d.logger.error({ event: 'promotion vetoed', err: describeError(err) }, 'pre_promote vetoed the promotion: releasing the leader key');
        // Published as nofailover first, so the others, woken by the release, race without us.
        await this.#d.republish?.().catch(() => undefined);
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

  async start(as: 'primary' | 'standby', upstream: Upstream | null): Promise<void> {
    try {
      await this.#d.pg.start(as, upstream);
      this.startFailures = 0;
      this.#d.logger.info({ event: 'started', as, upstream: upstream?.name ?? null }, `PostgreSQL started as ${as}`);
    } catch (err) {
      this.startFailures += 1;
      throw err;
    }
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
   * Rewind order: (1) stop PostgreSQL cleanly if it runs; (2) pg_rewind from the leader;
   * (3) on failure, wipe and clone afresh; (4) start as the leader's standby; (5) if that start
   * fails (a rewound directory whose minimum recovery point lies on a timeline the leader's
   * history does not contain: chaos seed 2), wipe, clone afresh and start once more.
   */
  async rewind(from: Upstream, local: LocalPostgres): Promise<void> {
    const { pg, logger } = this.#d;
    if (local.running) await pg.stop('fast');
    let rewound = false;
    this.rewindsWithoutStreaming += 1;
    await this.#d.setActivity('rewinding');
    try {
      logger.info({ event: 'rewind', from: from.name }, `rewinding from ${from.name}`);
      await pg.rewind(from);
      rewound = true;
      // pg_rewind can find "no rewind required" for a standby that replayed past the new
      // timeline's fork (its control file does not show how far it got), and the standby then
      // never streams. A third rewind with no streaming since is a clone (chaos seed 7).
      if (this.rewindsWithoutStreaming >= MAX_REWINDS_WITHOUT_STREAMING) {
        logger.warn({ event: 'rewind unusable', rewinds: this.rewindsWithoutStreaming }, 'rewound repeatedly without streaming since; cloning afresh');
        rewound = false;
        await this.#reclone(from);
      }
    } catch (err) {
      // The leader could not be reached: keep the data and try again next loop, rather than wipe
      // it and then fail to clone.
      if (err instanceof PgHaError && err.retryable) throw err;
      logger.warn({ event: 'rewind failed', err: describeError(err) }, 'pg_rewind failed; cloning afresh');
      await this.#reclone(from);
    } finally {
      await this.#d.setActivity(null);
    }
    try {
      await this.start('standby', from);
    } catch (err) {
      if (!rewound) throw err;
      logger.warn({ event: 'rewind unusable', err: describeError(err) }, 'the rewound data directory does not start as a standby; cloning afresh');
      try { await this.#reclone(from); } finally { await this.#d.setActivity(null); }
      await this.start('standby', from);
    }
  }

  async #reclone(from: Upstream): Promise<void> {
    await this.#d.setActivity('cloning');
    await this.#d.pg.stop('immediate').catch(() => undefined); // a failed start may leave a postmaster behind
    await this.#d.pg.wipe({ forReclone: true });
    await this.#d.pg.clone(from);
  }

  /**
   * Switchover, the leader's part, in order: (1) stop PostgreSQL cleanly: connected standbys
   * receive every WAL record up to the shutdown checkpoint; (2) record that checkpoint's position
   * in the request, so the candidate promotes only once it has it (then this server can follow
   * the new timeline without pg_rewind); (3) release the key; (4) start again as a standby.
   * With pgbouncer.poolers: (0) PAUSE (and RECONNECT) them first, while /primary still answers
   * 200 (HAProxy would otherwise cut the sessions of in-flight transactions), bounded by
   * pause_timeout; after (3), RESUME them in the background once the new primary is writable
   * (docs/pgbouncer.md).
   */
  async stepDown(ctx: ActContext): Promise<void> {
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
    await this.start('standby', null);
  }

  /**
   * Switchover: the clean stop made each walsender wait for its consumer's last confirmation,
   * and the shutdown checkpoint wrote the slots to disk. Publish those final positions before the
   * key is released, so that the candidate advances its copies to them before it promotes
   * (advance_logical): a consumer then resumes exactly where it stopped.
   */
  async #publishFinalSlots(lsn: number, ctx: ActContext): Promise<void> {
    const published = this.#d.logical?.published();
    const read = this.#d.pg.readStoppedSlotPositions;
    if (published === undefined || read === undefined) return;
    try {
      const onDisk = await read.call(this.#d.pg);
      const slots = Object.fromEntries(Object.entries(published).map(([n, p]) => [n, Math.max(p, onDisk[n] ?? 0)]));
      const r = this.#revisions(ctx);
      r.status = await this.#d.dcs.writeLeaderLsn(lsn, slots, r.status);
      this.#d.logger.info({ event: 'logical slots final', slots }, 'published the logical slots\' final positions for the switchover');
    } catch (err) {
      this.#d.logger.warn({ event: 'logical slots final', err: describeError(err) }, 'could not publish the logical slots\' final positions: consumers may receive the last changes again');
    }
  }

  #syncNames: string | undefined;

  async writeSync(members: string[], acks: number | undefined, ctx: ActContext): Promise<void> {
    const r = this.#revisions(ctx);
    r.sync = await this.#d.dcs.writeSync({ leader: this.#d.config.name, members, acks }, r.sync);
    const what = acks === undefined ? members.join(', ') : `any ${acks} of (${members.join(', ')})`;
    this.#d.logger.info({ event: 'sync record', members, acks }, `every acknowledged commit is on: ${members.length === 0 ? 'the leader only' : what}`);
  }

  async setSyncNames(names: string[] | null, count: number, method: SyncMethod): Promise<void> {
    await this.#d.pg.setSyncNames(names, count, method);
    const key = names === null ? 'async' : `${method} ${count} ${names.join(',')}`;
    if (key === this.#syncNames) return;
    this.#syncNames = key;
    if (names === null && this.#d.dynamic().synchronous_mode !== 'off') {
      this.#d.logger.warn({ event: 'sync off' }, 'no synchronous standby available: commits are now asynchronous (synchronous_mode_strict is off)');
    } else if (names !== null) {
      const word = method === 'any' ? 'ANY' : 'FIRST';
      this.#d.logger.info({ event: 'sync names', names, count, method }, `synchronous_standby_names: ${word} ${count} (${names.join(', ') || 'none: commits wait'})`);
    }
  }

  async ensureSlots(members: string[], permanent: string[]): Promise<void> {
    const now = this.#d.now();
    const ttlMs = this.#d.dynamic().member_slots_ttl * 1000;
    for (const m of members) this.#slotsSeen.set(m, now);
    for (const [m, seen] of this.#slotsSeen) if (now - seen > ttlMs) this.#slotsSeen.delete(m);
    const names = new Set([...[...this.#slotsSeen.keys()].map(slotNameFor), ...permanent]);
    await this.#d.pg.ensureSlots([...names], true);
  }

  /**
   * /status: the WAL position, and the logical slots' confirmed positions once the leader read
   * them (before that, the ones last published there are kept: a new leader must not erase the
   * list of slots a removal from the configuration still has to drop).
   */
  async publishLeaderLsn(local: LocalPostgres, cluster: ClusterView | null = null): Promise<void> {
    const slots = this.#d.logical?.published() ?? cluster?.logicalSlots ?? undefined;
    const slotsKey = JSON.stringify(slots ?? null);
    if (local.lsn === null || (local.lsn === this.#lastPublishedLsn && slotsKey === this.#lastPublishedSlots)) return;
    if (cluster === null) return; // etcd was not read this loop: published next loop, by compare-and-set
    cluster.revisions.status = await this.#d.dcs.writeLeaderLsn(local.lsn, slots, cluster.revisions.status);
    this.#lastPublishedLsn = local.lsn;
    this.#lastPublishedSlots = slotsKey;
  }

  async syncLogical(a: Extract<Action, { kind: 'sync_logical' }>, ctx: ActContext): Promise<void> {
    const logical = this.#d.logical;
    if (logical === undefined) return;
    if (a.as === 'leader') { logical.kickLeader(this.#d.dynamic(), ctx.cluster); return; }
    await logical.syncStandby(this.#d.dynamic(), ctx.cluster, this.#upstream(ctx, a.leader), a.mayRestart);
  }
}
