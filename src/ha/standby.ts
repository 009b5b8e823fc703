// Standby clusters (Patroni's standby_cluster), pure: the whole cluster replicates from another
// one. Its leader, the standby leader, holds the key and runs PostgreSQL as a standby of the
// source cluster; the other members stream from it as usual. Nobody promotes while the setting
// is there. decide() calls these rules (rule S in src/ha/decide.ts).
import { sourceHosts, type DynamicConfig, type StandbyClusterConfig } from '../config/schema.ts';
import { MAX_START_FAILURES, REWIND_AFTER_MS } from './decide.ts';
import { notStreamingSince, rewindsWithoutStreaming, MAX_REWINDS_WITHOUT_STREAMING } from './memory.ts';
import type { Action, ClusterView, Observation, Plan } from './types.ts';

/**
 * The upstream name of the source cluster in plans, pgha.conf's "# pgha-upstream:" line and the
 * member key. A member name cannot contain '@' (src/config/schema.ts), so it never clashes.
 */
export const SOURCE_UPSTREAM = '@source';

/** The standby_cluster setting in force; null: a normal cluster. */
export const standbyClusterOf = (cfg: DynamicConfig): StandbyClusterConfig | null => cfg.standby_cluster ?? null;

/** "host:port, host:port" of the source, for messages. */
export const describeSource = (sc: StandbyClusterConfig): string => sourceHosts(sc).map((h) => `${h.host}:${h.port}`).join(',');

/**
 * Why this cluster must not follow the source (bad input), or null. Checked before any step that
 * would touch data: the source is one of our own members (the cluster would follow itself), or
 * the source holds another database system than our data (a rewind or clone would replace it).
 */
export function sourceProblem(o: Observation, sc: StandbyClusterConfig, cluster: ClusterView | null): string | null {
  const ours = new Set((cluster?.members ?? []).map((m) => m.conn));
  const self = sourceHosts(sc).find((h) => ours.has(`${h.host}:${h.port}`));
  if (self !== undefined) {
    const m = cluster?.members.find((x) => x.conn === `${self.host}:${self.port}`);
    return `standby_cluster points at ${self.host}:${self.port}, which is member ${m?.name ?? '?'} of this cluster: not following ourselves (PGHA_STANDBY_SOURCE_INVALID)`;
  }
  const src = o.source;
  if (src == null || !src.reachable || src.systemId === null) return null;
  const ourId = o.local.systemId ?? (cluster?.initialize != null && /^\d+$/.test(cluster.initialize) ? cluster.initialize : null);
  if (ourId !== null && src.systemId !== ourId) {
    return `standby_cluster source ${describeSource(sc)} has system identifier ${src.systemId}, our data ${ourId}: refusing to follow, rewind or clone from it (PGHA_STANDBY_SOURCE_INVALID)`;
  }
  return null;
}

/** The source was read this loop and answered (with the same system, checked by sourceProblem). */
const sourceUsable = (o: Observation): boolean => o.source?.reachable === true && o.source.systemId !== null;

const plan = (reason: string, ...actions: Action[]): Plan => ({ reason, actions });
const unreachable = (o: Observation, sc: StandbyClusterConfig): string =>
  `standby_cluster source ${describeSource(sc)} ${o.source == null ? 'not read yet' : `unreachable (${o.source.error ?? 'no answer'})`} (PGHA_STANDBY_SOURCE_UNREACHABLE)`;

/** Empty data directory, nobody initialised the cluster: the first standby leader clones the source. */
export function decideStandbyBootstrap(o: Observation, sc: StandbyClusterConfig): Plan {
  const problem = sourceProblem(o, sc, o.cluster);
  if (problem !== null) return plan(problem);
  if (!sourceUsable(o)) return plan(`cluster not initialised; ${unreachable(o, sc)}: waiting`);
  return plan(`cluster not initialised: bootstrapping a standby cluster from ${describeSource(sc)}`, { kind: 'bootstrap_standby' });
}

