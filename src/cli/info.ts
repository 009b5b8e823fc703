// pghactl history / dsn
import type { CommandModule } from 'yargs';
import Table from 'cli-table3';
import { stringify } from 'yaml';
import { PgHaError } from '../errors.ts';
import type { ClusterView } from '../ha/types.ts';
import { connect, type GlobalOpts } from './context.ts';

export const historyCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'history',
  describe: 'timeline history: one entry per promotion',
  handler: async (argv) => {
    const ctx = await connect(argv);
    try {
      const h = await ctx.dcs.readHistory();
      if (argv.format === 'json') process.stdout.write(`${JSON.stringify(h, null, 2)}\n`);
      else if (argv.format === 'yaml') process.stdout.write(stringify(h));
      else {
        const t = new Table({ head: ['TL', 'LSN', 'Reason', 'Time', 'New leader'], style: { head: [], border: [] } });
        for (const e of h) t.push([e.timeline, e.lsn, e.reason, e.time, e.leader]);
        process.stdout.write(`${t.toString()}\n`);
      }
    } finally {
      await ctx.dcs.close();
    }
  },
};

/** A libpq connection string (no password) reaching the given role; multi-host for replica/any. */
export function buildDsn(view: ClusterView, role: 'primary' | 'replica' | 'any', user: string, dbname: string): string {
  const leader = view.leader?.name ?? null;
  const members = view.members.filter((m) => (role === 'primary' ? m.name === leader : role === 'replica' ? m.name !== leader && m.role === 'standby' : true));
  if (members.length === 0) throw new PgHaError('PGHA_CLI_REFUSED', `no member for role ${role}`);
  const hosts = members.map((m) => m.conn.slice(0, m.conn.lastIndexOf(':')));
  const ports = members.map((m) => m.conn.slice(m.conn.lastIndexOf(':') + 1));
  const attrs = role === 'primary' ? 'read-write' : role === 'replica' ? 'standby' : 'any';
  // For primary: list every member, so the string keeps working after a failover without a proxy.
  if (role === 'primary') {
    const all = view.members;
    return `host=${all.map((m) => m.conn.slice(0, m.conn.lastIndexOf(':'))).join(',')} port=${all.map((m) => m.conn.slice(m.conn.lastIndexOf(':') + 1)).join(',')} dbname=${dbname} user=${user} target_session_attrs=read-write`;
  }
  return `host=${hosts.join(',')} port=${ports.join(',')} dbname=${dbname} user=${user} target_session_attrs=${attrs}${role === 'replica' ? ' load_balance_hosts=random' : ''}`;
}

export const dsnCommand: CommandModule<GlobalOpts, GlobalOpts & { role: 'primary' | 'replica' | 'any'; user: string; dbname: string }> = {
  command: 'dsn',
  describe: 'a libpq connection string (multi-host, target_session_attrs: needs no proxy)',
  builder: (y) => y
    .option('role', { choices: ['primary', 'replica', 'any'] as const, default: 'primary' as const })
    .option('user', { type: 'string', default: 'postgres' })
    .option('dbname', { type: 'string', default: 'postgres' }),
  handler: async (argv) => {
    const ctx = await connect(argv);
    try {
      const dsn = buildDsn(await ctx.dcs.readCluster(ctx.fallback), argv.role, argv.user, argv.dbname);
      process.stdout.write(argv.format === 'json' ? `${JSON.stringify({ dsn })}\n` : `${dsn}\n`);
    } finally {
      await ctx.dcs.close();
    }
  },
};
