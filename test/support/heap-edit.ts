// Make a stopped physical standby diverge the way a lost write, a bad disk or a replay bug would:
// edit its heap pages in place (its WAL position stays the leader's, so it keeps replicating),
// then let pg_checksums recompute every page checksum. Used by test/integration/verify.test.ts.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lookupOsUser } from '../../src/postgres/instance.ts';

const BLCKSZ = 8192;
const XMIN_COMMITTED = 0x0100;
const XMIN_INVALID = 0x0200;
const XMAX_COMMITTED = 0x0400;
const XMAX_INVALID = 0x0800;

/** "(block,offset)" as PostgreSQL prints a ctid. */
export function parseCtid(ctid: string): { block: number; offset: number } {
  const m = /^\((\d+),(\d+)\)$/.exec(ctid);
  if (m === null) throw new Error(`bad ctid ${ctid}`);
  return { block: Number(m[1]), offset: Number(m[2]) };
}

export type TupleEdit =
  | { kind: 'replace'; from: string; to: string } // a changed row: same-length bytes in the tuple
  | { kind: 'hide' } // a missing row: its inserting transaction reads as aborted
  | { kind: 'revive' }; // an extra row: a deleted tuple's deleter reads as aborted

/** Edit one tuple of `relPath` (pg_relation_filepath, relative to dataDir); first segment only. */
export function editTuple(dataDir: string, relPath: string, ctid: string, edit: TupleEdit): void {
  const file = join(dataDir, relPath);
  const buf = readFileSync(file);
  const { block, offset } = parseCtid(ctid);
  const page = block * BLCKSZ;
  const lp = buf.readUInt32LE(page + 24 + (offset - 1) * 4);
  const lpOff = lp & 0x7fff;
  const lpLen = lp >>> 17;
  if (((lp >>> 15) & 3) !== 1) throw new Error(`ctid ${ctid} is not a normal tuple on the standby page`);
  const t = page + lpOff;
  const mask = buf.readUInt16LE(t + 20);
  if (edit.kind === 'replace') {
    const at = buf.subarray(t, t + lpLen).indexOf(Buffer.from(edit.from));
    if (at < 0 || edit.from.length !== edit.to.length) throw new Error(`${edit.from} not in tuple ${ctid}`);
    Buffer.from(edit.to).copy(buf, t + at);
  } else if (edit.kind === 'hide') {
    buf.writeUInt16LE((mask & ~XMIN_COMMITTED) | XMIN_INVALID, t + 20);
  } else {
    buf.writeUInt16LE((mask & ~XMAX_COMMITTED) | XMAX_INVALID, t + 20);
  }
  writeFileSync(file, buf);
}

/** Recompute every page checksum of a stopped data directory (pg_checksums --disable, --enable). */
export function fixChecksums(dataDir: string): void {
  const u = lookupOsUser('postgres');
  const bin = '/usr/lib/postgresql/15/bin/pg_checksums';
  for (const mode of ['--disable', '--enable']) execFileSync(bin, [mode, '--no-sync', '-D', dataDir], { uid: u.uid, gid: u.gid, stdio: 'pipe' });
}
