// Patroni's DCS value formats (checked against Patroni 3.0.2: patroni/dcs/__init__.py, dcs/etcd3.py,
// ha.py touch_member, ctl.py, utils.py cluster_as_json), so that patronictl, vip-manager and Patroni
// agents read what pgha writes, and pgha reads what they write. Each value pgha writes holds
// Patroni's fields plus pgha's own beside them (Patroni reads fields with .get and ignores the
// rest). Reading also accepts pgha's earlier formats (camelCase member values, object history
// entries, {lsn} status ...) so that a cluster upgraded in place keeps working.
// Captured Patroni-written values: test/fixtures/patroni-3.0.2/. The mapping: docs/migrating-from-patroni.md.
import { z } from 'zod';
import { formatLsn, parseLsn } from '../postgres/lsn.ts';
import type { FailoverRequest, FailsafeRecord, MemberInfo, MemberState, SyncRecord } from '../ha/types.ts';
import type { HistoryEntry } from './types.ts';

/** The `version` pgha puts in its member values: the Patroni release whose formats it writes. */
export const PATRONI_FORMAT_VERSION = '3.0.2';

const NAME = /^[A-Za-z0-9_.-]+$/;

// ---- members/<name> -------------------------------------------------------------------------

/** pgha state -> Patroni's state vocabulary (postgresql/__init__.py set_state). */
const TO_PATRONI_STATE: Record<MemberState, string> = {
  running: 'running', streaming: 'running', starting: 'starting', stopped: 'stopped', crashed: 'crashed',
  rewinding: 'stopped', cloning: 'creating replica', bootstrapping: 'initializing new cluster', fenced: 'stopped',
};

/** A pgha state in Patroni's words (GET /patroni answers these: patronictl reinit --wait polls for "creating replica"). */
export function toPatroniState(state: MemberState): string {
  return TO_PATRONI_STATE[state];
}

/** Patroni's state (and role) -> pgha's, for values a Patroni agent wrote. */
export function fromPatroniState(state: string, role: MemberInfo['role'], replicationState: string | undefined): MemberState {
  if (state === 'running') return role === 'standby' && replicationState === 'streaming' ? 'streaming' : 'running';
  if (state === 'starting' || state === 'restarting') return 'starting';
  if (state === 'crashed' || state === 'start failed' || state.startsWith('restart failed')) return 'crashed';
  if (state === 'creating replica') return 'cloning';
  if (state === 'initializing new cluster' || state === 'running custom bootstrap script') return 'bootstrapping';
  return 'stopped'; // stopped, stopping, stop failed, initdb failed, unknown ...
}

/** Patroni's role -> pgha's. `master` (3.0.x) and `primary` (later) run as primaries; `standby_leader` in recovery. */
export function fromPatroniRole(role: string | undefined): MemberInfo['role'] {
  if (role === 'master' || role === 'primary') return 'primary';
  // A standby cluster's leader runs PostgreSQL in recovery (docs/disaster-recovery.md).
  if (role === 'replica' || role === 'standby_leader') return 'standby';
  return 'unknown';
}

/** The value pgha writes under members/<name>. `paused`: Patroni's `pause` flag (patronictl pause --wait reads it). */
export function encodeMember(m: MemberInfo, paused = false): Record<string, unknown> {
  const v: Record<string, unknown> = {
    conn_url: `postgres://${m.conn}/postgres`,
    api_url: `${m.apiUrl}/patroni`,
    state: TO_PATRONI_STATE[m.state],
    role: m.role === 'primary' ? 'master' : m.role === 'standby' ? 'replica' : 'uninitialized',
    version: PATRONI_FORMAT_VERSION,
  };
  if (m.lsn !== null) v['xlog_location'] = m.lsn;
  if (m.state === 'streaming') v['replication_state'] = 'streaming';
  if (m.timeline !== null) v['timeline'] = m.timeline;
  // As Patroni (its `tags` property): a boolean tag only when true; failover_priority only off its default.
  const tags: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(m.tags)) {
    if (k === 'failover_priority' ? x !== 1 : k === 'replicatefrom' ? x !== undefined : x === true) tags[k] = x;
  }
  if (Object.keys(tags).length > 0) v['tags'] = tags;
  if (m.pendingRestart) v['pending_restart'] = true;
  if (paused) v['pause'] = true;
  // pgha's own fields: its exact state (Patroni's vocabulary is coarser) and upstream member.
  v['pgha_state'] = m.state;
  v['upstream'] = m.upstream;
  if (m.receivingFrom !== undefined) v['receiving_from'] = m.receivingFrom;
  return v;
}

