// Checks of the logical replication settings before a configuration edit is stored. A slot whose
// plugin or database does not exist would be stored, then fail on the leader every loop; a slot
// named like a member's own slot would be fought over by two owners. So: the name clash is
// checked against the members in etcd (pure), plugin, database and wal_level on the leader's
// PostgreSQL (as the superuser of the node file, the account `pghactl query` uses).
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import type { DynamicConfig, PgCredentials } from '../config/schema.ts';
import { splitHostPort } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { ClusterView } from '../ha/types.ts';
import { logicalSlotSpecs, memberSlotClashes, publicationSpecs } from './plan.ts';
import { leaderMember } from '../ha/view.ts';

/** Checks an edited configuration against the running cluster; throws a PgHaError to refuse. */
export type LogicalCheck = (after: DynamicConfig, view: ClusterView) => Promise<void>;

/** Did the edit touch permanent slots or publications? (Only then is the leader asked.) */
export function logicalChanged(before: DynamicConfig, after: DynamicConfig): boolean {
  return !isDeepStrictEqual(before.permanent_slots, after.permanent_slots) || !isDeepStrictEqual(before.logical, after.logical);
}

/** Refuse a permanent slot named as a member's slot (pure). */
export function checkSlotNames(after: DynamicConfig, members: readonly string[]): void {
  const clashes = memberSlotClashes(after, members);
  if (clashes.length === 0) return;
  throw new PgHaError('PGHA_SLOT_NAME_CLASH', clashes.map((c) => `permanent_slots.${c.slot}: the replication slot of member ${c.member}; choose another name`).join('; '));
}

/** What the leader said (pure input of `logicalProblems`). */
export interface LeaderFacts {
  walLevel: string;
  databases: string[];
  /** Output plugins found as $libdir/<plugin>.so. */
  plugins: Record<string, boolean>;
}

/** The refusal for these facts, or null (pure). */
export function logicalProblems(after: DynamicConfig, facts: LeaderFacts): PgHaError | null {
  const slots = logicalSlotSpecs(after);
  const pubs = publicationSpecs(after);
  if (slots.length === 0 && pubs.length === 0) return null;
  const unknownDb = [...slots.map((s) => [`permanent_slots.${s.name}`, s.database]), ...pubs.map((p) => [`logical.publications.${p.name}`, p.database])]
    .filter(([, db]) => !facts.databases.includes(db!));
  if (unknownDb.length > 0) {
    return new PgHaError('PGHA_LOGICAL_DATABASE_UNKNOWN', unknownDb.map(([k, db]) => `${k}: database ${db} does not exist on the leader (or does not allow connections); create it first`).join('; '));
  }
  const unknownPlugin = slots.filter((s) => facts.plugins[s.plugin] !== true);
  if (unknownPlugin.length > 0) {
    return new PgHaError('PGHA_LOGICAL_PLUGIN_UNKNOWN', unknownPlugin.map((s) => `permanent_slots.${s.name}: output plugin ${s.plugin} is not installed on the leader (no ${s.plugin}.so in its library directory)`).join('; '));
  }
  if (facts.walLevel !== 'logical') {
    return new PgHaError('PGHA_LOGICAL_UNCHECKED', `the leader runs with wal_level ${facts.walLevel}: set postgresql.parameters.wal_level: logical, restart every member (pghactl restart), then add logical slots or publications`);
  }
  return null;
}

/** node-pg TLS options for sslmode (libpq's meaning; prefer/allow: no TLS, as node-pg cannot fall back). */
function tlsOptions(c: PgCredentials): pg.ClientConfig['ssl'] {
  if (c.sslmode === undefined || c.sslmode === 'disable' || c.sslmode === 'allow' || c.sslmode === 'prefer') return false;
  const verify = c.sslmode === 'verify-ca' || c.sslmode === 'verify-full';
  return {
    rejectUnauthorized: verify,
    ...(c.sslrootcert === undefined ? {} : { ca: readFileSync(c.sslrootcert) }),
    ...(c.sslcert === undefined || c.sslkey === undefined ? {} : { cert: readFileSync(c.sslcert), key: readFileSync(c.sslkey) }),
    ...(c.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** Ask the leader's PostgreSQL (from the view) for the facts, as `superuser`. */
export function leaderCheck(superuser: PgCredentials): LogicalCheck {
  return async (after, view) => {
    const leader = leaderMember(view);
    if (leader === undefined) throw new PgHaError('PGHA_LOGICAL_UNCHECKED', 'the cluster has no leader now: logical slots and publications are checked on the leader before they are stored; try again');
    const { host, port } = splitHostPort(leader.conn);
    // 5 s: a healthy leader answers these catalog reads in milliseconds, even across a LAN.
    const c = new pg.Client({ host, port, user: superuser.username, password: superuser.password, database: 'postgres', ssl: tlsOptions(superuser), connectionTimeoutMillis: 5000, query_timeout: 5000, application_name: 'pgha-check' });
    c.on('error', () => undefined);
    let facts: LeaderFacts;
    try {
      await c.connect();
      const s = await c.query<{ wal_level: string; libdir: string | null }>("select current_setting('wal_level') as wal_level, (select setting from pg_config where name = 'PKGLIBDIR') as libdir");
      const dbs = await c.query<{ datname: string }>('select datname::text as datname from pg_database where datallowconn');
      const plugins: Record<string, boolean> = {};
      const libdir = s.rows[0]?.libdir ?? null;
      for (const p of new Set(logicalSlotSpecs(after).map((x) => x.plugin))) {
        const r = libdir === null ? [] : (await c.query<{ ok: boolean }>('select (pg_stat_file($1, true)).size is not null as ok', [`${libdir}/${p}.so`])).rows;
        plugins[p] = r[0]?.ok === true;
      }
      facts = { walLevel: s.rows[0]?.wal_level ?? 'unknown', databases: dbs.rows.map((r) => r.datname), plugins };
    } catch (err) {
      throw new PgHaError('PGHA_LOGICAL_UNCHECKED', `cannot check logical slots and publications on the leader ${leader.name}: ${(err as Error).message}`, { cause: err });
    } finally {
      await c.end().catch(() => undefined);
    }
    const problem = logicalProblems(after, facts);
    if (problem !== null) throw problem;
  };
}
