// Health-check semantics, as pure functions of the loop's snapshot. Status codes follow
// Patroni's REST API, so an HAProxy configuration written for Patroni works unchanged.
// Every check fails closed: no snapshot, or one older than the staleness limit, answers 503.
// The JSON bodies (/status, /cluster) are documented field by field in docs/rest-api.md.
import type { LogicalSlotStatus } from '../slots/types.ts';
import { splitHostPort } from '../config/schema.ts';
import { recordedStandbys } from '../ha/quorum.ts';
import type { ClusterView, MemberInfo, MemberState, SourceState } from '../ha/types.ts';
import { describeSource } from '../ha/standby.ts';
import type { AgentSnapshot } from './types.ts';
import type { ArchiveHealth } from '../backup/health.ts';
import { memberLag } from '../ha/view.ts';

export type Check =
  | 'primary' | 'replica' | 'read-only' | 'health' | 'liveness' | 'readiness'
  | 'sync' | 'async' | 'read-only-sync' | 'quorum' | 'read-only-quorum' | 'standby-leader';

/** Path -> check. Aliases follow Patroni (`/leader` is stricter here: see docs/rest-api.md). */
export const CHECK_PATHS: Readonly<Record<string, Check>> = {
  '/': 'primary', '/primary': 'primary', '/master': 'primary', '/leader': 'primary', '/read-write': 'primary',
  '/replica': 'replica', '/read-only': 'read-only',
  '/sync': 'sync', '/synchronous': 'sync', '/async': 'async', '/asynchronous': 'async',
  '/read-only-sync': 'read-only-sync', '/read-only-synchronous': 'read-only-sync',
  '/quorum': 'quorum', '/read-only-quorum': 'read-only-quorum',
  '/health': 'health', '/liveness': 'liveness', '/readiness': 'readiness',
  '/standby-leader': 'standby-leader', '/standby_leader': 'standby-leader',
};

/** ?replication_state= values, Patroni's names. A standby in recovery without a WAL receiver is "in archive recovery". */
export const REPLICATION_STATES = ['streaming', 'in archive recovery'] as const;
export type ReplicationState = (typeof REPLICATION_STATES)[number];
/** ?mode= on /readiness (Patroni: lag of replayed or received WAL). Accepted; see docs/rest-api.md. */
export const READINESS_MODES = ['apply', 'write'] as const;
/** Query parameters with a meaning; `tag_<name>` parameters are tag filters, anything else is ignored (as Patroni). */
export const QUERY_KEYS = ['lag', 'replication_state', 'mode'] as const;
export const TAG_PREFIX = 'tag_';

/** What a health query asks beyond the check itself, validated. */
export interface Criteria {
  /** ?lag= in bytes. */
  maxLag?: number;
  replicationState?: ReplicationState;
  /** ?tag_<name>=<value> pairs, in query order. */
  tags: Array<[string, string]>;
}

export interface HealthInput {
  snapshot: AgentSnapshot | null;
  /** Same clock as snapshot.observedAt (monotonic ms). */
  now: number;
  staleAfterMs: number;
  scope: string;
  /** The parsed query string; values that are not strings are refused. */
  query?: Readonly<Record<string, unknown>>;
}

export interface ApiError {
  error: 'PGHA_API_BAD_REQUEST';
  message: string;
}

export type HealthResponse =
  | { status: 200 | 503; body: StatusBody }
  | { status: 400; body: ApiError };

const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };
const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/**
 * A byte size: "1048576", "10MB", "1kB", "1.5 GB". Units B, kB, MB, GB, TB (powers of 1024), any
 * letter case; the result is rounded to whole bytes. Null when it is not such a size.
 */
