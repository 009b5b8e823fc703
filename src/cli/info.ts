// pghactl history / dsn
import type { CommandModule } from 'yargs';
import Table from 'cli-table3';
import { stringify } from 'yaml';
import { PgHaError } from '../errors.ts';
import type { ClusterView } from '../ha/types.ts';
import { withCtx, type GlobalOpts } from './context.ts';
import { renderTsv } from './format.ts';

const HISTORY_HEAD = ['TL', 'LSN', 'Reason', 'Time', 'New leader'];

export const historyCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'history',
  describe: 'timeline history: one entry per promotion',
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const h = await ctx.dcs.readHistory();
      if (argv.format === 'json') process.stdout.write(`${JSON.stringify(h, null, 2)}\n`);
      else if (argv.format === 'yaml') process.stdout.write(stringify(h));
      else if (argv.format === 'tsv') process.stdout.write(renderTsv(HISTORY_HEAD, h.map((e) => [e.timeline, e.lsn, e.reason, e.time, e.leader])));
      else {
        const t = new Table({ head: HISTORY_HEAD, style: { head: [], border: [] } });
        for (const e of h) t.push([e.timeline, e.lsn, e.reason, e.time, e.leader]);
        process.stdout.write(`${t.toString()}\n`);
      }
    });
  },
};

/**
 * A libpq connection string (no password). primary: every member with
 * target_session_attrs=read-write, so it keeps working after a failover without a proxy;
 * replica: the standbys with target_session_attrs=standby; any: every member.
 */
export function buildDsn(view: ClusterView, role: 'primary' | 'replica' | 'any', user: string, dbname: string): string {
  const leader = view.leader?.name ?? null;
  const members = role === 'replica' ? view.members.filter((m) => m.name !== leader && m.role === 'standby') : view.members;
  if (members.length === 0) throw new PgHaError('PGHA_CLI_REFUSED', `no member for role ${role}`);
  const hosts = members.map((m) => m.conn.slice(0, m.conn.lastIndexOf(':'))).join(',');
  const ports = members.map((m) => m.conn.slice(m.conn.lastIndexOf(':') + 1)).join(',');
  const attrs = role === 'primary' ? 'read-write' : role === 'replica' ? 'standby' : 'any';
  return `host=${hosts} port=${ports} dbname=${dbname} user=${user} target_session_attrs=${attrs}`;
}

export const dsnCommand: CommandModule<GlobalOpts, GlobalOpts & { role: 'primary' | 'replica' | 'any'; user: string; dbname: string }> = {
  command: 'dsn',
  describe: 'a libpq connection string (multi-host, target_session_attrs: needs no proxy)',
  builder: (y) => y
    .option('role', { choices: ['primary', 'replica', 'any'] as const, default: 'primary' as const, describe: 'primary: every member, read-write only; replica: the standbys; any: every member' })
    .option('user', { type: 'string', default: 'postgres', describe: 'user name in the string (no password: use ~/.pgpass or PGPASSWORD)' })
    .option('dbname', { type: 'string', default: 'postgres', describe: 'database name in the string' }),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const dsn = buildDsn(await ctx.dcs.readCluster(ctx.fallback), argv.role, argv.user, argv.dbname);
      process.stdout.write(argv.format === 'json' ? `${JSON.stringify({ dsn })}\n` : `${dsn}\n`);
    });
  },
};
