// Repair of a logical subscriber: the differing rows of each chunk are copied from the publisher
// (the leader) in one transaction per chunk. Rows are matched by key (or, without a primary key,
// by the hash of their content): the subscriber's are deleted, the publisher's inserted.
import type pg from 'pg';
import type { ChunkResult } from './run.ts';
import { chunkWhere, qualified, quoteIdent, rowText, type TableInfo } from './sql.ts';

/** The key expression of a row, as the compare read it (logical: no xmin). */
function matchExpr(t: TableInfo): string {
  return t.pk.length > 0 ? `json_build_array(${t.pk.map((c) => `t.${quoteIdent(c.name)}`).join(', ')})::text` : `md5(${rowText(t)})`;
}

/** Copy one chunk's differing rows; returns how many rows the subscriber received. */
export async function repairChunk(publisher: pg.Client, subscriber: pg.Client, t: TableInfo, c: ChunkResult): Promise<{ deleted: number; inserted: number }> {
  const keys = c.rows.map((r) => r.key);
  if (keys.length === 0) return { deleted: 0, inserted: 0 };
  const w = chunkWhere(t, c.bounds);
  const keyParam = `$${w.params.length + 1}::text[]`;
  const src = await publisher.query(`select coalesce(json_agg(row_to_json(t)), '[]')::text as j from ${qualified(t)} t where ${w.sql} and ${matchExpr(t)} = any(${keyParam})`, [...w.params, keys]);
  const cols = t.columns.filter((x) => !x.generated).map((x) => quoteIdent(x.name)).join(', ');
  await subscriber.query('BEGIN');
  try {
    // As the apply worker does: no user triggers, no foreign-key checks on these copies.
    await subscriber.query('SET LOCAL session_replication_role = replica');
    const d = await subscriber.query(`delete from ${qualified(t)} t where ${w.sql} and ${matchExpr(t)} = any(${keyParam})`, [...w.params, keys]);
    const i = await subscriber.query(`insert into ${qualified(t)} (${cols}) select ${cols} from json_populate_recordset(null::${qualified(t)}, $1::json)`, [src.rows[0].j]);
    await subscriber.query('COMMIT');
    return { deleted: d.rowCount ?? 0, inserted: i.rowCount ?? 0 };
  } catch (err) {
    await subscriber.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
