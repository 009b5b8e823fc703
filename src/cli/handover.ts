// pghactl switchover / failover / flush --scheduled / flush restart
import type { CommandModule } from 'yargs';
import { PgHaError } from '../errors.ts';
import { cancelHandover, requestHandover } from '../ops/store.ts';
import { confirm } from './confirm.ts';
import { withCtx, type GlobalOpts } from './context.ts';
import { printResult } from './format.ts';

type SwitchoverOpts = GlobalOpts & { leader?: string; candidate?: string; scheduled?: string; force?: boolean };

function parseTime(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new PgHaError('PGHA_CLI_USAGE', `--scheduled: "${text}" is not an ISO 8601 time such as 2026-11-24T03:00:00Z`);
  return t;
}

export const switchoverCommand: CommandModule<GlobalOpts, SwitchoverOpts> = {
  command: 'switchover',
  describe: 'planned handover to a healthy standby',
  builder: (y) => y
    .option('leader', { type: 'string', describe: 'the current leader (refused if it is not)' })
    .option('candidate', { type: 'string', describe: 'the standby to take over (default: the most advanced)' })
    .option('scheduled', { type: 'string', describe: 'ISO 8601 time to run it at' })
    .option('force', { type: 'boolean', describe: 'do not ask for confirmation' }),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const scheduledAt = parseTime(argv.scheduled);
      await confirm(`Switch over from the current leader to ${argv.candidate ?? 'the most advanced standby'}${scheduledAt ? ` at ${new Date(scheduledAt).toISOString()}` : ''}?`, argv.force);
      const req = await requestHandover(ctx.dcs, { kind: 'switchover', leader: argv.leader, candidate: argv.candidate, scheduledAt }, ctx.fallback);
      printResult(argv.format, req, scheduledAt ? `switchover scheduled for ${new Date(scheduledAt).toISOString()}` : `switchover requested from ${req.leader}`);
    });
  },
};

export const failoverCommand: CommandModule<GlobalOpts, SwitchoverOpts> = {
  command: 'failover',
  describe: 'promote a named standby when there is no healthy leader',
  builder: (y) => y
    .option('candidate', { type: 'string', describe: 'the standby to promote', demandOption: true })
    .option('force', { type: 'boolean', describe: 'even with a healthy leader; do not ask' }),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      if (argv.force && view.leader !== null) {
        process.stderr.write(`WARNING: ${view.leader.name} holds the leader key. A forced failover stops it; writes it acknowledged that ${argv.candidate} has not received are LOST.\n`);
      }
      await confirm(`Promote ${argv.candidate}?`, argv.force);
      const req = await requestHandover(ctx.dcs, { kind: 'failover', candidate: argv.candidate, force: argv.force }, ctx.fallback);
      printResult(argv.format, req, `failover to ${req.candidate} requested`);
    });
  },
};

type FlushOpts = GlobalOpts & { target?: string; members?: string[]; scheduled?: boolean };

export const flushCommand: CommandModule<GlobalOpts, FlushOpts> = {
  command: 'flush [target] [members..]',
  describe: 'cancel a scheduled switchover (flush --scheduled) or scheduled restarts (flush restart [members..])',
  builder: (y) => y
    .positional('target', { type: 'string', choices: ['restart'], describe: 'restart: cancel scheduled restarts (all, or of the members named)' })
    .positional('members', { type: 'string', array: true })
    .option('scheduled', { type: 'boolean', describe: 'cancel the scheduled switchover' }),
  handler: async (argv) => {
    if (argv.target !== 'restart' && argv.scheduled !== true) throw new PgHaError('PGHA_CLI_USAGE', 'name what to flush: --scheduled (a switchover) or restart [members..]');
    await withCtx(argv, async (ctx) => {
      if (argv.target === 'restart') {
        const view = await ctx.dcs.readCluster(ctx.fallback);
        const names = (argv.members ?? []).length > 0 ? (argv.members ?? []) : Object.keys(view.restarts ?? {});
        const cancelled: string[] = [];
        for (const n of names) if (await ctx.dcs.cancelRestart(n)) cancelled.push(n);
        printResult(argv.format, { cancelled }, cancelled.length > 0 ? `scheduled restart cancelled: ${cancelled.join(', ')}` : 'no scheduled restart');
        return;
      }
      const had = await cancelHandover(ctx.dcs);
      printResult(argv.format, { cancelled: had }, had ? 'pending switchover cancelled' : 'no pending switchover');
    });
  },
};
