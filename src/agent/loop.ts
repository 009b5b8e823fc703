// The HA loop: observe (local PostgreSQL, etcd), decide (pure), act, publish. One iteration
// runs every loop_wait seconds, or at once when the leader key changes.
import type { LogicalSlots } from '../slots/manager.ts';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import type { Dcs, KeepaliveResult } from '../dcs/types.ts';
import { PgHaError, describeError, isPgHaError } from '../errors.ts';
import { decide } from '../ha/decide.ts';
import type { FailsafeAnswer } from '../ha/failsafe.ts';
import type { ClusterView, FailsafeRound, LocalPostgres, MemberInfo, Observation, Plan } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import type { PostgresControl } from '../postgres/types.ts';
import type { Poolers } from '../pooler/poolers.ts';
import type { AgentSnapshot } from '../api/types.ts';
import { Actor } from './act.ts';
import type { ClientTls } from '../api/tls.ts';
import { FailsafeAgent } from './failsafe.ts';
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

export class HaLoop {
  readonly #d: LoopDeps;
  readonly fence: FenceTimer;
  readonly actor: Actor;
  #cluster: ClusterView | null = null;
  #local: LocalPostgres | null = null;
  #activity: Activity = null;
  #lastKeepalive: KeepaliveResult | null = null;
  #notStreamingSince: number | null = null;
  #lastReason = '';
  #holdsKey = false;
  #snapshot: AgentSnapshot | null = null;
  #stopping = false;
  #wake: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #ops: Array<{ name: string; run: () => Promise<void>; done: (err: unknown) => void }> = [];
  readonly failsafe: FailsafeAgent;
  #aliveTimer: NodeJS.Timeout | null = null;
  /** The member names were checked for slot collisions against the first etcd view. */
  #namesChecked = false;
  /** Date.now() of the last successful etcd read. */
  #dcsLastSeen: number | null = null;
  /** Monotonic ms of the last observation that showed another member holding the leader key. */
  #otherLeaderSeenAt: number | null = null;
  #failsafeActive = false;

  constructor(deps: LoopDeps) {
    this.#d = deps;
    this.failsafe = new FailsafeAgent({
      config: deps.config, tls: deps.apiTls, logger: deps.logger, now: deps.now, dynamic: () => this.dynamic,
      fenceDeadline: () => this.fence.deadline, record: () => this.#cluster?.failsafe ?? null,
      lastLeader: () => this.#cluster?.leader?.name ?? null,
      actsAsLeader: () => this.#holdsKey || this.actor.acquiring || (this.#local?.running === true && this.#local.role === 'primary'),
    });
    this.fence = new FenceTimer({
      now: deps.now, paused: () => this.dynamic.pause, fence: (why) => this.actor.fenceNow(why),
      ...(deps.external ? { external: deps.external } : {}),
    });
    this.actor = new Actor({
      config: deps.config, dcs: deps.dcs, pg: deps.pg, logger: deps.logger, fence: this.fence, now: deps.now,
      lastKeepalive: () => this.#lastKeepalive,
      renewFailed: (err) => this.failsafe.renewFailed(err),
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
      republish: () => this.#publish(),
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
      const pace = Math.min(this.dynamic.loop_wait * 1000, plan?.retryAfterMs ?? Infinity);
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
  enqueue(name: string, run: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ops.push({ name, run, done: (err) => (err === undefined ? resolve() : reject(err)) });
      this.wake();
    });
  }

  async #runOps(): Promise<void> {
    for (let op = this.#ops.shift(); op !== undefined; op = this.#ops.shift()) {
      this.#d.logger.info({ event: 'operation', op: op.name }, `running operator request: ${op.name}`);
      try {
        await op.run();
        op.done(undefined);
      } catch (err) {
        op.done(err);
      }
    }
  }

