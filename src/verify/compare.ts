// Pure logic of pghactl verify: rows of one chunk read on the leader before (L1) and after (L2)
// the standby's read (S), and which differences are proven divergence rather than writes that
// landed between the reads. The argument is in docs/consistency.md; each rule below names its case.

/** One row as read: key (PK json, or hash[:xmin] without a primary key), hash, xmin, xmax, text. */
export type RawRow = [string, string, string, string, string];

export interface Entry { count: number; hash: string; xmin: string; xmaxes: string[]; text: string }
export type Rows = Map<string, Entry>;

export function toRows(raw: RawRow[]): Rows {
  const m: Rows = new Map();
  for (const [key, hash, xmin, xmax, text] of raw) {
    const e = m.get(key);
    if (e === undefined) m.set(key, { count: 1, hash, xmin, xmaxes: [xmax], text });
    else { e.count += 1; e.xmaxes.push(xmax); }
  }
  return m;
}

/** Same version of a key on both sides: count, content and (physical) xmin. */
export function sameEntry(a: Entry | undefined, b: Entry | undefined, physical: boolean): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.count === b.count && a.hash === b.hash && (!physical || a.xmin === b.xmin);
}

/** Keys whose entries differ between two reads. */
export function differingKeys(a: Rows, b: Rows, physical: boolean): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => !sameEntry(a.get(k), b.get(k), physical)).sort();
}

/** What the leader says about a transaction id found in a tuple (pg_xact_status, and the snapshot). */
export type XidFate = 'old-committed' | 'aborted' | 'future' | 'recent';

export interface Snapshot { xmin: bigint; xmax: bigint }

/** Parse pg_snapshot text "xmin:xmax:xip,...". */
export function parseSnapshot(text: string): Snapshot {
  const m = /^(\d+):(\d+):/.exec(text);
  if (m === null) throw new Error(`not a pg_snapshot: ${text}`);
  return { xmin: BigInt(m[1]!), xmax: BigInt(m[2]!) };
}

const TWO32 = 1n << 32n;
const TWO31 = 1n << 31n;

/**
 * The 64-bit id of a 32-bit xid, relative to `next` (the leader's next full xid): ids up to 2^31
 * ahead are in the future, the rest in the past (a tuple older than 2^31 xids is frozen, and its
 * xmin reads as 2). null for the permanent ids 0-2 (bootstrap and frozen: committed long ago).
 */
export function fullXid(xid: string, next: bigint): bigint | null {
  const x = BigInt(xid);
  if (x < 3n) return null;
  const diff = (x - (next % TWO32) + TWO32) % TWO32;
  return diff < TWO31 ? next + diff : next + diff - TWO32;
}

export type Verdict = 'proven' | 'in-flux';

/**
 * Physical standby, one differing key. `s1`: the snapshot of L1. `fate(x)`: the leader's view of
 * xid x, asked after S was read.
 * P1. S shows a version whose xmin committed before s1's xmin, was aborted, or does not exist on
 *     the leader yet: a faithful replica that replayed past s1 shows exactly the version L1 shows
 *     (proven), whatever happened after s1.
 * P2. S lacks (some of) a version L1 shows, and L2 shows the very same version whose xmax is
 *     empty, aborted, or committed before s1 (then only a locker: a deleter committed that early
 *     would hide it from L2): it was visible at s1 and still is, so a faithful replica that
 *     replayed to a point between them shows it (proven).
 * Anything else may be a write between the reads (in flux): checked again.
 */
export function classifyPhysical(l1: Entry | undefined, s: Entry | undefined, l2: Entry | undefined, fate: (xid: string) => XidFate): Verdict {
  const sExtra = s !== undefined && (l1 === undefined || s.count > l1.count || s.hash !== l1.hash || s.xmin !== l1.xmin);
  if (sExtra && fate(s.xmin) !== 'recent') return 'proven'; // P1
  const sMissing = l1 !== undefined && (s === undefined || s.count < l1.count || s.hash !== l1.hash || s.xmin !== l1.xmin);
  if (sMissing && l2 !== undefined && sameEntry(l1, l2, true) && l2.xmaxes.every((x) => x === '0' || fate(x) === 'aborted' || fate(x) === 'old-committed')) return 'proven'; // P2
  return 'in-flux';
}

/**
 * Logical subscriber, one differing key (no shared xids): the difference is a candidate when the
 * leader's rows are the same before and after the subscriber's read (L1 = L2 in content). The
 * caller reports it only when the same difference is a candidate in consecutive attempts.
 */
export function classifyLogical(l1: Entry | undefined, l2: Entry | undefined): Verdict {
  return sameEntry(l1, l2, false) ? 'proven' : 'in-flux';
}

/** A differing row as reported: which side has what (text null: absent on that side). */
export interface RowDiff { key: string; leader: string | null; other: string | null; leaderCount: number; otherCount: number }

export function rowDiff(key: string, l: Entry | undefined, o: Entry | undefined): RowDiff {
  return { key, leader: l?.text ?? null, other: o?.text ?? null, leaderCount: l?.count ?? 0, otherCount: o?.count ?? 0 };
}

/** The same difference (same key, same texts and counts) in two attempts. */
export const sameDiff = (a: RowDiff, b: RowDiff): boolean =>
  a.key === b.key && a.leader === b.leader && a.other === b.other && a.leaderCount === b.leaderCount && a.otherCount === b.otherCount;

/** Milliseconds to wait so that `done` units since `startMs` do not exceed `rate` per second (0: no limit). */
export function rateDelay(done: number, rate: number, elapsedMs: number): number {
  if (!(rate > 0)) return 0;
  return Math.max(0, (done / rate) * 1000 - elapsedMs);
}

/** A key's text for people: the PK values of a JSON array, or a row hash without a primary key. */
export function keyLabel(key: string): string {
  if (!key.startsWith('[')) return `row md5 ${key.split(':')[0]}`;
  try {
    const v = JSON.parse(key) as unknown[];
    return v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ');
  } catch {
    return key;
  }
}
