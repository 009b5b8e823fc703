// pghactl query: run SQL on the leader (default), a named member, or any standby, as the
// superuser of the agent YAML (or --username with PGPASSWORD / ~/.pgpass). Values come back as
// PostgreSQL's text, exactly as psql shows them (no float or bigint rounding in JSON).
import { readFileSync } from 'node:fs';
import Table from 'cli-table3';
import pg from 'pg';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { splitHostPort } from '../config/schema.ts';
import { loadConfig } from '../config/load.ts';
import { PgHaError } from '../errors.ts';
import type { ClusterView, MemberInfo } from '../ha/types.ts';
import { configPath, withCtx, type GlobalOpts } from './context.ts';
import { renderTsv, type Format } from './format.ts';
import { leaderMember, memberByName } from '../ha/view.ts';

type QueryOpts = GlobalOpts & { sql?: string; file?: string; member?: string; role: 'leader' | 'replica' | 'any'; dbname: string; username?: string };

/** The member to run on: --member by name, else by role (the leader, or the first streaming standby). */
export function pickMember(view: ClusterView, member: string | undefined, role: QueryOpts['role']): MemberInfo {
  const leader = view.leader?.name ?? null;
  if (member !== undefined) {
    const m = memberByName(view, member);
    if (m === undefined) throw new PgHaError('PGHA_CLI_REFUSED', `${member} is not a member (members: ${view.members.map((x) => x.name).join(', ') || 'none'})`);
    return m;
  }
  const standbys = view.members.filter((m) => m.name !== leader && m.role === 'standby').sort((a, b) => (a.state === 'streaming' ? 0 : 1) - (b.state === 'streaming' ? 0 : 1) || a.name.localeCompare(b.name));
  const m = role === 'leader' ? leaderMember(view)
    : role === 'replica' ? standbys[0] : (leaderMember(view) ?? standbys[0]);
  if (m === undefined) throw new PgHaError('PGHA_CLI_REFUSED', role === 'leader' ? 'the cluster has no leader now: name a member with --member' : `no member for role ${role}`);
  return m;
}

interface ResultSet { command: string; fields: string[]; rows: Array<Record<string, string | null>> }

/** Result sets as the chosen format: one table (or TSV block) per statement that returned rows. */
export function renderResults(results: ResultSet[], format: Format): string {
  const withRows = results.filter((r) => r.fields.length > 0);
  const data = withRows.map((r) => r.rows);
  if (format === 'json') return `${JSON.stringify(data.length === 1 ? data[0] : data, null, 2)}\n`;
  if (format === 'yaml') return stringify(data.length === 1 ? data[0] : data);
  if (withRows.length === 0) return `${results.map((r) => r.command).filter(Boolean).join('\n')}\n`;
  return withRows.map((r) => {
    const cells = r.rows.map((row) => r.fields.map((f) => row[f] ?? null));
    if (format === 'tsv') return renderTsv(r.fields, cells);
    const t = new Table({ head: r.fields, style: { head: [], border: [] } });
    for (const c of cells) t.push(c.map((v) => v ?? ''));
    return `${t.toString()}\n(${r.rows.length} row${r.rows.length === 1 ? '' : 's'})\n`;
  }).join('\n');
}

export const queryCommand: CommandModule<GlobalOpts, QueryOpts> = {
  command: 'query [sql]',
  describe: 'run SQL on the leader or a member (as the YAML\'s superuser)',
  builder: (y) => y
    .positional('sql', { type: 'string', describe: 'the SQL to run (or --file)' })
    .option('file', { type: 'string', describe: 'read the SQL from this file ("-" for standard input)' })
    .option('member', { alias: 'm', type: 'string', describe: 'run on this member (default: by --role)' })
    .option('role', { choices: ['leader', 'replica', 'any'] as const, default: 'leader' as const, describe: 'without --member: the leader, a standby (streaming first), or the leader if there is one' })
    .option('dbname', { alias: 'd', type: 'string', default: 'postgres', describe: 'database to connect to' })
    .option('username', { alias: 'U', type: 'string', describe: 'connect as this user (default: the YAML\'s superuser; its password from PGPASSWORD or ~/.pgpass)' })
    .example('pghactl -c /etc/pgha/pgha.yml query "select pg_is_in_recovery()" --member node2', 'ask node2')
    .example('pghactl query --format tsv "select * from pg_stat_replication"', 'on the leader, tab-separated'),
  handler: async (argv) => {
    const sql = argv.file === undefined ? argv.sql : readFileSync(argv.file === '-' ? 0 : argv.file, 'utf8');
    if (sql === undefined || sql.trim() === '') throw new PgHaError('PGHA_CLI_USAGE', 'give the SQL as an argument or with --file');
    const path = configPath(argv);
    const su = path === undefined ? undefined : (await loadConfig(path)).postgresql.authentication.superuser;
    const user = argv.username ?? su?.username ?? 'postgres';
    // The YAML's password goes only with the YAML's user; anyone else brings PGPASSWORD or ~/.pgpass.
    const password = su !== undefined && su.username === user ? su.password : undefined;
    await withCtx(argv, async (ctx) => {
      const m = pickMember(await ctx.dcs.readCluster(ctx.fallback), argv.member, argv.role);
      const { host, port } = splitHostPort(m.conn);
      // Text for every type: values as PostgreSQL prints them. Connecting may take 5 s on a
      // loaded host; the statement itself runs as long as it runs (Ctrl-C stops pghactl).
      const client = new pg.Client({ host, port, user, password, database: argv.dbname, connectionTimeoutMillis: 5000, types: { getTypeParser: () => (v: string) => v } as never });
      try {
        await client.connect();
        // Several statements in one string answer one result per statement.
        const r = (await client.query(sql)) as pg.QueryResult | pg.QueryResult[];
        const sets = (Array.isArray(r) ? r : [r]).map((x): ResultSet => ({
          command: x.command === null ? '' : `${x.command}${x.rowCount === null ? '' : ` ${x.rowCount}`}`,
          fields: x.fields.map((f) => f.name), rows: x.rows as ResultSet['rows'],
        }));
        process.stdout.write(renderResults(sets, argv.format));
      } catch (err) {
        const e = err as { message?: string; code?: string };
        throw new PgHaError('PGHA_CLI_NOT_DONE', `${m.name} (${m.conn}): ${e.code ? `SQLSTATE ${e.code}: ` : ''}${e.message ?? String(err)}`);
      } finally {
        await client.end().catch(() => undefined);
      }
    });
  },
};