  /** One iteration: operator requests, then observe, decide, act, publish. */
  async runOnce(): Promise<Plan> {
    await this.#runOps();
    const o = await this.observe();
    await this.#dueRestart(o);
    const plan = decide(o);
    this.#failsafeActive = plan.actions.some((a) => a.kind === 'failsafe_extend');
    if (plan.reason !== this.#lastReason) {
      const l = o.local;
      this.#d.logger.info({ event: 'plan', actions: plan.actions.map((a) => a.kind), pg: { running: l.running, role: l.role, control: l.controlState, tl: l.timeline } }, plan.reason);
      this.#lastReason = plan.reason;
    }
    if (plan.actions.length > 0) {
      await this.actor.run(plan.actions, { cluster: this.#cluster, local: o.local });
      this.#local = await this.#d.pg.observe();
    }
    await this.#applyConfig(this.#local ?? o.local, o.cluster);
    // Publish to etcd only when this loop reached it: with etcd unreachable a put would only wait
    // out its deadline, and a loop that long outlasts a failsafe extension (one TTL).
    if (o.cluster === null) this.#refreshSnapshot();
    else await this.#publish().catch((err: unknown) => this.#d.logger.warn({ err: describeError(err) }, 'could not publish member state'));
    this.#d.alive?.beat(this.fence.deadline);
    return plan;
  }

  /** Dynamic PostgreSQL parameters changed in etcd: re-render pgha.conf and reload. */
  async #applyConfig(local: LocalPostgres, cluster: ClusterView | null): Promise<void> {
    if (!local.accepting || cluster === null) return;
    const upName = local.role === 'standby' ? local.upstream : null;
    const up = cluster.members.find((m) => m.name === upName);
    if (upName !== null && up === undefined) return; // upstream not visible right now: leave conninfo alone
    try {
      if (await this.#d.pg.applyConfig(up === undefined ? null : { name: up.name, conn: up.conn })) {
        this.#d.logger.info({ event: 'reloaded' }, 'PostgreSQL configuration changed: reloaded');
      }
    } catch (err) {
      this.#d.logger.warn({ err: describeError(err) }, 'could not apply the configuration');
    }
  }

  async observe(): Promise<Observation> {
    const { dcs, pg, config, now } = this.#d;
    const local = await pg.observe();
    this.#local = local;
    let cluster: ClusterView | null = null;
    let failsafe: FailsafeRound | null = null;
    // The renewal just failed after a whole etcd call deadline: another one before asking the
    // members could outlast our fence deadline. Ask them now and try etcd again next loop.
    if (this.failsafe.takeAskFirst()) failsafe = await this.failsafe.round(local);
    if (failsafe === null) {
      try {
        this.#lastKeepalive = await dcs.keepalive();
        cluster = await dcs.readCluster(config.bootstrap.dcs);
        this.#cluster = cluster;
        this.#holdsKey = cluster.leader?.name === config.name;
        this.#dcsLastSeen = Date.now();
        if (cluster.leader !== null && !this.#holdsKey) this.#otherLeaderSeenAt = now();
      } catch (err) {
        this.#d.logger.warn({ event: 'dcs unreachable', err: describeError(err) }, 'etcd unreachable');
        failsafe = await this.failsafe.round(local);
      }
    }
    // Before this member acts or publishes its key for the first time (see names.ts).
    if (cluster !== null && !this.#namesChecked) {
      assertNoSlotCollision(config.name, cluster.members.map((m) => m.name));
      this.#namesChecked = true;
    }
    const t = now();
    if (local.streaming) this.actor.rewindsWithoutStreaming = 0;
    const followsLeader = local.running && local.role === 'standby' && cluster?.leader != null;
    if (!followsLeader || local.streaming) this.#notStreamingSince = null;
    else this.#notStreamingSince ??= t;
    return {
      now: t,
      wallNow: Date.now(),
      self: {
        name: config.name, tags: this.#tags(), leaseDeadline: this.fence.deadline,
        startFailures: this.actor.startFailures, notStreamingSince: this.#notStreamingSince,
        failsafeHold: this.failsafe.hold, adoptSystemId: config.bootstrap.adopt_system_id ?? null,
      },
      local,
      cluster,
      fallbackConfig: this.#cluster?.config ?? config.bootstrap.dcs,
      failsafe,
    };
  }

  /** POST /failsafe from `caller`: confirm it (and promise not to race for a TTL) or refuse. */
  answerFailsafe(caller: string, callerTtl?: number): FailsafeAnswer {
    return this.failsafe.answer(caller, callerTtl);
  }

  async #publish(): Promise<void> {
    const member = this.#refreshSnapshot();
    if (member !== null) await this.#d.dcs.publishMember(member);
  }

  /** Our tags; after a pre_promote veto, nofailover for one ttl so the others race without us. */
  #tags(): NodeConfig['tags'] {
    const t = this.#d.config.tags;
    return this.actor.vetoed ? { ...t, nofailover: true } : t;
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

  async #restart(): Promise<void> {
    const leader = this.isLeader;
    const upstreamName = this.#cluster?.leader?.name ?? null;
    const up = this.#cluster?.members.find((m) => m.name === upstreamName);
    await this.#d.pg.stop('fast');
    await this.actor.start(leader ? 'primary' : 'standby', leader || up === undefined ? null : { name: up.name, conn: up.conn });
  }

  /**
   * A restart scheduled for this member (POST /restart with a schedule, kept in etcd) whose time
   * has come: removed from etcd first (compare-and-set, so a cancelled or replaced one is not
   * run, and none runs twice), then run. No timer: the loop looks every loop_wait.
   */
  async #dueRestart(o: Observation): Promise<void> {
    const name = this.#d.config.name;
    const r = o.cluster?.restarts?.[name];
    if (r === undefined || o.wallNow < r.at) return;
    try {
      if (!(await this.#d.dcs.takeRestart(name, r.revision))) return;
      this.#d.logger.info({ event: 'operation', op: 'scheduled restart', at: new Date(r.at).toISOString() }, 'running the scheduled restart');
      await this.#restart();
      this.#local = await this.#d.pg.observe();
      o.local = this.#local;
    } catch (err) {
      this.#d.logger.warn({ err: describeError(err) }, 'scheduled restart failed');
    }
  }

  /** Operator reinit of a standby: stop, wipe; the next iteration clones from the leader. */
  reinitialize(): Promise<void> {
    return this.enqueue('reinitialize', async () => {
      if (this.isLeader) throw new PgHaError('PGHA_CLI_REFUSED', 'refusing to reinitialize the leader');
      await this.#d.pg.stop('immediate');
      await this.#d.pg.wipe({ forReclone: true });
      this.#d.logger.warn({ event: 'reinitialize' }, 'data directory wiped (or kept for a delta restore); cloning from the leader');
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
