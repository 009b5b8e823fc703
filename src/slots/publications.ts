// Publications on the leader: read every connectable database's publications, apply the plan
// (src/slots/plan.ts) in the database each belongs to. Each change is one transaction.
import type pg from 'pg';
import { PUBLICATION_MARK, planPublications, quoteIdent, tableSql, type PublicationRow, type PublicationSpec } from './plan.ts';

export type SessionIn = <T>(database: string, fn: (c: pg.Client) => Promise<T>) => Promise<T>;

const PUBLICATIONS_SQL = `select p.pubname::text as name, p.puballtables as all_tables,
  coalesce(obj_description(p.oid, 'pg_publication') = $1, false) as managed,
  coalesce((select array_agg(t.schemaname || '.' || t.tablename order by 1) from pg_publication_tables t where t.pubname = p.pubname), '{}') as tables
  from pg_publication p`;

/** Make the publications of every database match `want`; returns one line per change made. */
export async function reconcilePublications(session: SessionIn, want: PublicationSpec[]): Promise<string[]> {
  const dbs = await session('postgres', async (c) => (await c.query<{ datname: string }>('select datname::text as datname from pg_database where datallowconn and not datistemplate order by 1')).rows.map((r) => r.datname));
  const missing = [...new Set(want.map((w) => w.database))].filter((d) => !dbs.includes(d));
  if (missing.length > 0) throw new Error(`database ${missing.join(', ')} does not exist (logical.publications)`);
  const have: PublicationRow[] = [];
  for (const db of dbs) {
    const rows = await session(db, async (c) => (await c.query<{ name: string; all_tables: boolean; managed: boolean; tables: string[] }>(PUBLICATIONS_SQL, [PUBLICATION_MARK])).rows);
    for (const r of rows) have.push({ name: r.name, database: db, allTables: r.all_tables, managed: r.managed, tables: [...r.tables].sort() });
  }
  const plan = planPublications(have, want);
  const done: string[] = [];
  const inTx = (db: string, statements: string[]) => session(db, async (c) => {
    await c.query('begin');
    try {
      for (const s of statements) await c.query(s);
      await c.query('commit');
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw err;
    }
  });
  const mark = (p: PublicationSpec) => `comment on publication ${quoteIdent(p.name)} is '${PUBLICATION_MARK}'`;
  const create = (p: PublicationSpec) => `create publication ${quoteIdent(p.name)} for ${p.allTables ? 'all tables' : `table ${p.tables.map(tableSql).join(', ')}`}`;
  for (const p of plan.create) { await inTx(p.database, [create(p), mark(p)]); done.push(`created publication ${p.name} in ${p.database}`); }
  for (const p of plan.recreate) { await inTx(p.database, [`drop publication ${quoteIdent(p.name)}`, create(p), mark(p)]); done.push(`re-created publication ${p.name} in ${p.database}`); }
  for (const p of plan.setTables) { await inTx(p.database, [`alter publication ${quoteIdent(p.name)} set table ${p.tables.map(tableSql).join(', ')}`]); done.push(`publication ${p.name} in ${p.database}: tables ${p.tables.join(', ')}`); }
  for (const p of plan.mark) { await inTx(p.database, [mark(p)]); done.push(`publication ${p.name} in ${p.database} is now managed by pgha`); }
  for (const p of plan.drop) { await inTx(p.database, [`drop publication ${quoteIdent(p.name)}`]); done.push(`dropped publication ${p.name} from ${p.database}`); }
  return done;
}
