// The HA loop. One iteration, every loop_wait seconds or at once when the leader key changes:
//   1. operator requests queued through the REST API (restart, reinitialize), between iterations;
//   2. observe: the local PostgreSQL (raw facts, then perceive() adds what Memory knows), a
//      keepalive of our lease and one read of the cluster in etcd (or a failsafe round);
//   3. a scheduled restart that is due;
//   4. decide (pure, src/ha/decide.ts) -> a plan;
//   5. execute: the Actor runs the plan's steps in order, one Outcome each, up to the first failure;
//   6. remember (pure, src/ha/memory.ts): observation + outcomes -> the Memory of the next iteration;
//   7. apply changed dynamic PostgreSQL parameters (after the steps: they render for the upstream
//      the steps left configured);
//   8. publish our member key (only when etcd answered this iteration).
// Every etcd call of a running primary with failsafe_mode, in any step, gets only until a failsafe
// round is due (src/ha/lease.ts etcdBudget, ./budgeted-dcs.ts); one abandoned for that starts the
// next iteration at once, with the round.
import { memberByName } from '../ha/view.ts';
import type { LogicalSlots } from '../slots/manager.ts';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import type { Dcs, KeepaliveResult } from '../dcs/types.ts';
import { PgHaError, describeError, isPgHaError } from '../errors.ts';
import { decide } from '../ha/decide.ts';
import { chooseUpstream } from '../ha/upstream.ts';
import { failsafeToAsk, type FailsafeAnswer } from '../ha/failsafe.ts';
import { initialMemory, perceive, remember, tagsFor, type Memory } from '../ha/memory.ts';
import type { ClusterView, FailsafeRound, LocalPostgres, MemberInfo, Observation, Outcome, Plan, SourceState } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import type { PostgresControl } from '../postgres/types.ts';
import type { Poolers } from '../pooler/poolers.ts';
import type { AgentSnapshot } from '../api/types.ts';
import { Actor } from './act.ts';
import { SourceWatch, sourceUpstream } from './source-watch.ts';
import { SOURCE_UPSTREAM } from '../ha/standby.ts';
import type { ClientTls } from '../api/tls.ts';
import { FailsafeAgent, withinBudget } from './failsafe.ts';
import { etcdBudget } from '../ha/lease.ts';
import { budgetedDcs } from './budgeted-dcs.ts';
import { FenceTimer, type ExternalFence } from './fence.ts';
import { buildMemberInfo, lagBytes, type Activity } from './member.ts';
import { assertNoSlotCollision } from './names.ts';
import type { AgentStats } from './stats.ts';

export interface LoopDeps {
  /** The fencing process outside this event loop, if started. */
  external?: ExternalFence;
  config: NodeConfig;
  dcs: Dcs;
  pg: PostgresControl;
  logger: Logger;
  now(): number;
  version: string;
  /** TLS of the failsafe calls to other members (loadClientTls), read at start. */
  apiTls?: ClientTls;
  /**
   * The loop is alive: called after every iteration and every `everyMs` while it runs, with the
   * fence deadline (systemd's watchdog is kept alive from here, gated on that deadline).
   */
  alive?: { everyMs: number; beat(leaseDeadline: number | null): void };
  /** The loop stopped for good (a member-name collision found at start): the agent must exit. */
  fatal?(err: PgHaError): void;
  /** The pre_promote callback (callbacks.ts): throws PGHA_PROMOTE_VETOED to refuse a promotion. */
  prePromote?: () => Promise<void>;
  /** Counters for GET /metrics (loop duration, fences, promotions). */
  stats?: AgentStats;
  /** Logical slots and publications (sync_logical); absent in tests that do not need them. */
  logical?: LogicalSlots;
  /** PgBouncer poolers paused around a switchover, reconnected after a failover. */
  poolers?: Poolers;
  /** Backups (src/backup/agent.ts): told of a bootstrap and of each promotion; never awaited. */
  backup?: { bootstrapped(): void; promoted(): void };
}

/** What an operator request did: its steps' outcomes (for remember()), and its error, if any. */
export interface OpResult {
  outcomes: Outcome[];
  error?: unknown;
}

