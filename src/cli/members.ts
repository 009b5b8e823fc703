// pghactl restart / reload / reinit: forwarded to the members' agents over REST (basic auth from
// the config's restapi.authentication).
import type { CommandModule } from 'yargs';
import { jsonPostHeaders } from '../api/basic-auth.ts';
import { PgHaError } from '../errors.ts';
import type { MemberInfo } from '../ha/types.ts';
import { confirm } from './confirm.ts';
import { withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { printResult } from './format.ts';

async function post(ctx: Ctx, m: MemberInfo, path: string, body: Record<string, unknown> = {}): Promise<void> {
  // A restart waits for pg_ctl (pg_ctl_timeout, 60 s by default): give it 90 s.
  const r = await fetch(`${m.apiUrl}${path}`, { method: 'POST', headers: jsonPostHeaders(ctx.auth), body: JSON.stringify(body), signal: AbortSignal.timeout(90_000) });
  if (!r.ok) {
    const body = (await r.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new PgHaError('PGHA_CLI_REFUSED', `${m.name}: HTTP ${r.status}: ${body.message ?? body.error ?? ''}`);
  }
}

type Opts = GlobalOpts & { members?: string[]; pending?: boolean; force?: boolean; scheduled?: string };

function memberCommand(name: 'restart' | 'reload' | 'reinit', path: string, describe: string): CommandModule<GlobalOpts, Opts> {
  return {
    command: `${name} [members..]`,
    describe,
    builder: (y) => {
      const b = y.positional('members', { type: 'string', array: true }).option('force', { type: 'boolean', describe: 'do not ask' });
      return name === 'restart'
        ? b.option('pending', { type: 'boolean', describe: 'only members with settings pending a restart' })
          .option('scheduled', { type: 'string', describe: 'ISO 8601 time, at most 7 days ahead; kept in etcd (cancel: pghactl flush restart)' })
        : b;
    },
    handler: async (argv) => {
      await withCtx(argv, async (ctx) => {
        const view = await ctx.dcs.readCluster(ctx.fallback);
        let targets = view.members.filter((m) => argv.members === undefined || argv.members.length === 0 || argv.members.includes(m.name));
        for (const want of argv.members ?? []) if (!view.members.some((m) => m.name === want)) throw new PgHaError('PGHA_CLI_REFUSED', `${want} is not a member`);
        if (argv.pending) targets = targets.filter((m) => m.pendingRestart);
        if (name === 'reinit' && (argv.members ?? []).length !== 1) throw new PgHaError('PGHA_CLI_USAGE', 'reinit takes exactly one member');
        if (name !== 'reload') await confirm(`${name} ${targets.map((m) => m.name).join(', ') || '(nobody)'}?`, argv.force);
        let body: Record<string, unknown> = {};
        if (argv.scheduled !== undefined) {
          const t = Date.parse(argv.scheduled);
          if (Number.isNaN(t)) throw new PgHaError('PGHA_CLI_USAGE', `--scheduled: "${argv.scheduled}" is not an ISO 8601 time`);
          body = { schedule: new Date(t).toISOString() };
        }
        for (const m of targets) await post(ctx, m, path, body);
        printResult(argv.format, { [name]: targets.map((m) => m.name) }, `${name}: ${targets.map((m) => m.name).join(', ') || 'nothing to do'}`);
      });
    },
  };
}

export const restartCommand = memberCommand('restart', '/restart', 'restart PostgreSQL on members (all by default)');
export const reloadCommand = memberCommand('reload', '/reload', 'reload PostgreSQL configuration on members');
export const reinitCommand = memberCommand('reinit', '/reinitialize', 'wipe a standby and clone it afresh from the leader');
