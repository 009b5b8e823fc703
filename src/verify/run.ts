// pghactl verify, one table at a time against one other side (a physical standby or a logical
// subscriber): chunk by primary-key range, compare checksums, and go down to the rows of a chunk
// that differs, reading the leader before and after the other side (src/verify/compare.ts).
import type pg from 'pg';
import { PgHaError } from '../errors.ts';
import { classifyLogical, classifyPhysical, differingKeys, fullXid, parseSnapshot, rateDelay, rowDiff, sameDiff, toRows, type RawRow, type RowDiff, type Rows, type Snapshot, type XidFate } from './compare.ts';
import { checksumSql, nextBoundSql, qualified, rowsSql, type Bounds, type TableInfo } from './sql.ts';

export interface Side {
  /** Member name, or "subscriber". */
  name: string;
  kind: 'physical' | 'logical';
  client: pg.Client;
  /** Resolve once this side has applied the leader's WAL up to `lsn`; throw when it cannot. */
  waitFor(lsn: string): Promise<void>;
}

export interface VerifyOptions {
  chunkRows: number;
  /** Rows (or chunks) per second read from the leader; 0: no limit. */
  rate: number;
  rateUnit: 'rows' | 'chunks';
  /** Row-level reads of a differing chunk before it is called unsettled. */
  attempts: number;
  /** First pause between row-level attempts (doubles each time), ms. */
  backoffMs: number;
  /** Largest table without a primary key whose rows are compared one by one (bytes). */
  maxNoPkBytes: number;
  /** Called after each chunk: rows and bytes it covered. */
  onChunk?(rows: number, bytes: number): void;
}

