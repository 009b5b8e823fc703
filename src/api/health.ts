// Health-check semantics, as pure functions of the loop's snapshot. Status codes follow
// Patroni's REST API, so an HAProxy configuration written for Patroni works unchanged.
// Every check fails closed: no snapshot, or one older than the staleness limit, answers 503.
import type { AgentSnapshot } from './types.ts';

export interface CheckInput {
  snapshot: AgentSnapshot | null;
  now: number;
  staleAfterMs: number;
  /** ?lag= limit in bytes, already parsed. */
  maxLag?: number | undefined;
  /** ?replication_state= */
  replicationState?: string | undefined;
}

export type Check = 'primary' | 'replica' | 'read-only' | 'health' | 'liveness' | 'readiness' | 'sync' | 'async' | 'read-only-sync';

/** Path -> check. Aliases follow Patroni. */
export const CHECK_PATHS: Record<string, Check> = {
  '/primary': 'primary', '/master': 'primary', '/leader': 'primary', '/read-write': 'primary',
  '/replica': 'replica', '/read-only': 'read-only',
  '/sync': 'sync', '/synchronous': 'sync', '/async': 'async', '/asynchronous': 'async', '/read-only-sync': 'read-only-sync',
  '/health': 'health', '/liveness': 'liveness', '/readiness': 'readiness',
};

const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/** "1048576", "10MB", "1kB" (case-insensitive units, as Patroni) -> bytes; null when invalid. */
export function parseLag(text: string): number | null {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (m === null) return null;
  const unit = (m[2] ?? '').toLowerCase() || 'b';
  const mult = UNITS[unit];
  return mult === undefined ? null : Number(m[1]) * mult;
}

export function isStale(s: AgentSnapshot | null, now: number, staleAfterMs: number): boolean {
  return s === null || now - s.observedAt > staleAfterMs;
}

const isRunning = (s: AgentSnapshot) => s.member.state === 'running' || s.member.state === 'streaming';
const isPrimary = (s: AgentSnapshot) => s.isLeader && s.member.role === 'primary' && isRunning(s);

function isReplica(s: AgentSnapshot, i: CheckInput): boolean {
  if (s.member.role !== 'standby' || !isRunning(s) || s.member.tags.noloadbalance) return false;
  if (i.replicationState !== undefined && (i.replicationState === 'streaming') !== (s.member.state === 'streaming')) return false;
  if (i.maxLag !== undefined && (s.lagBytes === null || s.lagBytes > i.maxLag)) return false;
  return true;
}

/** A synchronous standby: named in the leader's /sync record (synchronous_mode on). */
const isSync = (s: AgentSnapshot) =>
  s.cluster?.config.synchronous_mode === 'on' && s.cluster.sync?.leader === s.cluster.leader?.name && (s.cluster.sync?.members.includes(s.member.name) ?? false);

/** HTTP status of a health check: 200 or 503. */
export function checkStatus(check: Check, i: CheckInput): 200 | 503 {
  const s = i.snapshot;
  if (s === null || isStale(s, i.now, i.staleAfterMs)) return 503;
  switch (check) {
    case 'primary': return isPrimary(s) ? 200 : 503;
    case 'replica': return isReplica(s, i) ? 200 : 503;
    case 'read-only': return isPrimary(s) || isReplica(s, i) ? 200 : 503;
    case 'health': return isRunning(s) ? 200 : 503;
    case 'liveness': return 200;
    case 'sync': return isReplica(s, i) && isSync(s) ? 200 : 503;
    case 'async': return isReplica(s, i) && !isSync(s) ? 200 : 503;
    case 'read-only-sync': return isPrimary(s) || (isReplica(s, i) && isSync(s)) ? 200 : 503;
    case 'readiness': {
      if (isPrimary(s)) return 200;
      const maxLag = s.cluster?.config.maximum_lag_on_failover;
      return s.member.state === 'streaming' && (s.lagBytes === null || maxLag === undefined || s.lagBytes <= maxLag) ? 200 : 503;
    }
  }
}

/** The JSON of GET /status (Patroni's GET /patroni), also the body of every health check. */
export function statusBody(s: AgentSnapshot | null, now: number, staleAfterMs: number, scope: string): Record<string, unknown> {
  if (s === null) return { state: 'unknown', stale: true, scope };
  const m = s.member;
  return {
    name: m.name,
    scope,
    role: s.isLeader && m.role === 'primary' ? 'primary' : m.role === 'standby' ? 'replica' : m.role,
    state: m.state,
    leader: s.cluster?.leader?.name ?? null,
    timeline: m.timeline,
    lsn: m.lsn,
    lag: s.lagBytes,
    upstream: m.upstream,
    tags: m.tags,
    pending_restart: m.pendingRestart,
    pause: s.paused,
    cluster_unlocked: s.cluster !== null && s.cluster.leader === null,
    database_system_identifier: s.systemId,
    last_plan: s.lastPlan,
    age_ms: Math.round(now - s.observedAt),
    stale: isStale(s, now, staleAfterMs),
    version: s.version,
  };
}

/** The JSON of GET /cluster: every member the loop last read from etcd. */
export function clusterBody(s: AgentSnapshot | null, scope: string): Record<string, unknown> {
  const c = s?.cluster ?? null;
  if (c === null) return { scope, members: [], pause: null, leader: null };
  const leaderLsn = c.lastLeaderLsn;
  return {
    scope,
    leader: c.leader?.name ?? null,
    pause: c.config.pause,
    members: c.members.map((m) => ({
      name: m.name,
      role: c.leader?.name === m.name ? 'leader' : m.role === 'standby' ? 'replica' : m.role,
      state: m.state, conn: m.conn, api_url: m.apiUrl, timeline: m.timeline, lsn: m.lsn,
      lag: m.role === 'standby' && m.lsn !== null && leaderLsn !== null ? Math.max(0, leaderLsn - m.lsn) : null,
      upstream: m.upstream, tags: m.tags, pending_restart: m.pendingRestart,
    })),
  };
}
