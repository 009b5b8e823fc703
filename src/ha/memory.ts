// What the agent remembers between loops, and the pure rule that updates it. The loop runs
// observe -> decide -> execute -> remember: decide() reads the Memory inside the Observation,
// the executor reports one Outcome per step it ran, and remember() folds the observation and the
// outcomes into the Memory of the next loop. Pure: no etcd, pg, clock or randomness (`now` comes
// in the Observation); the agent keeps the value, nothing else keeps state between loops.
import type { Tags } from '../config/schema.ts';
import { slotMembers } from './upstream.ts';
import { sameRecord } from './failsafe.ts';
import type { FailsafeRecord, LocalPostgres, Lsn, Observation, Outcome, PublishedStatus } from './types.ts';

export interface Memory {
  /** Consecutive failed attempts to start PostgreSQL (decide: release the key, or rewind). */
  startFailures: number;
  /** Rewinds since this member last streamed from a leader (decide: re-clone at MAX_REWINDS_WITHOUT_STREAMING). */
  rewindsWithoutStreaming: number;
  /** The last rewind left unusable data: pg_rewind failed, or the rewound data did not start (decide: re-clone). */
  rewindUnusable: boolean;
  /** Monotonic ms since when a standby following a leader has not been streaming; null if streaming. */
  notStreamingSince: number | null;
  /**
   * Standby: the highest timeline its WAL receiver streamed since PostgreSQL started. A standby's
   * timeline only grows: once its WAL receiver is gone (the primary died), SQL only shows the
   * last restartpoint's timeline, which may be older (see perceive()).
   */
  streamedTimeline: number | null;
  /** Leader, or a standby others cascade from: when each member it keeps a slot for was last seen, for member_slots_ttl (monotonic ms, by member name). */
  slotsSeen: Record<string, number>;
  /**
   * Primary: its flushed WAL position read just after pgha last changed synchronous_standby_names
   * (null: not changed since the agent started). Every commit acknowledged under an earlier
   * setting lies at or before it.
   */
  syncChangedAt: Lsn | null;
  /** What this leader last wrote to /status (written again only when it changes). */
  published: PublishedStatus | null;
  /** Monotonic ms until which a pre_promote veto keeps this member nofailover (out of the race). */
  vetoedUntil: number | null;
  /** The last renewal failed on an unreachable etcd: the next loop asks the failsafe members first. */
  askMembersFirst: boolean;
  /**
   * /failsafe records this leader tried to write that may still land in etcd: a write abandoned
   * on a slow etcd can arrive later, and a member it lists may then race for the key unless the
   * leader asked it too (src/ha/failsafe.ts failsafeToAsk). Kept while the revision each write was
   * conditional on is still the one last read: once /failsafe moved on, the write landed (and the
   * read shows it) or can never land.
   */
  failsafeWrites: FailsafeWrite[];
}

export interface FailsafeWrite { record: FailsafeRecord; expected: string }

/** Rewinds after which a standby that has not streamed since is cloned afresh instead. */
export const MAX_REWINDS_WITHOUT_STREAMING = 3;

export const initialMemory: Memory = {
  startFailures: 0, rewindsWithoutStreaming: 0, rewindUnusable: false, notStreamingSince: null, streamedTimeline: null,
  slotsSeen: {}, syncChangedAt: null, published: null, vetoedUntil: null, askMembersFirst: false, failsafeWrites: [],
};

/** Since when this member, a running standby with a leader to follow, has not streamed (null: it streams, or follows nobody). */
export function notStreamingSince(o: Observation): number | null {
  const l = o.local;
  const followsLeader = l.running && l.role === 'standby' && o.cluster?.leader != null;
  if (!followsLeader || l.streaming) return null;
  return o.memory.notStreamingSince ?? o.now;
}

/** Rewinds without streaming as of this observation (streaming now resets the count). */
export function rewindsWithoutStreaming(o: Observation): number {
  return o.local.streaming ? 0 : o.memory.rewindsWithoutStreaming;
}

/** A pre_promote veto is recent: this member neither races nor counts as a candidate. */
export function vetoed(m: Memory, now: number): boolean {
  return m.vetoedUntil !== null && now < m.vetoedUntil;
}

/** Our tags as published and decided with: nofailover for one ttl after a pre_promote veto. */
export function tagsFor(tags: Tags, m: Memory, now: number): Tags {
  return vetoed(m, now) ? { ...tags, nofailover: true } : tags;
}