export function parseLag(text: string): number | null {
  const m = SIZE.exec(text);
  const mult = m === null ? undefined : UNITS[(m[2] ?? '').toLowerCase()];
  if (m === null || mult === undefined) return null;
  const bytes = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

type Parsed = { ok: true; criteria: Criteria } | { ok: false; message: string };

const bad = (message: string): Parsed => ({ ok: false, message });
const isOneOf = <T extends string>(list: readonly T[], v: string): v is T => (list as readonly string[]).includes(v);

/** Validate a health query. Unknown parameters are ignored, as Patroni does. */
export function parseQuery(query: Readonly<Record<string, unknown>> = {}): Parsed {
  const criteria: Criteria = { tags: [] };
  for (const [key, value] of Object.entries(query)) {
    const known = isOneOf(QUERY_KEYS, key) || key.startsWith(TAG_PREFIX);
    if (!known) continue;
    if (typeof value !== 'string') return bad(`${key}: expected one value`);
    if (key === 'lag') {
      const n = parseLag(value);
      if (n === null) return bad(`lag: "${value}" is not a size such as 1048576, 16MB or 1kB (units B, kB, MB, GB, TB)`);
      criteria.maxLag = n;
    } else if (key === 'replication_state') {
      if (!isOneOf(REPLICATION_STATES, value)) return bad(`replication_state: "${value}" is not one of ${REPLICATION_STATES.join(', ')}`);
      criteria.replicationState = value;
    } else if (key === 'mode') {
      if (!isOneOf(READINESS_MODES, value)) return bad(`mode: "${value}" is not one of ${READINESS_MODES.join(', ')}`);
    } else {
      criteria.tags.push([key.slice(TAG_PREFIX.length), value]);
    }
  }
  return { ok: true, criteria };
}

export function isStale(s: AgentSnapshot | null, now: number, staleAfterMs: number): boolean {
  return s === null || now - s.observedAt > staleAfterMs;
}

const isRunning = (s: AgentSnapshot) => s.member.state === 'running' || s.member.state === 'streaming';
const isPrimary = (s: AgentSnapshot) => s.isLeader && s.member.role === 'primary' && isRunning(s);
const isStandby = (s: AgentSnapshot) => s.member.role === 'standby' && isRunning(s);
/** The leader of a standby cluster (standby_cluster set): holds the key, runs as a standby of the source. */
const isStandbyLeader = (s: AgentSnapshot) => s.isLeader && s.cluster?.config.standby_cluster != null && isStandby(s);

function replicationState(m: MemberInfo): ReplicationState | null {
  if (m.role !== 'standby') return null;
  if (m.state === 'streaming') return 'streaming';
  return m.state === 'running' ? 'in archive recovery' : null;
}

/** Patroni's replica check: a running standby open to load balancing, within ?lag and ?replication_state. */
function isReplica(s: AgentSnapshot, c: Criteria): boolean {
  // Patroni: the standby leader's role is standby_leader, not replica.
  if (!isStandby(s) || isStandbyLeader(s) || s.member.tags.noloadbalance) return false;
  if (c.replicationState !== undefined && replicationState(s.member) !== c.replicationState) return false;
  // Unknown lag (the leader has not published a position) fails a ?lag check: fail closed.
  return c.maxLag === undefined || (s.lagBytes !== null && s.lagBytes <= c.maxLag);
}

/** A synchronous standby: named in the current leader's /sync record while synchronous_mode is on. */
function inSyncRecord(c: ClusterView | null, name: string): boolean {
  return c !== null && c.config.synchronous_mode === 'on' && recordedStandbys(c).includes(name);
}
const isSync = (s: AgentSnapshot) => inSyncRecord(s.cluster, s.member.name);

/**
 * A quorum standby: named in the current leader's /sync record while synchronous_mode is quorum
 * (Patroni: "a standby eligible for the quorum leader race"). /sync does not count these.
 */
function inQuorumRecord(c: ClusterView | null, name: string): boolean {
  return c !== null && c.config.synchronous_mode === 'quorum' && recordedStandbys(c).includes(name);
}
const isQuorum = (s: AgentSnapshot) => inQuorumRecord(s.cluster, s.member.name);

/** Streaming standby within ?lag, or within maximum_lag_on_failover from etcd (unknown: not ready). */
function isReady(s: AgentSnapshot, c: Criteria): boolean {
  if (isPrimary(s)) return true;
  const maxLag = c.maxLag ?? s.cluster?.config.maximum_lag_on_failover;
  return isStandby(s) && s.member.state === 'streaming' && maxLag !== undefined && s.lagBytes !== null && s.lagBytes <= maxLag;
}

/** ?tag_<name>=<value>: the member's tag, as lower-case text, must equal the value; a missing tag fails. */
function tagsMatch(s: AgentSnapshot, wanted: Array<[string, string]>): boolean {
  const tags = new Map<string, unknown>(Object.entries(s.member.tags));
  return wanted.every(([name, value]) => tags.has(name) && String(tags.get(name)).toLowerCase() === value);
}

function baseCheck(check: Check, s: AgentSnapshot, c: Criteria): boolean {
  switch (check) {
    case 'primary': return isPrimary(s);
    case 'replica': return isReplica(s, c);
    case 'read-only': return isPrimary(s) || isStandbyLeader(s) || isReplica(s, c);
    case 'health': return isRunning(s);
    case 'liveness': return true; // the staleness gate is the whole check
    case 'readiness': return isReady(s, c);
    case 'sync': return isReplica(s, c) && isSync(s);
    case 'async': return isReplica(s, c) && !isSync(s) && !isQuorum(s);
    case 'read-only-sync': return isPrimary(s) || (isReplica(s, c) && isSync(s));
    case 'quorum': return isReplica(s, c) && isQuorum(s);
    case 'read-only-quorum': return isPrimary(s) || (isReplica(s, c) && isQuorum(s));
    case 'standby-leader': return isStandbyLeader(s);
  }
}

/** Checks where Patroni ignores tag filters (it does for the leader checks; liveness and readiness have their own handlers). */
const IGNORES_TAGS: ReadonlySet<Check> = new Set(['primary', 'liveness', 'readiness']);

/** HTTP status of a health check with validated criteria: 200 or 503. */
export function checkStatus(check: Check, snapshot: AgentSnapshot | null, now: number, staleAfterMs: number, c: Criteria = { tags: [] }): 200 | 503 {
  if (snapshot === null || isStale(snapshot, now, staleAfterMs)) return 503;
  if (!baseCheck(check, snapshot, c)) return 503;
  return IGNORES_TAGS.has(check) || tagsMatch(snapshot, c.tags) ? 200 : 503;
}

/** A whole health check: (snapshot, now, staleness limit, query) -> status and body. */
export function healthResponse(check: Check, i: HealthInput): HealthResponse {
  const q = parseQuery(i.query);
  if (!q.ok) return { status: 400, body: { error: 'PGHA_API_BAD_REQUEST', message: q.message } };
  const status = checkStatus(check, i.snapshot, i.now, i.staleAfterMs, q.criteria);
  return { status, body: statusBody(i.snapshot, i.now, i.staleAfterMs, i.scope) };
}

/** The JSON of GET /status (Patroni's GET /patroni), also the body of every health check. */
export interface StatusBody {
  name: string | null;
  scope: string;
  /** primary | replica (a standby) | standby_leader (a standby cluster's leader) | unknown (PostgreSQL not running or not answering). */
  role: 'primary' | 'replica' | 'standby_leader' | 'unknown';
  state: MemberState | 'unknown';
  /** Holder of the leader key in the last etcd read; null: none, or etcd not read yet. */
  leader: string | null;
  timeline: number | null;
  /**
   * In Patroni's shape, which a Patroni leader reads from GET /patroni in a mixed cluster
   * (ha.py _MemberStatus: a `location` means "not in recovery"): primary {location: write
   * position}; standby {received_location, replayed_location}, both the further of received and
   * replayed; absent while PostgreSQL is not answering (Patroni then counts the member unreachable).
   */
  xlog?: { location: number | null } | { received_location: number | null; replayed_location: number | null };
  /** Standby only: streaming | in archive recovery. */
  replication_state: ReplicationState | null;
  lag: number | null;
  upstream: string | null;
  tags: MemberInfo['tags'] | null;
  pending_restart: boolean;
  sync_standby: boolean;
  /** A member of the leader's /sync record in quorum mode (Patroni's quorum_standby). */
  quorum_standby: boolean;
  pause: boolean;
  cluster_unlocked: boolean;
  database_system_identifier: string | null;
  last_plan: string | null;
  age_ms: number | null;
  stale: boolean;
  patroni: { version: string | null; scope: string; name: string | null };
  /**
   * Logical slots this member keeps (present once logical replication is managed): on the
   * leader each consumer's confirmed position and its lag in WAL bytes; on a standby its copy
   * and how far the copy is behind the position the leader published (docs/rest-api.md).
   */
  logical_slots?: LogicalSlotStatus[];
  /** pgha-only, with a backup: section: WAL archiving health (docs/backup.md). */
  archive?: ArchiveHealth | null;
  /**
   * A standby cluster (standby_cluster set): the source as configured, and on the member that
   * reads it (the standby leader) what it last found there (null: not read by this member).
   */
  standby_cluster?: { source: string; source_state: SourceState | null };
}

const ROLE = { primary: 'primary', standby: 'replica', unknown: 'unknown' } as const;

function xlogOf(m: MemberInfo): Pick<StatusBody, 'xlog'> {
  if (m.role === 'primary') return { xlog: { location: m.lsn } };
  if (m.role === 'standby') return { xlog: { received_location: m.lsn, replayed_location: m.lsn } };
  return {};
}

function pendingBody(scope: string): StatusBody {
  return {
    name: null, scope, role: 'unknown', state: 'unknown', leader: null, timeline: null,
    replication_state: null, lag: null, upstream: null, tags: null, pending_restart: false, sync_standby: false,
    quorum_standby: false, pause: false, cluster_unlocked: false, database_system_identifier: null, last_plan: null, age_ms: null,
    stale: true, patroni: { version: null, scope, name: null },
  };
}

export function statusBody(s: AgentSnapshot | null, now: number, staleAfterMs: number, scope: string): StatusBody {
  if (s === null) return pendingBody(scope);
  const m = s.member;
  return {
    name: m.name, scope, role: isStandbyLeader(s) ? 'standby_leader' : ROLE[m.role], state: m.state, leader: s.cluster?.leader?.name ?? null,
    timeline: m.timeline, ...xlogOf(m), replication_state: replicationState(m), lag: s.lagBytes,
    upstream: m.upstream, tags: m.tags, pending_restart: m.pendingRestart, sync_standby: isSync(s), quorum_standby: isQuorum(s), pause: s.paused,
    cluster_unlocked: s.cluster !== null && s.cluster.leader === null, database_system_identifier: s.systemId,
    last_plan: s.lastPlan, age_ms: Math.round(now - s.observedAt), stale: isStale(s, now, staleAfterMs),
    patroni: { version: s.version, scope, name: m.name },
    ...(s.logical == null ? {} : { logical_slots: s.logical.slots }),
    ...(s.archive === undefined ? {} : { archive: s.archive }),
    ...standbyClusterField(s.cluster, s.source ?? null),
  };
}

function standbyClusterField(c: ClusterView | null, state: SourceState | null): Pick<StatusBody, 'standby_cluster'> {
  const sc = c?.config.standby_cluster;
  return sc == null ? {} : { standby_cluster: { source: describeSource(sc), source_state: state } };
}

/** One member in GET /cluster. */
export interface ClusterMemberBody {
  name: string;
  /** leader (holds the key) | sync_standby | quorum_standby | replica (a standby) | primary (running as primary without the key) | unknown */
  role: 'leader' | 'standby_leader' | 'sync_standby' | 'quorum_standby' | 'replica' | 'primary' | 'unknown';
  state: MemberState;
  host: string | null;
  port: number | null;
  api_url: string;
  timeline: number | null;
  lsn: number | null;
  /** Standby: bytes behind the leader's position (see leaderPosition); null when unknown. */
  lag: number | null;
  upstream: string | null;
  tags: MemberInfo['tags'];
  pending_restart: boolean;
}

export interface ClusterBody {
  scope: string;
  leader: string | null;
  /** null: etcd not read yet. */
  pause: boolean | null;
  members: ClusterMemberBody[];
  /** A pending switchover with a start time (Patroni's field); null otherwise. */
  scheduled_switchover: { at: string; from: string | null; to: string | null } | null;
  /** A standby cluster: the source it replicates from ("host:port,..."); absent otherwise. */
  standby_cluster?: { source: string };
  age_ms: number | null;
  stale: boolean;
}

function hostAndPort(conn: string): { host: string | null; port: number | null } {
  const { host, port } = splitHostPort(conn);
  return { host: host === '' ? null : host, port: Number.isInteger(port) && port > 0 ? port : null };
}

function clusterRole(c: ClusterView, m: MemberInfo): ClusterMemberBody['role'] {
  if (c.leader?.name === m.name) return c.config.standby_cluster != null ? 'standby_leader' : 'leader';
  if (m.role !== 'standby') return m.role;
  return inSyncRecord(c, m.name) ? 'sync_standby' : inQuorumRecord(c, m.name) ? 'quorum_standby' : 'replica';
}

function memberBody(c: ClusterView, m: MemberInfo): ClusterMemberBody {
  const lag = memberLag(c, m);
  return {
    name: m.name, role: clusterRole(c, m), state: m.state, ...hostAndPort(m.conn), api_url: m.apiUrl,
    timeline: m.timeline, lsn: m.lsn, lag, upstream: m.upstream, tags: m.tags, pending_restart: m.pendingRestart,
  };
}

function scheduledSwitchover(c: ClusterView): ClusterBody['scheduled_switchover'] {
  const f = c.failover;
  if (f === null || f.kind !== 'switchover' || f.scheduledAt === null) return null;
  return { at: new Date(f.scheduledAt).toISOString(), from: f.leader, to: f.candidate };
}

/** The JSON of GET /cluster: every member as the loop last read them from etcd. */
export function clusterBody(s: AgentSnapshot | null, now: number, staleAfterMs: number, scope: string): ClusterBody {
  const age = s === null ? null : Math.round(now - s.observedAt);
  const stale = isStale(s, now, staleAfterMs);
  const c = s?.cluster ?? null;
  if (c === null) return { scope, leader: null, pause: null, members: [], scheduled_switchover: null, age_ms: age, stale };
  const members = c.members.map((m) => memberBody(c, m));
  const scheduled = scheduledSwitchover(c);
  const sc = c.config.standby_cluster;
  return {
    scope, leader: c.leader?.name ?? null, pause: c.config.pause, members, scheduled_switchover: scheduled,
    ...(sc == null ? {} : { standby_cluster: { source: describeSource(sc) } }), age_ms: age, stale,
  };
}
