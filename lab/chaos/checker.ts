// The history checker of the fault-injection suite (pure: history in, verdict out).
//
// Inputs: every client operation (Op), the ids present on the final primary after healing, and
// the final primary's timeline history (which timeline ended at which WAL position).
// Rules, each reported separately:
// - lost: an acknowledged id missing on the final primary.
// - divergent: an acknowledged write on a timeline the final history abandoned, at or after the
//   point where it was abandoned (it sat on a branch that no longer exists).
// - split brain: two acknowledged writes A and B with A on an older timeline than B, where the
//   server executed A after it executed B (server clocks: every process here shares one machine
//   clock). Then two members ran as writable primaries at the same time. Using the server's time
//   of execution, not the client's time of completion, keeps a reply delayed by a frozen host from
//   counting as a second primary.
// - late acknowledgement (informational): an older-timeline write whose reply reached the client
//   after a newer timeline had accepted writes; harmless when the write is not lost.

import type { Op } from './workload.ts';

export interface TimelineFork { tli: number; endLsn: string }

export interface SplitBrainWindow { olderTli: number; olderServer: string; newerTli: number; startMs: number; endMs: number; writes: number }

export interface Verdict {
  acked: number;
  failed: number;
  unknown: number;
  lost: Op[];
  divergent: Op[];
  splitBrain: SplitBrainWindow[];
  lateAcks: number;
  /** Timelines seen in acknowledged writes. */
  timelines: number[];
  /** Acknowledged writes per client (the last client is the libpq multi-host one). */
  ackedByClient: Record<number, number>;
}

export function lsnToBigInt(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (m === null) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** Parse a PostgreSQL timeline history file ("parentTLI<TAB>switchpoint<TAB>reason" lines). */
export function parseHistory(text: string): TimelineFork[] {
  const out: TimelineFork[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m !== null) out.push({ tli: Number(m[1]), endLsn: m[2]! });
  }
  return out;
}

export function check(ops: readonly Op[], finalIds: ReadonlySet<number>, forks: readonly TimelineFork[], finalTli: number): Verdict {
  const acked = ops.filter((o) => o.outcome === 'ok');
  const ended = new Map(forks.map((f) => [f.tli, lsnToBigInt(f.endLsn)]));
  const inLineage = (tli: number) => tli === finalTli || ended.has(tli);
  const divergent = acked.filter((o) => {
    if (o.tli === undefined || o.lsn === undefined) return false;
    if (!inLineage(o.tli)) return true;
    const end = ended.get(o.tli);
    return end !== undefined && lsnToBigInt(o.lsn) >= end;
  });
  // Earliest execution on each timeline: a write on an older timeline executed after that is split brain.
  const firstOn = new Map<number, number>();
  for (const o of acked) {
    if (o.tli === undefined || o.serverMs === undefined) continue;
    firstOn.set(o.tli, Math.min(firstOn.get(o.tli) ?? Infinity, o.serverMs));
  }
  const tlis = [...firstOn.keys()].sort((a, b) => a - b);
  const windows = new Map<string, SplitBrainWindow>();
  let lateAcks = 0;
  for (const o of acked) {
    if (o.tli === undefined || o.serverMs === undefined) continue;
    const newer = tlis.filter((t) => t > o.tli!);
    const overlapping = newer.find((t) => (firstOn.get(t) ?? Infinity) < o.serverMs!);
    if (newer.some((t) => (firstOn.get(t) ?? Infinity) < o.completeMs)) lateAcks++;
    if (overlapping === undefined) continue;
    const key = `${o.tli}/${o.server}/${overlapping}`;
    const w = windows.get(key) ?? { olderTli: o.tli, olderServer: o.server ?? '?', newerTli: overlapping, startMs: firstOn.get(overlapping)!, endMs: o.serverMs, writes: 0 };
    w.endMs = Math.max(w.endMs, o.serverMs);
    w.writes++;
    windows.set(key, w);
  }
  return {
    acked: acked.length,
    failed: ops.filter((o) => o.outcome === 'fail').length,
    unknown: ops.filter((o) => o.outcome === 'unknown').length,
    lost: acked.filter((o) => !finalIds.has(o.id)),
    divergent,
    splitBrain: [...windows.values()],
    lateAcks,
    timelines: tlis,
    ackedByClient: acked.reduce<Record<number, number>>((m, o) => ({ ...m, [o.client]: (m[o.client] ?? 0) + 1 }), {}),
  };
}

export interface Outage { startMs: number; endMs: number; ms: number }

/**
 * The write outage of an event that started at `atMs`, as the clients saw it: the longest gap
 * between consecutive acknowledged writes (by completion time) from the last one completed before
 * the event up to `untilMs`. Null when no write was acknowledged before or after.
 */
export function outageAround(ops: readonly Op[], atMs: number, untilMs: number): Outage | null {
  let before = -Infinity;
  const after: number[] = [];
  for (const o of ops) {
    if (o.outcome !== 'ok') continue;
    if (o.completeMs <= atMs) before = Math.max(before, o.completeMs);
    else if (o.completeMs <= untilMs) after.push(o.completeMs);
  }
  if (!Number.isFinite(before) || after.length === 0) return null;
  after.sort((a, b) => a - b);
  let best: Outage = { startMs: before, endMs: after[0]!, ms: after[0]! - before };
  let prev = after[0]!;
  for (const t of after.slice(1)) {
    if (t - prev > best.ms) best = { startMs: prev, endMs: t, ms: t - prev };
    prev = t;
  }
  return best;
}