export type ChunkStatus = 'same' | 'different' | 'unsettled' | 'error';
export interface ChunkResult { bounds: Bounds; status: ChunkStatus; rows: RowDiff[]; message?: string }
export interface TableResult {
  table: string;
  noPrimaryKey: boolean;
  rows: number;
  bytes: number;
  chunks: number;
  /** Chunks that were not `same`, with their rows. */
  problems: ChunkResult[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The leader's WAL insert position, read right after a statement: every commit it saw lies before it. */
async function insertLsn(leader: pg.Client): Promise<string> {
  return String((await leader.query('select pg_current_wal_insert_lsn()::text as l')).rows[0].l);
}

async function readRows(c: pg.Client, t: TableInfo, b: Bounds, physical: boolean, snap: boolean): Promise<{ snap: string; rows: Rows }> {
  const q = rowsSql(t, b, physical, snap);
  const r = (await c.query(q.sql, q.params)).rows[0] as { snap: string; rows: RawRow[] };
  return { snap: r.snap, rows: toRows(r.rows) };
}

/** The leader's view of each xid (after the other side was read), relative to snapshot s1. */
async function xidFates(leader: pg.Client, s1: Snapshot, xids: string[]): Promise<(x: string) => XidFate> {
  const now = parseSnapshot(String((await leader.query('select pg_current_snapshot()::text as s')).rows[0].s));
  const full = new Map<string, bigint | null>(xids.map((x) => [x, fullXid(x, now.xmax)]));
  const ask = [...new Set([...full.values()].filter((x): x is bigint => x !== null && x < now.xmax).map(String))];
  const status = new Map<string, string | null>();
  if (ask.length > 0) {
    const r = await leader.query('select x::text as x, pg_xact_status(x::xid8) as s from unnest($1::text[]) x', [ask]);
    for (const row of r.rows as Array<{ x: string; s: string | null }>) status.set(row.x, row.s);
  }
  return (x) => {
    const f = full.get(x);
    if (f === undefined) return 'recent'; // not asked: never assume
    if (f === null) return 'old-committed';
    if (f >= now.xmax) return 'future';
    const s = status.get(String(f));
    if (s === 'aborted') return 'aborted';
    // null: older than the commit log kept, so long finished (committed or frozen).
    if (s === null || (s === 'committed' && f < s1.xmin)) return 'old-committed';
    return 'recent';
  };
}

/** Checksums first; row by row only when they differ. */
async function checkChunk(leader: pg.Client, side: Side, t: TableInfo, b: Bounds, o: VerifyOptions): Promise<ChunkResult & { n: number; bytes: number }> {
  const physical = side.kind === 'physical';
  const q = checksumSql(t, b, physical);
  const l = (await leader.query(q.sql, q.params)).rows[0] as { n: number; h: string; bytes: number };
  await side.waitFor(await insertLsn(leader));
  const s = (await side.client.query(q.sql, q.params)).rows[0] as { n: number; h: string };
  const base = { bounds: b, n: l.n, bytes: l.bytes };
  if (l.n === s.n && l.h === s.h) return { ...base, status: 'same', rows: [] };
  if (t.pk.length === 0 && t.bytes > o.maxNoPkBytes) {
    return { ...base, status: 'unsettled', rows: [], message: `checksums differ; too large (${t.bytes} bytes) to compare row by row without a primary key` };
  }
  let prev: RowDiff[] = [];
  let last: RowDiff[] = [];
  for (let attempt = 0; attempt < o.attempts; attempt++) {
    if (attempt > 0) await sleep(o.backoffMs * 2 ** (attempt - 1));
    const l1 = await readRows(leader, t, b, physical, true);
    await side.waitFor(await insertLsn(leader));
    const sr = await readRows(side.client, t, b, physical, false);
    const keys = differingKeys(l1.rows, sr.rows, physical);
    if (keys.length === 0) return { ...base, status: 'same', rows: [] };
    const l2 = await readRows(leader, t, b, physical, false);
    if (physical) {
      const xids = keys.flatMap((k) => [sr.rows.get(k)?.xmin, ...(l2.rows.get(k)?.xmaxes ?? [])]).filter((x): x is string => x !== undefined && x !== '0');
      const fate = await xidFates(leader, parseSnapshot(l1.snap), xids);
      const proven = keys.filter((k) => classifyPhysical(l1.rows.get(k), sr.rows.get(k), l2.rows.get(k), fate) === 'proven');
      last = proven.map((k) => rowDiff(k, l1.rows.get(k), sr.rows.get(k)));
      if (proven.length === keys.length) return { ...base, status: 'different', rows: last };
    } else {
      const cands = keys.filter((k) => classifyLogical(l1.rows.get(k), l2.rows.get(k)) === 'proven').map((k) => rowDiff(k, l1.rows.get(k), sr.rows.get(k)));
      last = cands.filter((d) => prev.some((p) => sameDiff(p, d)));
      if (last.length === keys.length) return { ...base, status: 'different', rows: last };
      prev = cands;
    }
  }
  if (last.length > 0) return { ...base, status: 'different', rows: last, message: 'some other rows kept changing while they were compared' };
  return { ...base, status: 'unsettled', rows: [], message: `rows kept changing during ${o.attempts} comparisons` };
}

/** Compare one table; a failing chunk is recorded as `error` and the next one goes on. */
export async function verifyTable(leader: pg.Client, side: Side, t: TableInfo, o: VerifyOptions, clock: { start: number; units: number }): Promise<TableResult> {
  const res: TableResult = { table: `${t.schema}.${t.name}`, noPrimaryKey: t.pk.length === 0, rows: 0, bytes: 0, chunks: 0, problems: [] };
  let lo: string[] | null = null;
  for (;;) {
    let hi: string[] | null = null;
    if (t.pk.length > 0) {
      const nb = nextBoundSql(t, lo, o.chunkRows);
      const r = await leader.query(nb.sql, nb.params);
      hi = r.rows.length === 0 ? null : (r.rows[0].k as string[]);
    }
    const b: Bounds = { lo, hi };
    let c: ChunkResult & { n: number; bytes: number };
    try {
      c = await checkChunk(leader, side, t, b, o);
    } catch (err) {
      if (err instanceof PgHaError && err.code === 'PGHA_VERIFY_ABORTED') throw err;
      c = { bounds: b, status: 'error', rows: [], n: 0, bytes: 0, message: `${qualified(t)}: ${(err as Error).message}` };
    }
    res.chunks += 1;
    res.rows += c.n;
    res.bytes += c.bytes;
    if (c.status !== 'same') res.problems.push({ bounds: c.bounds, status: c.status, rows: c.rows, ...(c.message ? { message: c.message } : {}) });
    o.onChunk?.(c.n, c.bytes);
    clock.units += o.rateUnit === 'rows' ? c.n : 1;
    const wait = rateDelay(clock.units, o.rate, performance.now() - clock.start);
    if (wait > 0) await sleep(wait);
    if (hi === null) return res;
    lo = hi;
  }
}