/** The standby leader should rewind: not streaming for a while, and the source is on a newer timeline. */
function behindSourceTimeline(o: Observation, cfg: DynamicConfig): boolean {
  if (!cfg.postgresql.use_pg_rewind || o.local.streaming || !sourceUsable(o)) return false;
  const since = notStreamingSince(o);
  if (since === null || o.now - since < REWIND_AFTER_MS) return false;
  const local = o.local.replayTimeline ?? o.local.timeline;
  return o.source?.timeline != null && local !== null && o.source.timeline > local;
}

function fromSource(o: Observation, renew: Action, why: string): Plan {
  const n = rewindsWithoutStreaming(o);
  if (o.memory.rewindUnusable || n + 1 >= MAX_REWINDS_WITHOUT_STREAMING) {
    return plan(`${why}; the data cannot be rewound: cloning afresh from the source`, renew, { kind: 'reclone', from: SOURCE_UPSTREAM }, { kind: 'start', as: 'standby', upstream: SOURCE_UPSTREAM });
  }
  return plan(`${why}: rewinding from the source`, renew, { kind: 'rewind', from: SOURCE_UPSTREAM }, { kind: 'start', as: 'standby', upstream: SOURCE_UPSTREAM });
}

/**
 * E, standby cluster: we hold the key. Never promote, never start as primary: a running primary
 * (demote-cluster) stops and is rewound from the source; a standby follows the source.
 * `rest`: the leader's routine steps (publish its position, slots for its standbys).
 */
export function decideAsStandbyLeader(o: Observation, cfg: DynamicConfig, sc: StandbyClusterConfig, renew: Action, rest: Action[]): Plan {
  const { local } = o;
  const problem = sourceProblem(o, sc, o.cluster);
  if (local.running && local.role === 'primary') {
    if (cfg.pause) return plan('standby_cluster is set but we run as primary; paused: not demoting', renew);
    // Writes stop now in every case; the rewind waits for a source we can check.
    if (problem !== null || !sourceUsable(o)) return plan(`standby_cluster is set: stopping our primary; ${problem ?? unreachable(o, sc)}`, renew, { kind: 'fence' });
    return fromSource(o, renew, 'standby_cluster is set: demoting to a standby leader of the source');
  }
  if (local.running && local.role === 'standby') {
    if (problem !== null) return plan(problem, renew);
    if (local.upstream !== SOURCE_UPSTREAM) return plan(`standby leader: following the source ${describeSource(sc)}`, renew, { kind: 'follow', upstream: SOURCE_UPSTREAM }, ...rest);
    if (behindSourceTimeline(o, cfg)) return fromSource(o, renew, `standby leader: not streaming, and the source is on timeline ${o.source?.timeline}`);
    return plan(`standby leader: following the source ${describeSource(sc)}`, renew, ...rest);
  }
  if (local.running) return plan('standby leader: PostgreSQL is starting, waiting', renew);
  if (cfg.pause) return plan('standby leader: PostgreSQL is down, but paused: not starting it', renew);
  if (o.memory.startFailures >= MAX_START_FAILURES) {
    return plan(`standby leader: PostgreSQL failed to start ${o.memory.startFailures} times: releasing the key`, { kind: 'release' });
  }
  if (problem !== null) return plan(problem, renew);
  if (o.memory.rewindUnusable || (local.controlState !== 'standby' && cfg.postgresql.use_pg_rewind)) {
    if (!sourceUsable(o)) return plan(`standby leader: data needs a rewind; ${unreachable(o, sc)}: waiting`, renew);
    return fromSource(o, renew, `standby leader: former primary (${local.controlState})`);
  }
  return plan('standby leader: starting as a standby of the source', renew, { kind: 'start', as: 'standby', upstream: SOURCE_UPSTREAM });
}

/** What a member does right after taking the key: promote (normal cluster) or follow the source. */
export function takeOver(cfg: DynamicConfig, promote: Action): Action {
  return standbyClusterOf(cfg) === null ? promote : { kind: 'follow', upstream: SOURCE_UPSTREAM };
}