/**
 * The local PostgreSQL as the decision sees it: the raw observation plus what memory adds. A
 * standby reports the highest timeline it streamed (its timeline only grows; `replayTimeline`
 * keeps what PostgreSQL reports now); a primary, the WAL position read when its synchronous
 * setting last changed.
 */
export function perceive(raw: LocalPostgres, m: Memory): LocalPostgres {
  const streamed = raw.role === 'standby' && m.streamedTimeline !== null ? Math.max(raw.replayTimeline ?? 0, m.streamedTimeline) : null;
  return { ...raw, timeline: streamed ?? raw.timeline, syncChangedAt: m.syncChangedAt };
}

/** Members (other than us) whose slots a leader keeps: those seen now, and those seen within ttlMs. */
export function retainSlots(seen: Record<string, number>, current: string[], now: number, ttlMs: number): Record<string, number> {
  const next: Record<string, number> = {};
  for (const name of current) next[name] = now;
  for (const [name, at] of Object.entries(seen)) if (!(name in next) && now - at <= ttlMs) next[name] = at;
  return next;
}

/**
 * The other members this one keeps a physical slot for, in the view's order: on the leader every
 * member but those cascading from a standby or tagged nostream; on a standby its downstreams
 * (replicatefrom: src/ha/upstream.ts).
 */
export function otherMembers(o: Observation): string[] {
  return slotMembers(o.self.name, o.cluster);
}

/** The Memory of the next loop: this one's observation, then the outcomes of its steps in order. */
export function remember(m: Memory, o: Observation, outcomes: Outcome[]): Memory {
  const l = o.local;
  const next: Memory = {
    ...m,
    rewindsWithoutStreaming: rewindsWithoutStreaming(o),
    notStreamingSince: notStreamingSince(o),
    streamedTimeline: !l.running || l.role === 'primary' ? null
      : l.role === 'standby' && l.streaming && l.timeline !== null ? Math.max(l.timeline, m.streamedTimeline ?? 0) : m.streamedTimeline,
    askMembersFirst: false,
    failsafeWrites: o.cluster === null ? m.failsafeWrites : m.failsafeWrites.filter((w) => w.expected === o.cluster?.revisions.failsafe),
  };
  let rewound = false;
  for (const r of outcomes) {
    const a = r.action;
    switch (a.kind) {
      case 'start':
        next.startFailures = r.ok ? 0 : next.startFailures + 1;
        // A rewound directory whose minimum recovery point lies on a timeline the leader's
        // history does not contain does not start (chaos seed 2): the next loop clones afresh.
        if (r.ok) next.rewindUnusable = false;
        else if (rewound) next.rewindUnusable = true;
        break;
      case 'rewind':
        next.rewindsWithoutStreaming += 1;
        rewound = r.ok;
        // The leader could not be reached: keep the data and try again, rather than wipe it and then fail to clone.
        if (!r.ok && !r.retryable) next.rewindUnusable = true;
        break;
      case 'clone': case 'reclone': // fresh data: whatever the last rewind left is gone
        if (r.ok) next.rewindUnusable = false;
        break;
      case 'renew':
        if (!r.ok) next.askMembersFirst = r.retryable;
        break;
      case 'promote':
        if (!r.ok && r.vetoedAt !== undefined) next.vetoedUntil = r.vetoedAt + (o.cluster?.config ?? o.fallbackConfig).ttl * 1000;
        break;
      case 'ensure_slots':
        // Tried, whatever came of it: the members seen now are remembered.
        next.slotsSeen = retainSlots(m.slotsSeen, otherMembers(o), o.now, (o.cluster?.config ?? o.fallbackConfig).member_slots_ttl * 1000);
        break;
      case 'publish_leader_lsn':
        if (r.ok && r.published !== undefined) next.published = r.published;
        break;
      case 'set_sync_names':
        if (r.ok && r.syncChangedAt !== undefined) next.syncChangedAt = r.syncChangedAt;
        break;
      case 'write_failsafe':
        // Done, failed or abandoned: it may be in etcd now or later (see failsafeWrites).
        // The same record at the same revision once only: a slow etcd can fail this write every loop.
        if (a.record !== null && !next.failsafeWrites.some((w) => w.expected === a.expected && sameRecord(w.record, a.record))) {
          next.failsafeWrites = [...next.failsafeWrites, { record: a.record, expected: a.expected }];
        }
        break;
      default:
        break;
    }
  }
  return next;
}
