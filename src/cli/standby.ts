// pghactl promote-cluster / demote-cluster: the REST API of the cluster's leader does the checks
// (it reaches the source with the agents' own libpq settings) and the /config edit
// (src/ops/standby.ts); by default the command then waits for the outcome, as switchover does.
import type { CommandModule } from 'yargs';
import { apiRequest, jsonOf } from '../api/client.ts';
import { ERROR_CODES, PgHaError, type ErrorCode } from '../errors.ts';
import { seconds } from '../human.ts';
import { leaderMember } from '../ha/view.ts';
import type { MemberInfo } from '../ha/types.ts';
import { confirm, forceOption } from './confirm.ts';

/**
 * Ask on a terminal only: without one these commands run unasked, because the agent refuses the
 * unsafe cases itself (a writable source, a bad target) unless --force, which here overrides
 * those refusals rather than only the question.
 */
const ask = (question: string, force: boolean | undefined) => (process.stdin.isTTY ? confirm(question, force) : Promise.resolve());
import { withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { printResult } from './format.ts';
import { waitOption } from './handover.ts';
import { answers, handoverTimeoutMs } from './wait.ts';

/** Between two checks of the leader's health endpoint while waiting (ms). */
const POLL_MS = 200;

/** POST to the leader's agent; its refusal keeps the agent's error code. */
async function postToLeader(ctx: Ctx, path: string, body: Record<string, unknown>): Promise<{ leader: MemberInfo; body: Record<string, unknown> }> {
  const view = await ctx.dcs.readCluster(ctx.fallback);
  const leader = leaderMember(view);
  if (leader === undefined) throw new PgHaError('PGHA_STANDBY_STATE', 'no member holds the leader key: nothing to act on (pghactl list)');
  // The agent reads the source (connect timeouts of 2 s per host) before it answers: 30 s.
  const r = await apiRequest(`${leader.apiUrl}${path}`, { body, auth: ctx.auth, member: leader.name, tls: ctx.tls, timeoutMs: 30_000 })
    .catch((err: unknown) => { throw new PgHaError('PGHA_CLI_REFUSED', `${leader.name}: ${leader.apiUrl}: ${(err as Error).message}`, { cause: err }); });
  const b = jsonOf(r);
  if (r.status < 200 || r.status > 299) {
    const code = String(b.error ?? '');
    throw new PgHaError((code in ERROR_CODES ? code : 'PGHA_CLI_REFUSED') as ErrorCode, `${leader.name}: ${String(b.message ?? `HTTP ${r.status}`)}`);
  }
  return { leader, body: b };
}

/** Wait until the leader key's holder answers `path` with 200; returns the member and the seconds waited. */
async function waitFor(ctx: Ctx, path: string, startedAt: number, what: string): Promise<{ name: string; seconds: number }> {
  const deadline = startedAt + handoverTimeoutMs(ctx.fallback);
  for (;;) {
    const view = await ctx.dcs.readCluster(ctx.fallback).catch(() => null);
    const m = view === null ? undefined : leaderMember(view);
    if (m !== undefined) {
      if ((await answers(`${m.apiUrl}${path}`, ctx.tls)) === 200) return { name: m.name, seconds: (performance.now() - startedAt) / 1000 };
    }
    if (performance.now() > deadline) throw new PgHaError('PGHA_CLI_NOT_DONE', `${what} did not happen within ${seconds((deadline - startedAt) / 1000)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

type PromoteOpts = GlobalOpts & { force?: boolean; wait: boolean };

export const promoteClusterCommand: CommandModule<GlobalOpts, PromoteOpts> = {
  command: 'promote-cluster',
  describe: 'make a standby cluster a normal one: its standby leader promotes; waits until it takes writes',
  builder: (y) => waitOption(forceOption(y, 'do not ask; promote even while the source cluster is still writable (two writable sites)'), 'the new leader answers /primary')
    .example('pghactl -c /etc/pgha/pgha.yml promote-cluster', 'site switch after the source site was demoted or lost'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      await ask('Promote this standby cluster (it stops following its source)?', argv.force);
      const startedAt = performance.now();
      const { body } = await postToLeader(ctx, '/promote-cluster', { force: argv.force === true });
      const behind = body.behind_bytes == null ? 'unknown (the source could not be read)' : `${String(body.behind_bytes)} bytes`;
      const report = `standby_cluster removed; ${String(body.standby_leader)} was ${behind} behind the source (${String(body.source_lsn ?? '?')} vs ${String(body.standby_leader_lsn ?? '?')}). ${String(body.loss)}`;
      if (!argv.wait) { printResult(argv.format, body, report); return; }
      const done = await waitFor(ctx, '/primary', startedAt, 'the promotion');
      printResult(argv.format, { ...body, leader: done.name, seconds: done.seconds }, `${report}\npromote-cluster done: ${done.name} takes writes after ${seconds(done.seconds)}`);
    });
  },
};

type DemoteOpts = GlobalOpts & { host: string; port?: string; force?: boolean; wait: boolean };

export const demoteClusterCommand: CommandModule<GlobalOpts, DemoteOpts> = {
  command: 'demote-cluster',
  describe: 'make this cluster a standby cluster of another (--host/--port: its HAProxy or primaries); waits for the standby leader',
  builder: (y) => waitOption(forceOption(y
    .option('host', { type: 'string', demandOption: true, describe: 'the new source: one host, or "h1,h2,h3"' })
    .option('port', { type: 'string', describe: 'its port, or one per host "p1,p2,p3" (default 5432)' }),
  'do not ask; also follow a target that is unreachable now or not writable (a standby of a standby)'), 'the leader answers /standby-leader')
    .example('pghactl demote-cluster --host site-b-haproxy --port 5000', 'this site follows site B; writes here stop'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      await ask(`Make this cluster a standby of ${argv.host}${argv.port ? `:${argv.port}` : ''}? Writes on it stop; what the target lacks of this site's writes is rewound away.`, argv.force);
      const startedAt = performance.now();
      const port = argv.port === undefined ? undefined : /^\d+$/.test(argv.port) ? Number(argv.port) : argv.port;
      const { body } = await postToLeader(ctx, '/demote-cluster', { host: argv.host, ...(port === undefined ? {} : { port }), force: argv.force === true });
      const report = `standby_cluster set to ${String(body.source)}; ${String(body.leader)} stops taking writes and follows it`;
      if (!argv.wait) { printResult(argv.format, body, report); return; }
      const done = await waitFor(ctx, '/standby-leader', startedAt, 'the demotion');
      printResult(argv.format, { ...body, standby_leader: done.name, seconds: done.seconds }, `${report}\ndemote-cluster done: ${done.name} is the standby leader after ${seconds(done.seconds)}`);
    });
  },
};
