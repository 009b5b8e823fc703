// DCS failsafe mode (Patroni's `failsafe_mode`), the pure part. While etcd is healthy the leader
// keeps /failsafe naming every member and its REST API. When etcd as a whole is unreachable, the
// leader POSTs /failsafe to each of them; if every one answers 200, it may stay primary for one
// more TTL from the send time of that round (minus fence_margin). A member that answers 200
// promises not to race for the key or promote for one TTL after it received the call, so the
// leader's extended deadline always ends before any of them may act. Safety argument and limits:
// docs/data-safety.md.
import type { DynamicConfig } from '../config/schema.ts';
import { patroniReleasedLsn } from './patroni-handover.ts';
import type { FailsafeWrite } from './memory.ts';
import type { ClusterView, FailoverRequest, FailsafeHold, FailsafeRecord, Observation } from './types.ts';

/** The record the leader should keep in etcd: every published member and its API URL. */
export function failsafeRecordFor(self: string, cluster: ClusterView): FailsafeRecord {
  const members: Record<string, string> = {};
  for (const m of [...cluster.members].sort((a, b) => (a.name < b.name ? -1 : 1))) members[m.name] = m.apiUrl;
  return { leader: self, members };
}

export function sameRecord(a: FailsafeRecord | null | undefined, b: FailsafeRecord | null | undefined): boolean {
  if (a == null || b == null) return a == b;
  const ka = Object.keys(a.members).sort();
  const kb = Object.keys(b.members).sort();
  return a.leader === b.leader && ka.join('\n') === kb.join('\n') && ka.every((k) => a.members[k] === b.members[k]);
}

/** A failsafe promise still running at `now`, or null. */
export function liveHold(h: FailsafeHold | null | undefined, now: number): FailsafeHold | null {
  return h != null && now < h.until ? h : null;
}

/** This member accepted a failsafe call less than one TTL ago. */
export function holdActive(o: Observation): FailsafeHold | null {
  return liveHold(o.self.failsafeHold, o.now);
}

/**
 * Why this member may not race for the key or promote because of failsafe mode; null: it may.
 * (1) It accepted a failsafe call less than a TTL ago: that leader may still run as primary.
 * (2) failsafe_mode is on, /failsafe exists and does not list it: the leader never asks it, so
 *     it could be running under failsafe without this member's promise.
 */
export function failsafeBlocksRace(o: Observation, cfg: DynamicConfig, cluster: ClusterView): string | null {
  const hold = holdActive(o);
  if (hold !== null) return `failsafe: we confirmed ${hold.leader} as leader less than a TTL ago: not racing`;
  const rec = cluster.failsafe ?? null;
  if (cfg.failsafe_mode && rec !== null && !(o.self.name in rec.members)) {
    return `failsafe: /failsafe (written by ${rec.leader}) does not list us: not racing`;
  }
  return null;
}

/**
 * Why a member whose agent started less than a ttl ago may not take the key (failsafe_mode on);
 * null: it may. Its promises live in the agent's memory: one it gave just before a restart is
 * forgotten, and the leader it confirmed may still run as primary on the deadline it extended.
 * No promise outlives one ttl after the call, and every call came before this start, so waiting
 * one ttl from the start covers them all (a promise given since then is in holdActive).
 * Not for the named candidate of a handover that the leader `req.leader` performed through etcd
 * (it stopped PostgreSQL, then recorded its last WAL position: pgha's shutdown_lsn, or a Patroni
 * leader's final /status): no other member may take the key while the request stands, and a
 * leader that asked for promises could not reach etcd.
 */
export function startBlocksRace(o: Observation, cfg: DynamicConfig, req: FailoverRequest | null): string | null {
  if (!cfg.failsafe_mode) return null;
  const left = startWaitLeft(o, cfg);
  if (left <= 0) return null;
  if (req !== null && req.candidate === o.self.name && req.leader !== null && (req.shutdownLsn !== null || patroniReleasedLsn(req, o.cluster) !== null)) return null;
  return `started less than a ttl ago (${(left / 1000).toFixed(1)} s to go): a failsafe promise given before the restart may still hold: not taking the key`;
}

/** ms until one ttl has passed since this agent started (<= 0: passed). */
export function startWaitLeft(o: Observation, cfg: DynamicConfig): number {
  return o.self.startedAt + cfg.ttl * 1000 - o.now;
}