/** host:port of Patroni's conn_url (postgres://[user@]host:port/db); null when it is not one. */
export function connFromUrl(url: string): string | null {
  const m = /^postgres(?:ql)?:\/\/(?:[^@/]*@)?([^/:?#]+):(\d{1,5})(?:[/?].*)?$/.exec(url);
  return m === null ? null : `${m[1]}:${m[2]}`;
}

/** Patroni's api_url (http://host:port/patroni) as pgha's base URL (no path). */
export function apiBaseFromUrl(url: string): string {
  return url.replace(/\/patroni\/?$/, '').replace(/\/$/, '');
}

const patroniTags = z.looseObject({
  nofailover: z.boolean().optional(), noloadbalance: z.boolean().optional(), clonefrom: z.boolean().optional(),
  nosync: z.boolean().optional(), failover_priority: z.number().int().min(0).optional(),
  nostream: z.boolean().optional(), replicatefrom: z.string().regex(NAME).optional(),
}).optional();

/** A Patroni-format member value (as Patroni or pgha wrote it); the name comes from the key. */
export const patroniMemberSchema = z.looseObject({
  conn_url: z.string(),
  api_url: z.string(),
  state: z.string().optional(),
  role: z.string().optional(),
  xlog_location: z.number().int().min(0).optional(),
  replication_state: z.string().optional(),
  timeline: z.number().int().optional(),
  tags: patroniTags,
  pending_restart: z.boolean().optional(),
  pgha_state: z.enum(['running', 'streaming', 'starting', 'stopped', 'crashed', 'rewinding', 'cloning', 'bootstrapping', 'fenced']).optional(),
  // A member name, or '@source': a standby leader follows its source cluster (src/ha/standby.ts).
  upstream: z.union([z.string().regex(NAME), z.literal('@source')]).nullable().optional(),
  receiving_from: z.string().max(300).optional(),
});

/** MemberInfo of a Patroni-format value, before the address checks of memberInfoSchema. */
export function memberFromPatroni(name: string, v: z.infer<typeof patroniMemberSchema>): unknown {
  const role = fromPatroniRole(v.role);
  const t = v.tags ?? {};
  return {
    name,
    role,
    state: v.pgha_state ?? fromPatroniState(v.state ?? 'unknown', role, v.replication_state),
    timeline: v.timeline ?? null,
    lsn: v.xlog_location ?? null,
    apiUrl: apiBaseFromUrl(v.api_url),
    conn: connFromUrl(v.conn_url) ?? v.conn_url,
    tags: {
      nofailover: t.nofailover ?? false, noloadbalance: t.noloadbalance ?? false, clonefrom: t.clonefrom ?? false,
      nosync: t.nosync ?? false, failover_priority: t.failover_priority ?? 1, nostream: t.nostream ?? false,
      ...(t.replicatefrom === undefined ? {} : { replicatefrom: t.replicatefrom }),
    },
    upstream: v.upstream ?? null,
    ...(v.receiving_from === undefined ? {} : { receivingFrom: v.receiving_from }),
    pendingRestart: v.pending_restart === true,
    // A mixed cluster: Patroni writes none of pgha's fields (its `version` is its own release).
    // pgha's own values leave `agent` out (absent means pgha), so they decode back exactly.
    ...(v.pgha_state === undefined ? { agent: 'patroni', ...(v.role === undefined ? {} : { patroniRole: v.role.slice(0, 64) }) } : {}),
  };
}

// ---- history --------------------------------------------------------------------------------

/**
 * One /history line as Patroni writes it: [timeline, lsn (bytes), reason, timestamp, new_leader].
 * Patroni's timeline is the one that ended there (a line of the new timeline's .history file:
 * parent timeline, switch point), one below pgha's entry, which names the timeline that began.
 * Patroni takes the cluster's current timeline as the last line's + 1 (Cluster.timeline).
 */
export function encodeHistory(entries: HistoryEntry[]): unknown[] {
  return entries.map((e) => [e.timeline - 1, parseLsn(e.lsn), e.reason, e.time, e.leader]);
}

const historyLine = z.union([
  // Patroni: [timeline, lsn, reason] with timestamp and new leader from 2.0 on (ha.py, postgresql/__init__.py).
  z.tuple([z.number().int(), z.union([z.number().int().min(0), z.string()]), z.string()], z.unknown()).transform((l) => ({
    timeline: l[0] + 1, lsn: typeof l[1] === 'number' ? formatLsn(l[1]) : l[1], reason: l[2],
    time: typeof l[3] === 'string' ? l[3] : '', leader: typeof l[4] === 'string' ? l[4] : '',
  })),
  // pgha before the Patroni format.
  z.object({ timeline: z.number().int(), lsn: z.string(), reason: z.string(), time: z.string(), leader: z.string() }),
]);
export const historyListSchema: z.ZodType<HistoryEntry[], unknown> = z.array(historyLine);

// ---- status ---------------------------------------------------------------------------------

/** /status as Patroni writes it: {"optime": <bytes>} (plus "slots" from the leader). */
export function encodeStatus(lsn: number, slots?: Record<string, number>): Record<string, unknown> {
  return slots === undefined ? { optime: lsn } : { optime: lsn, slots };
}
// slots: the leader's slots and their confirmed positions (pgha publishes its logical slots
// there, as Patroni does; Patroni also lists physical permanent slots); absent when none.
// An unreadable slots map never costs the optime beside it.
const statusSlots = z.record(z.string().regex(/^[a-z0-9_]{1,63}$/), z.number().min(0)).optional().catch(undefined);
export const statusValueSchema = z.union([
  z.looseObject({ optime: z.number().min(0), slots: statusSlots }).transform((s) => ({ lsn: s.optime, ...(s.slots === undefined ? {} : { slots: s.slots }) })),
  z.looseObject({ lsn: z.number(), slots: statusSlots }).transform((s) => ({ lsn: s.lsn, ...(s.slots === undefined ? {} : { slots: s.slots }) })),
]);

// ---- sync -----------------------------------------------------------------------------------

/** /sync as Patroni writes it: sync_standby is a sorted comma list or null; pgha's quorum size beside. */
export function encodeSync(r: SyncRecord): Record<string, unknown> {
  const v: Record<string, unknown> = { leader: r.leader, sync_standby: r.members.length === 0 ? null : [...r.members].sort().join(',') };
  if (r.acks !== undefined) v['acks'] = r.acks;
  return v;
}
export const syncValueSchema: z.ZodType<SyncRecord, unknown> = z.union([
  // pgha's earlier format first: it is told apart by its members array.
  z.object({ leader: z.string(), members: z.array(z.string()), acks: z.number().int().min(0).optional() }),
  // Patroni's: it always writes the leader (AbstractDCS.sync_state); sync_standby may be null. A
  // value without a leader fails to decode, so it counts as unreadable (nobody races in
  // synchronous mode), not as "no synchronous standby".
  z.looseObject({ leader: z.string(), sync_standby: z.string().nullable().optional(), acks: z.number().int().min(0).optional() }).transform((s) =>
    ({ leader: s.leader, members: (s.sync_standby ?? '').split(',').map((x) => x.trim()).filter(Boolean), ...(s.acks === undefined ? {} : { acks: s.acks }) })),
]);

// ---- failover -------------------------------------------------------------------------------

/**
 * /failover as Patroni writes it (AbstractDCS.manual_failover): {"leader", "member", "scheduled_at"
 * (ISO 8601)}, each only when set; pgha adds its request kind, request time and the stepped-down
 * leader's last WAL position.
 */
export function encodeFailover(r: FailoverRequest): Record<string, unknown> {
  const v: Record<string, unknown> = {};
  if (r.leader !== null) v['leader'] = r.leader;
  if (r.candidate !== null) v['member'] = r.candidate;
  if (r.scheduledAt !== null) v['scheduled_at'] = new Date(r.scheduledAt).toISOString();
  v['kind'] = r.kind;
  v['requested_at'] = r.requestedAt;
  if (r.shutdownLsn !== null) v['shutdown_lsn'] = r.shutdownLsn;
  return v;
}

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'a timestamp (ISO 8601)');
const patroniFailover = z.looseObject({
  leader: z.string().nullable().optional(),
  member: z.string().nullable().optional(),
  candidate: z.string().nullable().optional(),
  scheduled_at: isoTime.nullable().optional(),
  kind: z.enum(['switchover', 'failover']).optional(),
  requested_at: z.number().optional(),
  shutdown_lsn: z.number().nullable().optional(),
});
const pghaFailover = z.object({
  kind: z.enum(['switchover', 'failover']), leader: z.string().nullable(), candidate: z.string().nullable(),
  scheduledAt: z.number().nullable(), requestedAt: z.number(), shutdownLsn: z.number().nullable(),
});

/**
 * A /failover value; null when it asks for nothing (Patroni leaves `{}` behind after a switchover).
 * `seenAt`: the request time of a value without one (Patroni writes none): when this reader first saw it.
 */
export function failoverFromValue(raw: unknown, seenAt: number): { ok: true; value: FailoverRequest | null } | { ok: false; error: string } {
  const old = pghaFailover.safeParse(raw);
  if (old.success) return { ok: true, value: old.data };
  const p = patroniFailover.safeParse(raw);
  if (!p.success) return { ok: false, error: p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  const f = p.data;
  const leader = f.leader || null;
  const candidate = f.member || f.candidate || null;
  if (leader === null && candidate === null) return { ok: true, value: null };
  return {
    ok: true,
    value: {
      // Patroni does not tell a switchover from a failover in etcd; with a leader named, the leader
      // steps down first (a switchover, as Patroni's own leader handles it).
      kind: f.kind ?? (leader !== null ? 'switchover' : 'failover'),
      leader, candidate,
      scheduledAt: f.scheduled_at ? Date.parse(f.scheduled_at) : null,
      requestedAt: f.requested_at ?? seenAt,
      shutdownLsn: f.shutdown_lsn ?? null,
    },
  };
}

// ---- failsafe -------------------------------------------------------------------------------

/** /failsafe as Patroni writes it: {member name: api_url}; the writer is the leader (not named). */
export function encodeFailsafe(r: FailsafeRecord): Record<string, string> {
  return Object.fromEntries(Object.entries(r.members).map(([n, url]) => [n, `${url}/patroni`]));
}

const flatFailsafe = z.record(z.string().min(1).regex(NAME), z.string());
const pghaFailsafe = z.object({ leader: z.string().min(1), members: z.record(z.string().min(1), z.string()) });

/** A /failsafe value; `leader`: who holds the leader key in the same read (Patroni's value names no writer). */
export function failsafeFromValue(raw: unknown, leader: string | null): { leader: string; members: Record<string, string> } | null {
  const old = pghaFailsafe.safeParse(raw);
  if (old.success) return old.data;
  const flat = flatFailsafe.safeParse(raw);
  if (!flat.success || leader === null) return null;
  return { leader, members: Object.fromEntries(Object.entries(flat.data).map(([n, u]) => [n, apiBaseFromUrl(u)])) };
}
