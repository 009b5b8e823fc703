// The SQL of pghactl verify: which tables, their key columns, chunk bounds, and the per-chunk
// queries. Identifiers are always quoted here (quoteIdent); values always travel as parameters
// cast to the key column's type, never spliced into the text.
import type pg from 'pg';

export interface Column { name: string; type: string; generated: boolean }
export interface TableInfo {
  schema: string;
  name: string;
  /** Primary-key columns in index order; empty: no primary key (one whole-table chunk). */
  pk: Column[];
  /** Every column in attnum order (the row text is built from these names on both sides). */
  columns: Column[];
  /** pg_class.reltuples (an estimate, for the progress bar); 0 when never analysed. */
  estRows: number;
  bytes: number;
}

export const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;
export const qualified = (t: Pick<TableInfo, 'schema' | 'name'>): string => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;

/**
 * Session settings that make a row's text the same on both sides whatever the servers'
 * defaults (time zone, float digits, bytea format), plus the bounds on our own cost.
 */
export function sessionSql(o: { statementTimeoutMs: number; lockTimeoutMs: number }): string {
  return [
    "SET application_name = 'pghactl verify'", "SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'", 'SET extra_float_digits = 3', "SET bytea_output = 'hex'",
    `SET statement_timeout = ${Math.round(o.statementTimeoutMs)}`, `SET lock_timeout = ${Math.round(o.lockTimeoutMs)}`,
    // Every statement is its own short transaction; this only guards against a bug holding one open.
    "SET idle_in_transaction_session_timeout = '60s'",
  ].join('; ');
}

/** Replicated tables (relkind r, permanent) outside the system schemas, with key and columns. */
export const TABLES_SQL = `
select n.nspname as schema, c.relname as name, greatest(c.reltuples, 0)::float8 as est_rows,
       pg_total_relation_size(c.oid)::float8 as bytes,
       coalesce((select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'generated', a.attgenerated <> '') order by k.ord)
                 from pg_index i cross join lateral unnest(i.indkey) with ordinality k(attnum, ord)
                 join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                 where i.indrelid = c.oid and i.indisprimary), '[]') as pk,
       coalesce((select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'generated', a.attgenerated <> '') order by a.attnum)
                 from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as columns
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and c.relpersistence = 'p'
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
order by 1, 2`;

export async function listTables(c: pg.Client): Promise<TableInfo[]> {
  const r = await c.query(TABLES_SQL);
  return r.rows.map((x: Record<string, unknown>) => ({
    schema: String(x.schema), name: String(x.name), estRows: Number(x.est_rows), bytes: Number(x.bytes),
    pk: x.pk as Column[], columns: x.columns as Column[],
  }));
}

/** Key bounds of a chunk: rows with lo < key <= hi; null means unbounded on that side. */
export interface Bounds { lo: string[] | null; hi: string[] | null }

const pkList = (t: TableInfo) => t.pk.map((c) => `t.${quoteIdent(c.name)}`).join(', ');
const castParams = (t: TableInfo, first: number) => t.pk.map((c, i) => `$${first + i}::${c.type}`).join(', ');

/** WHERE clause and parameters of a chunk (the whole table without a primary key). */
export function chunkWhere(t: TableInfo, b: Bounds): { sql: string; params: string[] } {
  if (t.pk.length === 0) return { sql: 'true', params: [] };
  const parts: string[] = [];
  const params: string[] = [];
  if (b.lo !== null) { parts.push(`(${pkList(t)}) > (${castParams(t, 1)})`); params.push(...b.lo); }
  if (b.hi !== null) { parts.push(`(${pkList(t)}) <= (${castParams(t, params.length + 1)})`); params.push(...b.hi); }
  return { sql: parts.length === 0 ? 'true' : parts.join(' and '), params };
}

/** The upper bound of the chunk after `lo`: the key `rows` rows further, or null (the last chunk). */
export function nextBoundSql(t: TableInfo, lo: string[] | null, rows: number): { sql: string; params: string[] } {
  const w = chunkWhere(t, { lo, hi: null });
  const keyText = t.pk.map((c) => `t.${quoteIdent(c.name)}::text`).join(', ');
  return { sql: `select array[${keyText}] as k from ${qualified(t)} t where ${w.sql} order by ${pkList(t)} limit 1 offset ${Math.max(0, Math.floor(rows) - 1)}`, params: w.params };
}

/**
 * A row's text, the same on both sides: the columns by name (a subscriber may order them
 * differently). `physical`: the tuple's xmin goes with it (a physical standby has the very same
 * tuples, so a row rewritten with the same values still differs from the old version).
 */
export function rowText(t: TableInfo): string {
  return t.columns.length === 0 ? "''" : `row(${t.columns.map((c) => `t.${quoteIdent(c.name)}`).join(', ')})::text`;
}

/** Identity of a row within its table: the key (PK tables) or the row's hash (+ xmin on a physical standby). */
function keyExpr(t: TableInfo, physical: boolean): string {
  if (t.pk.length > 0) return `json_build_array(${pkList(t)})::text`;
  return physical ? `md5(${rowText(t)}) || ':' || t.xmin::text` : `md5(${rowText(t)})`;
}

const orderBy = (t: TableInfo) => (t.pk.length > 0 ? pkList(t) : `md5(${rowText(t)}), t.xmin::text`);

/** One row: count, checksum of the chunk (rows hashed in key order), bytes. */
export function checksumSql(t: TableInfo, b: Bounds, physical: boolean): { sql: string; params: string[] } {
  const w = chunkWhere(t, b);
  const item = physical ? `md5(${rowText(t)}) || ':' || t.xmin::text` : `md5(${rowText(t)})`;
  return {
    sql: `select count(*)::float8 as n, coalesce(md5(string_agg(${item}, ',' order by ${orderBy(t)})), '') as h, coalesce(sum(pg_column_size(t.*)), 0)::float8 as bytes from ${qualified(t)} t where ${w.sql}`,
    params: w.params,
  };
}

/**
 * One row: the statement's snapshot and every row of the chunk as [key, hash, xmin, xmax, text].
 * Both in one statement, so the snapshot is the one the rows were read with.
 */
export function rowsSql(t: TableInfo, b: Bounds, physical: boolean, withSnapshot: boolean): { sql: string; params: string[] } {
  const w = chunkWhere(t, b);
  const snap = withSnapshot ? 'pg_current_snapshot()::text' : "''";
  return {
    sql: `select ${snap} as snap, coalesce(json_agg(json_build_array(${keyExpr(t, physical)}, md5(${rowText(t)}), t.xmin::text, t.xmax::text, ${rowText(t)}) order by ${orderBy(t)}), '[]') as rows from ${qualified(t)} t where ${w.sql}`,
    params: w.params,
  };
}
