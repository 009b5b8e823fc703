// The executor's leader upkeep steps: /sync, synchronous_standby_names, physical slots, /status,
// logical slots. Each is one action of the plan (dispatched by src/agent/act.ts) and returns the
// facts its Outcome carries; which members, which names and what was published before come in
// the action, from decide() and the Memory.
import type { Action, ClusterView, KeyRevisions, LocalPostgres, PublishedStatus, SyncMethod } from '../ha/types.ts';
import { slotNameFor, type Upstream } from '../postgres/types.ts';
import type { ActContext, ActorDeps, Facts } from './act.ts';

export async function writeSync(d: ActorDeps, members: string[], acks: number | undefined, r: KeyRevisions): Promise<void> {
  r.sync = await d.dcs.writeSync({ leader: d.config.name, members, acks }, r.sync);
  const what = acks === undefined ? members.join(', ') : `any ${acks} of (${members.join(', ')})`;
  d.logger.info({ event: 'sync record', members, acks }, `every acknowledged commit is on: ${members.length === 0 ? 'the leader only' : what}`);
}

/**
 * Set synchronous_standby_names; when it changed (or no position was read since the agent
 * started: `readFlush`), read the flushed WAL position after the reload: every commit
 * acknowledged under the former setting lies before it (Memory.syncChangedAt).
 */
export async function setSyncNames(d: ActorDeps, names: string[] | null, count: number, method: SyncMethod, readFlush: boolean): Promise<Facts> {
  const changed = await d.pg.setSyncNames(names, count, method);
  const facts: Facts = changed || readFlush ? { syncChangedAt: await d.pg.flushLsn() } : {};
  if (!changed) return facts;
  if (names === null && d.dynamic().synchronous_mode !== 'off') {
    d.logger.warn({ event: 'sync off' }, 'no synchronous standby available: commits are now asynchronous (synchronous_mode_strict is off)');
  } else if (names !== null) {
    const word = method === 'any' ? 'ANY' : 'FIRST';
    d.logger.info({ event: 'sync names', names, count, method }, `synchronous_standby_names: ${word} ${count} (${names.join(', ') || 'none: commits wait'})`);
  }
  return facts;
}

/** Exactly these physical slots (members decide() keeps within member_slots_ttl, and permanent ones). */
export async function ensureSlots(d: ActorDeps, members: string[], permanent: string[]): Promise<void> {
  const names = new Set([...members.map(slotNameFor), ...permanent]);
  await d.pg.ensureSlots([...names], true);
}

/**
 * /status: the WAL position, and the logical slots' confirmed positions once the leader read
 * them (before that, the ones last published there are kept: a new leader must not erase the
 * list of slots a removal from the configuration still has to drop).
 */
export async function publishLeaderLsn(d: ActorDeps, local: LocalPostgres, cluster: ClusterView | null, last: PublishedStatus | null): Promise<Facts> {
  const slots = d.logical?.published() ?? cluster?.logicalSlots ?? undefined;
  const status: PublishedStatus | null = local.lsn === null ? null : { lsn: local.lsn, slots: JSON.stringify(slots ?? null) };
  if (status === null || (status.lsn === last?.lsn && status.slots === last.slots)) return {};
  if (cluster === null) return {}; // etcd was not read this loop: published next loop, by compare-and-set
  cluster.revisions.status = await d.dcs.writeLeaderLsn(status.lsn, slots, cluster.revisions.status);
  return { published: status };
}

export async function syncLogical(d: ActorDeps, a: Extract<Action, { kind: 'sync_logical' }>, ctx: ActContext, upstream: (name: string) => Upstream): Promise<void> {
  const logical = d.logical;
  if (logical === undefined) return;
  if (a.as === 'leader') { logical.kickLeader(d.dynamic(), ctx.cluster); return; }
  await logical.syncStandby(d.dynamic(), ctx.cluster, upstream(a.leader), a.mayRestart);
}