export class HaLoop {
  readonly #d: LoopDeps;
  readonly fence: FenceTimer;
  readonly actor: Actor;
  #cluster: ClusterView | null = null;
  #local: LocalPostgres | null = null;
  #activity: Activity = null;
  /** Everything decide() needs from earlier iterations; only remember() makes the next one. */
  #memory: Memory = initialMemory;
  /** The keepalive etcd acknowledged in this iteration's observation (null: none). */
  #keepalive: KeepaliveResult | null = null;
  /** Set while a pre_promote veto is being published, before remember() records it. */
  #vetoing = false;
  #lastReason = '';
  #holdsKey = false;
  #snapshot: AgentSnapshot | null = null;
  #stopping = false;
  #wake: (() => void) | null = null;
  /** etcd for the actions and the publish: bounded by the time left before a failsafe round. */
  readonly #etcd: Dcs;
  /** A call through #etcd was abandoned for that bound: the next iteration asks the members first. */
  #budgetSpent = false;
  #running: Promise<void> | null = null;
  #ops: Array<{ name: string; run: () => Promise<OpResult>; done: (err: unknown) => void }> = [];
  readonly failsafe: FailsafeAgent;
  #aliveTimer: NodeJS.Timeout | null = null;
  /** The member names were checked for slot collisions against the first etcd view. */
  #namesChecked = false;
  /** Date.now() of the last successful etcd read. */
  #dcsLastSeen: number | null = null;
  /** Monotonic ms of the last observation that showed another member holding the leader key. */
  #otherLeaderSeenAt: number | null = null;
  #failsafeActive = false;
  /**
   * When this agent started (deps.now()): for one ttl after it, with failsafe_mode on, it does
   * not take the key, since a promise given before a restart is forgotten (src/ha/failsafe.ts).
   * Any promise this process gives after it is kept in FailsafeAgent.hold.
   */
  readonly #startedAt: number;
  /** standby_cluster: the source cluster, read in the background (source-watch.ts). */
  readonly sourceWatch: SourceWatch | null;
  #source: SourceState | null = null;

  constructor(deps: LoopDeps) {
    this.#d = deps;
    this.#startedAt = deps.now();
    const readSource = deps.pg.readSource?.bind(deps.pg);
    this.sourceWatch = readSource === undefined ? null : new SourceWatch(readSource, deps.now);
    // Plain inputs: the failsafe answers get the loop's latest state with each call
    // (answerFailsafe), its rounds with each observation. The fence timer fires outside the loop,
    // so it reads pause and calls the executor's fence when it fires.
    this.failsafe = new FailsafeAgent({ config: deps.config, tls: deps.apiTls, logger: deps.logger, now: deps.now });
    this.fence = new FenceTimer({
      now: deps.now, paused: () => this.dynamic.pause, fence: (why) => this.actor.fenceNow(why),
      ...(deps.external ? { external: deps.external } : {}),
    });
    // The executor's callbacks are effects that must happen inside a step, not after it: the API
    // stops answering /primary before a stop, the activity is published while a long step runs,
    // a failsafe promise given a moment ago blocks an acquire. Facts for the next loop go back in
    // the outcomes instead.
    this.#etcd = budgetedDcs(deps.dcs, {
      budget: () => etcdBudget(this.fence.deadline, deps.now(), this.dynamic.failsafe_mode, this.#local?.running === true && this.#local.role === 'primary'),
      spent: () => { this.#budgetSpent = true; },
    });
    this.actor = new Actor({
      config: deps.config, dcs: this.#etcd, pg: deps.pg, logger: deps.logger, fence: this.fence, now: deps.now,
      failsafeHold: () => this.failsafe.activeHold(),
      dynamic: () => this.dynamic,
      setLeadership: (held) => {
        this.#holdsKey = held;
        this.#refreshSnapshot();
      },
      // systemd fires its watchdog about when the deadline passes (watchdog-gate.ts): an agent
      // that fenced in time says so at once, so systemd need not kill it and its PostgreSQL.
      fenced: () => this.#d.alive?.beat(this.fence.deadline),
      ...(deps.prePromote ? { prePromote: deps.prePromote } : {}),
      ...(deps.poolers ? { poolers: deps.poolers } : {}),
      republish: async ({ vetoed }) => {
        this.#vetoing = vetoed;
        await this.#publish();
      },
      fencing: () => this.#d.stats?.fenced(),
      promoted: (reason) => this.#promoted(reason),
      ...(deps.logical ? { logical: deps.logical } : {}),
      bootstrapped: () => deps.backup?.bootstrapped(),
      setActivity: async (a) => {
        this.#activity = a;
        await this.#publish().catch(() => undefined);
      },
    });
  }

