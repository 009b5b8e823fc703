// pghactl switchover / failover / flush --scheduled / flush restart. switchover and failover wait
// for the outcome by default (as patronictl): the new leader in etcd answering /primary 200.
import type { Argv, CommandModule } from 'yargs';
import { PgHaError } from '../errors.ts';
import { seconds } from '../human.ts';
import { cancelHandover, requestHandover } from '../ops/store.ts';
import { confirm, forceOption } from './confirm.ts';
import { withCtx, type GlobalOpts } from './context.ts';
import { printResult } from './format.ts';
import { fetchPauseReport, poolerSentence } from './poolers.ts';
import { waitForHandover, type HandoverResult } from './wait.ts';

type SwitchoverOpts = GlobalOpts & { leader?: string; candidate?: string; scheduled?: string; force?: boolean; wait: boolean };

/** --scheduled as epoch ms (undefined when absent); a usage error when it is no time. */
export function parseTime(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new PgHaError('PGHA_CLI_USAGE', `--scheduled: "${text}" is not an ISO 8601 time such as 2026-11-24T03:00:00Z`);
  return t;
}

/** --wait (the default, Patroni's name) / --no-wait. */
export function waitOption<T>(y: Argv<T>, what: string): Argv<T & { wait: boolean }> {
  return y.option('wait', { type: 'boolean', default: true, describe: `wait until ${what}, and exit 1 if it does not happen; --no-wait returns once requested` });
}

/** The sentence for a handover that happened. */
export function handoverSentence(kind: string, r: HandoverResult): string {
  return `${kind} done: ${r.leader} is the leader${r.previous !== null ? ` (was ${r.previous})` : ''}; the handover took ${seconds(r.seconds)}`;
}

export const switchoverCommand: CommandModule<GlobalOpts, SwitchoverOpts> = {
  command: 'switchover',
  describe: 'planned handover to a healthy standby; waits until the new leader answers',
  builder: (y) => waitOption(forceOption(y
    .option('leader', { type: 'string', describe: 'the current leader (refused if it is not)' })
    .option('candidate', { type: 'string', describe: 'the standby to take over (default: the most advanced eligible one)' })
    .option('scheduled', { type: 'string', describe: 'ISO 8601 time to run it at, e.g. 2026-11-24T03:00:00Z (returns at once)' })), 'the new leader answers /primary')
    .example('pghactl -c /etc/pgha/pgha.yml switchover --candidate node2 --force', 'hand over to node2 now, without asking, and wait for it')
    .example('pghactl switchover --scheduled 2026-11-24T03:00:00Z --force', 'schedule one (cancel: pghactl flush --scheduled)'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const scheduledAt = parseTime(argv.scheduled);
      await confirm(`Switch over from the current leader to ${argv.candidate ?? 'the most advanced standby'}${scheduledAt ? ` at ${new Date(scheduledAt).toISOString()}` : ''}?`, argv.force);
      const startedAt = performance.now();
      // 5 s of slack for clock skew between this host and the old leader's.
      const requestedAt = new Date(Date.now() - 5000).toISOString();
      const req = await requestHandover(ctx.dcs, { kind: 'switchover', leader: argv.leader, candidate: argv.candidate, scheduledAt }, ctx.fallback);
      if (scheduledAt !== undefined) { printResult(argv.format, req, `switchover scheduled for ${new Date(scheduledAt).toISOString()}`); return; }
      if (!argv.wait) { printResult(argv.format, req, `switchover requested from ${req.leader} to ${req.candidate ?? 'the best standby'}`); return; }
      const r = await waitForHandover(ctx, 'switchover', req.leader, req.candidate, startedAt);
      // Which PgBouncer poolers the old leader paused (docs/pgbouncer.md); none configured: no line.
      const paused = await fetchPauseReport(ctx, req.leader, requestedAt, ctx.tls);
      const poolers = paused === null ? '' : `\n${poolerSentence(paused)}`;
      printResult(argv.format, { ...req, result: r, ...(paused === null ? {} : { poolers: paused }) }, handoverSentence('switchover', r) + poolers);
    });
  },
};

export const failoverCommand: CommandModule<GlobalOpts, SwitchoverOpts> = {
  command: 'failover',
  describe: 'promote a named standby when there is no healthy leader; waits until it answers',
  builder: (y) => waitOption(forceOption(y
    .option('candidate', { type: 'string', describe: 'the standby to promote', demandOption: true }),
  'do not ask; with a healthy leader, make it step down anyway (writes the candidate lacks are lost)'), 'the candidate answers /primary')
    .example('pghactl -c /etc/pgha/pgha.yml failover --candidate node3 --force', 'promote node3 (the leader is gone), without asking, and wait for it'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      if (argv.force && view.leader !== null) {
        process.stderr.write(`WARNING: ${view.leader.name} holds the leader key. A forced failover stops it; writes it acknowledged that ${argv.candidate} has not received are LOST.\n`);
      }
      await confirm(`Promote ${argv.candidate}?`, argv.force);
      const startedAt = performance.now();
      const req = await requestHandover(ctx.dcs, { kind: 'failover', candidate: argv.candidate, force: argv.force }, ctx.fallback);
      if (!argv.wait) { printResult(argv.format, req, `failover to ${req.candidate} requested`); return; }
      const r = await waitForHandover(ctx, 'failover', view.leader?.name ?? null, req.candidate, startedAt);
      printResult(argv.format, { ...req, result: r }, handoverSentence('failover', r));
    });
  },
};

type FlushOpts = GlobalOpts & { target?: string; members?: string[]; scheduled?: boolean };

export const flushCommand: CommandModule<GlobalOpts, FlushOpts> = {
  command: 'flush [target] [members..]',
  describe: 'cancel a scheduled switchover (flush --scheduled) or scheduled restarts (flush restart [members..])',
  builder: (y) => y
    .positional('target', { type: 'string', choices: ['restart'], describe: 'restart: cancel scheduled restarts (all, or of the members named)' })
    .positional('members', { type: 'string', array: true, describe: 'with restart: the members whose scheduled restart to cancel (default: every one)' })
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
      const had = await cancelHandover(ctx.dcs, ctx.fallback);
      printResult(argv.format, { cancelled: had }, had ? 'pending switchover cancelled' : 'no pending switchover');
    });
  },
};