/**
 * Whom the leader asks in a round: every member of the /failsafe it last read and of every record
 * it wrote since that may still land (Memory.failsafeWrites). A member asked in vain only costs
 * the extension (the primary fences at its deadline); a member left out that a late write lists
 * may race for the key while the primary runs on its members' promises (chaos seed 3, asynchronous
 * half, fault 34: a write of /failsafe abandoned on a 1 s etcd delay landed, and the member it
 * added promoted beside the primary). null when nothing was read (no round).
 */
export function failsafeToAsk(read: FailsafeRecord | null, writes: readonly FailsafeWrite[]): FailsafeRecord | null {
  if (read === null) return null;
  const members = { ...read.members };
  for (const w of writes) for (const [n, url] of Object.entries(w.record.members)) if (!(n in members)) members[n] = url;
  return { leader: read.leader, members };
}

/**
 * etcd unreachable: did every member the leader asked this loop confirm it, with the round sent
 * and answered while our deadline still held? (Past it, the fence has stopped PostgreSQL.)
 */
export function failsafeConfirmed(o: Observation): boolean {
  const r = o.failsafe ?? null;
  if (r === null || o.self.leaseDeadline === null || o.now >= o.self.leaseDeadline || r.sentAt >= o.self.leaseDeadline) return false;
  return r.asked.every((n) => r.confirmed.includes(n));
}

export interface FailsafeCallInput {
  /** The leader named in the call. */
  caller: string;
  self: string;
  /** failsafe_mode in this member's last known dynamic config. */
  failsafeMode: boolean;
  /** This member runs PostgreSQL as a primary, holds the key, or is acquiring it right now. */
  actsAsLeader: boolean;
  /** Holder of the leader key at this member's last successful etcd read (null: free or never read). */
  lastLeader: string | null;
  hold: FailsafeHold | null;
  now: number;
  /** This member's own ttl (ms): the length of the promise, and the most a caller may ask. */
  ttlMs: number;
  /** The ttl (ms) the caller says it runs with; absent: not said. */
  callerTtlMs?: number | undefined;
  /** The leader named by /failsafe at this member's last successful etcd read (null: none). */
  recordLeader: string | null;
}

export type FailsafeAnswer = { ok: true; hold: FailsafeHold } | { ok: false; reason: string };

/**
 * A member's answer to POST /failsafe from `caller`. It refuses when saying yes could let two
 * primaries run: it is (becoming) a leader itself, etcd last showed someone else holding the key,
 * /failsafe names another leader (or none), the caller asks for longer than our ttl, or it already
 * promised another leader. Saying yes starts (or extends) its hold for our own ttl.
 */
export function answerFailsafeCall(i: FailsafeCallInput): FailsafeAnswer {
  if (!i.failsafeMode) return { ok: false, reason: 'failsafe_mode is off in this member\'s configuration' };
  if (i.caller === i.self) return { ok: false, reason: 'a member does not confirm itself' };
  if (i.actsAsLeader) return { ok: false, reason: `${i.self} runs as (or is becoming) the leader` };
  if (i.lastLeader !== null && i.lastLeader !== i.caller) return { ok: false, reason: `etcd last showed ${i.lastLeader} holding the leader key` };
  // Only the leader that wrote /failsafe (while it held the key with etcd healthy) may ask: a
  // caller with the REST password alone cannot make standbys stand still.
  if (i.recordLeader !== i.caller) return { ok: false, reason: i.recordLeader === null ? 'etcd showed no /failsafe record' : `/failsafe in etcd names ${i.recordLeader}, not ${i.caller}` };
  // The promise lasts our own ttl, never longer; a caller running with a longer ttl would extend
  // its deadline past our promise, so it is refused rather than confirmed for less.
  if (i.callerTtlMs !== undefined && i.callerTtlMs > i.ttlMs) return { ok: false, reason: `asked for a ${i.callerTtlMs / 1000} s promise, longer than this member's ttl (${i.ttlMs / 1000} s)` };
  const held = liveHold(i.hold, i.now);
  if (held !== null && held.leader !== i.caller) return { ok: false, reason: `already confirmed ${held.leader} as leader` };
  return { ok: true, hold: { leader: i.caller, until: i.now + i.ttlMs } };
}