  /** Dynamic config as last read from etcd, else the node file's bootstrap.dcs. */
  get dynamic(): DynamicConfig {
    return this.#cluster?.config ?? this.#d.config.bootstrap.dcs;
  }

  snapshot(): AgentSnapshot | null {
    return this.#snapshot;
  }

  /** The last successful etcd read (what GET /config answers from); null before the first. */
  get view(): ClusterView | null {
    return this.#cluster;
  }

  /** Held the key at the last etcd read, and has not released, lost or fenced it since. */
  get isLeader(): boolean {
    return this.#holdsKey;
  }

  /** Start looping in the background; `stop()` ends it. */
  start(): void {
    const alive = this.#d.alive;
    // Between iterations too: a standby's iteration may wait on etcd for several call deadlines.
    if (alive !== undefined) this.#aliveTimer = setInterval(() => alive.beat(this.fence.deadline), alive.everyMs);
    this.#running = this.#loop();
  }

  /** Run the next iteration now (the leader key changed). */
  wake(): void {
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.wake();
    await this.#running;
    if (this.#aliveTimer !== null) clearInterval(this.#aliveTimer);
    this.#aliveTimer = null;
  }

  async #loop(): Promise<void> {
    while (!this.#stopping) {
      const started = this.#d.now();
      const plan = await this.runOnce().catch((err: unknown) => {
        this.#d.logger.error({ err: describeError(err) }, 'HA loop iteration failed');
        if (isPgHaError(err, 'PGHA_NAME_COLLISION')) {
          this.#stopping = true;
          this.#d.fatal?.(err);
        }
        return null;
      });
      this.#d.stats?.loopDone((this.#d.now() - started) / 1000);
      if (this.#stopping) break;
      // A renewal that failed, or an etcd call abandoned for the fence deadline, asks the members
      // at once: a loop_wait of sleep could outlast the deadline.
      const pace = this.#askMembersFirst() ? 0 : Math.min(this.dynamic.loop_wait * 1000, plan?.retryAfterMs ?? Infinity);
      const wait = Math.max(0, pace - (this.#d.now() - started));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait); // sleeps loop_wait minus the time this iteration took
        this.#wake = () => { clearTimeout(t); resolve(); };
      });
      this.#wake = null;
    }
  }

  /**
   * Run an operator's operation (restart, reinitialize) inside the loop, between two iterations,
   * so it never races the loop's own actions. Resolves when it has run.
   */
  enqueue(name: string, run: () => Promise<OpResult>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ops.push({ name, run, done: (err) => (err === undefined ? resolve() : reject(err)) });
      this.wake();
    });
  }

  /** The queued operator requests, in order; their steps' outcomes go to remember() with the plan's. */
  async #runOps(): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    for (let op = this.#ops.shift(); op !== undefined; op = this.#ops.shift()) {
      this.#d.logger.info({ event: 'operation', op: op.name }, `running operator request: ${op.name}`);
      try {
        const r = await op.run();
        outcomes.push(...r.outcomes);
        op.done(r.error);
      } catch (err) {
        op.done(err);
      }
    }
    return outcomes;
  }

  /** One iteration, in the order written at the top of this file. */
  async runOnce(): Promise<Plan> {
    const outcomes = await this.#runOps();
    const o = await this.observe();
    outcomes.push(...(await this.#dueRestart(o)));
    const plan = decide(o);
    this.#failsafeActive = plan.actions.some((a) => a.kind === 'failsafe_extend');
    if (plan.reason !== this.#lastReason) {
      const l = o.local;
      this.#d.logger.info({ event: 'plan', actions: plan.actions.map((a) => a.kind), pg: { running: l.running, role: l.role, control: l.controlState, tl: l.timeline } }, plan.reason);
      this.#lastReason = plan.reason;
    }
    if (plan.actions.length > 0) outcomes.push(...(await this.actor.run(plan.actions, { cluster: this.#cluster, local: o.local, keepalive: this.#keepalive })));
    this.#memory = remember(this.#memory, o, outcomes);
    this.#vetoing = false;
    if (plan.actions.length > 0) {
      // A clone or rewind keeps its activity through the plan's `start` (act-data.ts); it ends
      // here, and the publish below already carries the state observed after the start.
      this.#activity = null;
      this.#local = perceive(await this.#d.pg.observe(), this.#memory);
    }
    await this.#applyConfig(this.#local ?? o.local, o.cluster);
    // Publish to etcd only when this loop reached it: with etcd unreachable a put would only wait
    // out its deadline, and a loop that long outlasts a failsafe extension (one TTL).
    // Nor after a renewal that failed this loop: the next etcd call would hang like it did, and the
    // failsafe round the next loop starts with (askMembersFirst) must come before the fence deadline.
    if (o.cluster === null || this.#askMembersFirst()) this.#refreshSnapshot();
    else await this.#publish().catch((err: unknown) => this.#d.logger.warn({ err: describeError(err) }, 'could not publish member state'));
    this.#d.alive?.beat(this.fence.deadline);
    return plan;
  }

  /** Dynamic PostgreSQL parameters changed in etcd: re-render pgha.conf and reload. */
  async #applyConfig(local: LocalPostgres, cluster: ClusterView | null): Promise<void> {
    if (!local.accepting || cluster === null) return;
    const upName = local.role === 'standby' ? local.upstream : null;
    const sc = cluster.config.standby_cluster;
    const up = upName === SOURCE_UPSTREAM ? (sc == null ? undefined : sourceUpstream(sc)) : memberByName(cluster, upName);
    if (upName !== null && up === undefined) return; // upstream not visible right now: leave conninfo alone
    try {
      if (await this.#d.pg.applyConfig(up === undefined ? null : up.name === SOURCE_UPSTREAM ? up : { name: up.name, conn: up.conn })) {
        this.#d.logger.info({ event: 'reloaded' }, 'PostgreSQL configuration changed: reloaded');
      }
    } catch (err) {
      this.#d.logger.warn({ err: describeError(err) }, 'could not apply the configuration');
    }
  }

  async observe(): Promise<Observation> {
    const { dcs, pg, config, now } = this.#d;
    const memory = this.#memory;
    const local = perceive(await pg.observe(), memory);
    this.#local = local;
    this.#keepalive = null;
    let cluster: ClusterView | null = null;
    let failsafe: FailsafeRound | null = null;
    // Ask the members of the /failsafe last read and of any write of ours that may still land.
    const round = () => this.failsafe.round(local, failsafeToAsk(this.#cluster?.failsafe ?? null, memory.failsafeWrites), this.fence.deadline, this.dynamic);
    // The renewal just failed after a whole etcd call deadline: another one before asking the
    // members could outlast our fence deadline. Ask them now and try etcd again next loop.
    const askFirst = this.#askMembersFirst();
    this.#budgetSpent = false;
    if (askFirst) failsafe = await round();
    if (failsafe === null) {
      try {
        // A leader that could still be saved by a failsafe round gives etcd only until that round
        // is due (src/ha/lease.ts etcdBudget); side effects wait for the answer.
        const budget = etcdBudget(this.fence.deadline, now(), this.dynamic.failsafe_mode, local.running && local.role === 'primary');
        if (budget !== null && budget <= 0) throw new PgHaError('PGHA_DCS_TIMEOUT', 'no time left for etcd before the fence deadline', { retryable: true });
        const r = await withinBudget((async () => ({ ka: await dcs.keepalive(), view: await dcs.readCluster(config.bootstrap.dcs) }))(), budget, 'keepalive and read');
        this.#keepalive = r.ka;
        cluster = r.view;
        this.#cluster = cluster;
        this.#holdsKey = cluster.leader?.name === config.name;
        this.#dcsLastSeen = Date.now();
        if (cluster.leader !== null && !this.#holdsKey) this.#otherLeaderSeenAt = now();
      } catch (err) {
        this.#d.logger.warn({ event: 'dcs unreachable', err: describeError(err) }, 'etcd unreachable');
        failsafe = await round();
      }
    }
    // Before this member acts or publishes its key for the first time (see names.ts).
    if (cluster !== null && !this.#namesChecked) {
      assertNoSlotCollision(config.name, cluster.members.map((m) => m.name));
      this.#namesChecked = true;
    }
    this.#source = this.#readSource(cluster);
    const t = now();
    return {
      source: this.#source,
      now: t,
      memory,
      wallNow: Date.now(),
      self: {
        name: config.name, tags: tagsFor(config.tags, memory, t), leaseDeadline: this.fence.deadline,
        failsafeHold: this.failsafe.hold, adoptSystemId: config.bootstrap.adopt_system_id ?? null, startedAt: this.#startedAt,
      },
      local,
      cluster,
      fallbackConfig: this.#cluster?.config ?? config.bootstrap.dcs,
      failsafe,
    };
  }

  /**
   * The source cluster, when this member may act on it: standby_cluster set, and we hold the key,
   * nobody does, or nobody initialised the cluster. Followers never read it.
   */
  #readSource(cluster: ClusterView | null): SourceState | null {
    const sc = (cluster?.config ?? this.#cluster?.config ?? this.#d.config.bootstrap.dcs).standby_cluster;
    if (sc == null || this.sourceWatch === null) return null;
    if (cluster !== null && cluster.initialize !== null && cluster.leader !== null && !this.#holdsKey) return null;
    return this.sourceWatch.current(sc);
  }

  /** The source as last read (GET /status); null: not read. */
  get source(): SourceState | null { return this.#source; }

  /** POST /failsafe from `caller`: confirm it (and promise not to race for a TTL) or refuse. */
  answerFailsafe(caller: string, callerTtl?: number): FailsafeAnswer {
    return this.failsafe.answer(caller, callerTtl, {
      dyn: this.dynamic, record: this.#cluster?.failsafe ?? null, lastLeader: this.#cluster?.leader?.name ?? null,
      actsAsLeader: this.#holdsKey || this.actor.acquiring || (this.#local?.running === true && this.#local.role === 'primary'),
    });
  }

  async #publish(): Promise<void> {
    const member = this.#refreshSnapshot();
    if (member !== null) await this.#etcd.publishMember(member);
  }

  #askMembersFirst(): boolean {
    return this.#memory.askMembersFirst || this.#budgetSpent;
  }

  /** Our tags; after a pre_promote veto, nofailover for one ttl so the others race without us. */
  #tags(): NodeConfig['tags'] {
    const t = tagsFor(this.#d.config.tags, this.#memory, this.#d.now());
    return this.#vetoing ? { ...t, nofailover: true } : t;
  }

  /** Rebuild what the REST API serves from the latest local observation and leadership. */
  #refreshSnapshot(): MemberInfo | null {
    const local = this.#local;
    if (local === null) return null;
    const member = buildMemberInfo({ ...this.#d.config, tags: this.#tags() }, local, this.#activity);
    const cluster = this.#cluster;
    this.#snapshot = {
      member,
      isLeader: this.isLeader,
      cluster,
      paused: this.dynamic.pause,
      source: this.#source,
      lagBytes: lagBytes(local, cluster?.lastLeaderLsn ?? null),
      observedAt: this.#d.now(),
      lastPlan: this.#lastReason,
      systemId: local.systemId,
      version: this.#d.version,
      postgres: local.stats ?? null,
      dcsLastSeen: this.#dcsLastSeen,
      failsafeActive: this.#failsafeActive || this.failsafe.activeHold() !== null,
      logical: this.#d.logical?.snapshot() ?? null,
    };
    return member;
  }

  /**
   * A promotion finished. The outage this member measured: from the last observation in which
   * another member held the leader key to now (null when it never saw one: first start).
   */
  #promoted(reason: string): void {
    const seen = this.#otherLeaderSeenAt;
    this.#d.stats?.promoted(reason, seen === null ? null : (this.#d.now() - seen) / 1000);
    this.#otherLeaderSeenAt = null;
    this.#d.backup?.promoted();
  }

  /** Operator restart: stop PostgreSQL (fast) and start it again in the role it had. */
  restartPostgres(): Promise<void> {
    return this.enqueue('restart', () => this.#restart());
  }

  /**
   * Stop (fast), then start in the role this member had. The start is the executor's step, so
   * its outcome goes to remember() like a plan's (a failed start counts); `error`: what failed.
   */
  async #restart(): Promise<{ outcomes: Outcome[]; error?: unknown }> {
    const sc = this.#cluster?.config.standby_cluster ?? null;
    // The standby leader of a standby cluster restarts as a standby of the source.
    const leader = this.isLeader && sc === null;
    // The member decide() has this standby follow: the leader, a replicatefrom member, or none (nostream).
    const upstreamName = chooseUpstream(this.#d.config.name, this.#d.config.tags, this.#cluster).upstream;
    const up = this.isLeader && sc !== null ? sourceUpstream(sc) : memberByName(this.#cluster, upstreamName);
    try {
      await this.#d.pg.stop('fast');
    } catch (error) {
      return { outcomes: [], error };
    }
    const upstream = leader || up === undefined ? null : up.name === SOURCE_UPSTREAM ? up : { name: up.name, conn: up.conn };
    const action = { kind: 'start', as: leader ? 'primary' : 'standby', upstream: upstream?.name ?? null } as const;
    try {
      await this.actor.start(action.as, upstream);
      return { outcomes: [{ action, ok: true }] };
    } catch (error) {
      return { outcomes: [{ action, ok: false, error: describeError(error).message, retryable: false }], error };
    }
  }

  /**
   * A restart scheduled for this member (POST /restart with a schedule, kept in etcd) whose time
   * has come: removed from etcd first (compare-and-set, so a cancelled or replaced one is not
   * run, and none runs twice), then run. No timer: the loop looks every loop_wait.
   */
  async #dueRestart(o: Observation): Promise<Outcome[]> {
    const name = this.#d.config.name;
    const r = o.cluster?.restarts?.[name];
    if (r === undefined || o.wallNow < r.at) return [];
    try {
      if (!(await this.#d.dcs.takeRestart(name, r.revision))) return [];
    } catch (err) {
      this.#d.logger.warn({ err: describeError(err) }, 'scheduled restart failed');
      return [];
    }
    this.#d.logger.info({ event: 'operation', op: 'scheduled restart', at: new Date(r.at).toISOString() }, 'running the scheduled restart');
    const { outcomes, error } = await this.#restart();
    if (error !== undefined) this.#d.logger.warn({ err: describeError(error) }, 'scheduled restart failed');
    this.#local = perceive(await this.#d.pg.observe(), this.#memory);
    o.local = this.#local;
    return outcomes;
  }

  /** Operator reinit of a standby: stop, wipe; the next iteration clones from the leader. */
  reinitialize(): Promise<void> {
    return this.enqueue('reinitialize', async () => {
      if (this.isLeader) throw new PgHaError('PGHA_CLI_REFUSED', 'refusing to reinitialize the leader');
      await this.#d.pg.stop('immediate');
      await this.#d.pg.wipe({ forReclone: true });
      this.#d.logger.warn({ event: 'reinitialize' }, 'data directory wiped (or kept for a delta restore); cloning from the leader');
      return { outcomes: [] };
    });
  }

  /**
   * Clean shutdown order: (1) stop the loop; (2) a leader stops PostgreSQL (fast: connected
   * standbys receive all WAL before it exits); (3) release the key so a standby takes over at
   * once instead of after the TTL; (4) remove our member key. A standby stops PostgreSQL too.
   */
  async shutdown(): Promise<void> {
    await this.stop();
    const wasLeader = this.isLeader;
    await this.#d.pg.stop('fast').catch((err: unknown) => this.#d.logger.error({ err: describeError(err) }, 'could not stop PostgreSQL'));
    if (wasLeader) {
      this.fence.disarm();
      await this.#d.dcs.releaseLeader().catch((err: unknown) => this.#d.logger.warn({ err: describeError(err) }, 'could not release the leader key'));
      this.#d.logger.info({ event: 'leader key released' }, 'released the leader key on shutdown');
    }
    await this.#d.dcs.deleteMember().catch(() => undefined);
    this.fence.disarm();
  }
}
