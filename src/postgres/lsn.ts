// pg_lsn text ("16/B374D848") <-> byte position, and WAL file names. Pure.
// A position is a JS number: exact up to 2^53 bytes (8 PiB of WAL), far beyond any real cluster;
// larger positions are refused rather than rounded.

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const TWO_32 = 2 ** 32;

/** "X/Y" -> bytes. Throws on anything that is not a pg_lsn or does not fit exactly. */
export function parseLsn(text: string): number {
  const m = LSN_RE.exec(text.trim());
  if (m === null) throw new Error(`not a pg_lsn: ${JSON.stringify(text)}`);
  const pos = parseInt(m[1] ?? '0', 16) * TWO_32 + parseInt(m[2] ?? '0', 16);
  if (!Number.isSafeInteger(pos)) throw new RangeError(`pg_lsn beyond 2^53 bytes: ${text}`);
  return pos;
}

/** bytes -> "X/Y", upper-case hex without leading zeros, as PostgreSQL prints it. */
export function formatLsn(pos: number): string {
  if (!Number.isSafeInteger(pos) || pos < 0) throw new RangeError(`not a WAL position: ${pos}`);
  const hi = Math.floor(pos / TWO_32);
  const lo = pos - hi * TWO_32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** a - b in bytes (positive when `a` is ahead), like `a::pg_lsn - b::pg_lsn`. */
export function lsnDiff(a: string | number, b: string | number): number {
  const pa = typeof a === 'number' ? a : parseLsn(a);
  const pb = typeof b === 'number' ? b : parseLsn(b);
  return pa - pb;
}

/** Timeline of a WAL segment file name ("00000002000000000000000A" -> 2). */
export function timelineOfWalFile(name: string): number {
  if (!/^[0-9A-Fa-f]{24}$/.test(name)) throw new Error(`not a WAL file name: ${JSON.stringify(name)}`);
  return parseInt(name.slice(0, 8), 16);
}

/**
 * SQL for a primary's current timeline: the first 8 hex digits of its current WAL file's name.
 * (pg_control_checkpoint() still shows the old timeline until the first checkpoint after a promotion.)
 */
export const CURRENT_TIMELINE_SQL = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int";
