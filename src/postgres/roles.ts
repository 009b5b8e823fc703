// Roles created at bootstrap and the leader's replication slots. Statements are built server-side
// with format(%I, %L) so names and passwords are quoted by PostgreSQL itself; none is logged.
import type { NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { Probe } from './probe.ts';

/** Role options bootstrap.users may ask for. */
export const ALLOWED_ROLE_OPTIONS = new Set(['SUPERUSER', 'CREATEDB', 'CREATEROLE', 'INHERIT', 'NOINHERIT', 'LOGIN', 'NOLOGIN', 'REPLICATION', 'BYPASSRLS']);

async function exec(probe: Probe, template: string, ...args: string[]): Promise<void> {
  const [row] = await probe.query<{ sql: string }>(`select format(${['$1::text', ...args.map((_, i) => `$${i + 2}::text`)].join(', ')}) as sql`, [template, ...args]);
  if (row === undefined) throw new PgHaError('PGHA_PG_QUERY', 'format() returned nothing');
  await probe.query(row.sql);
}

export async function createRoles(probe: Probe, c: NodeConfig): Promise<void> {
  const a = c.postgresql.authentication;
  await probe.query("set password_encryption = 'scram-sha-256'");
  await exec(probe, 'alter role %I with password %L', a.superuser.username, a.superuser.password);
  await exec(probe, 'create role %I with login replication password %L', a.replication.username, a.replication.password);
  if (a.rewind !== undefined && a.rewind.username !== a.superuser.username) {
    await exec(probe, 'create role %I with login password %L', a.rewind.username, a.rewind.password);
    for (const fn of ['pg_ls_dir(text, boolean, boolean)', 'pg_stat_file(text, boolean)', 'pg_read_binary_file(text)', 'pg_read_binary_file(text, bigint, bigint, boolean)']) {
      await exec(probe, `grant execute on function pg_catalog.${fn} to %I`, a.rewind.username);
    }
  }
  for (const [name, u] of Object.entries(c.bootstrap.users)) {
    const opts = u.options.map((o) => o.toUpperCase());
    const bad = opts.filter((o) => !ALLOWED_ROLE_OPTIONS.has(o));
    if (bad.length > 0) throw new PgHaError('PGHA_CONFIG_INVALID', `bootstrap.users.${name}.options: not allowed: ${bad.join(', ')}`);
    await exec(probe, `create role %I with login ${opts.join(' ')} password %L`, name, u.password);
  }
}

/** Create missing physical slots; with dropAbsent, drop inactive physical slots not listed. */
export async function ensureSlots(probe: Probe, names: string[], dropAbsent: boolean): Promise<void> {
  const rows = await probe.query<{ slot_name: string; active: boolean }>("select slot_name, active from pg_replication_slots where slot_type = 'physical'");
  const have = new Set(rows.map((r) => r.slot_name));
  for (const n of names) if (!have.has(n)) await probe.query('select pg_create_physical_replication_slot($1)', [n]);
  if (!dropAbsent) return;
  const want = new Set(names);
  for (const r of rows) if (!want.has(r.slot_name) && !r.active) await probe.query('select pg_drop_replication_slot($1)', [r.slot_name]);
}
