// pghactl restart / reload / reinit: forwarded to the members' agents over REST (basic auth from
// the config's restapi.authentication). restart and reinit wait, by default, until each member
// is back in service (a fresh snapshot of its agent: the leader a running primary answering
// /primary, a standby streaming); restart goes member by member.
import type { CommandModule } from 'yargs';
import { apiRequest, jsonOf } from '../api/client.ts';
import { PgHaError } from '../errors.ts';
import { seconds } from '../human.ts';
import type { MemberInfo } from '../ha/types.ts';
import { confirm, forceOption } from './confirm.ts';
import { withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { printResult } from './format.ts';
import { parseTime, waitOption } from './handover.ts';
import { waitForMember } from './wait.ts';

/** POST to a member's agent (basic auth, TLS of the config); refused on a non-2xx answer. */
export async function postToMember(ctx: Ctx, m: MemberInfo, path: string, body: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  // A restart waits for pg_ctl (pg_ctl_timeout, 60 s by default): give it 90 s.
  const r = await apiRequest(`${m.apiUrl}${path}`, { body, auth: ctx.auth, member: m.name, tls: ctx.tls, timeoutMs: 90_000 })
    .catch((err: unknown) => { throw new PgHaError('PGHA_CLI_REFUSED', `${m.name}: ${m.apiUrl}: ${(err as Error).message}`, { cause: err }); });
  const b = jsonOf(r);
  if (r.status < 200 || r.status > 299) {
    throw new PgHaError('PGHA_CLI_REFUSED', `${m.name}: HTTP ${r.status}: ${String(b.message ?? b.error ?? '')}`);
  }
  return b;
}

function chosen(members: MemberInfo[], names: string[]): MemberInfo[] {
  for (const want of names) if (!members.some((m) => m.name === want)) throw new PgHaError('PGHA_CLI_REFUSED', `${want} is not a member`);
  return members.filter((m) => names.length === 0 || names.includes(m.name));
}

type RestartOpts = GlobalOpts & { members?: string[]; pending?: boolean; force?: boolean; scheduled?: string; wait: boolean };

/**
 * After POST /restart returned (PostgreSQL stopped and started): the agent's next loop publishes
 * the member within loop_wait, and a standby reconnects to its upstream within a WAL retry
 * (250 ms). 30 s plus loop_wait covers a loaded host.
 */
const restartSettleMs = (loopWait: number) => 30_000 + loopWait * 1000;

export const restartCommand: CommandModule<GlobalOpts, RestartOpts> = {
  command: 'restart [members..]',
  describe: 'restart PostgreSQL on members (all by default), one after another; waits until each is back',
  builder: (y) => waitOption(forceOption(y
    .positional('members', { type: 'string', array: true, describe: 'member names (default: every member)' })
    .option('pending', { type: 'boolean', describe: 'only members with settings pending a restart' })
    .option('scheduled', { type: 'string', describe: 'ISO 8601 time, at most 7 days ahead: each agent restarts then (kept in etcd, survives an agent restart; cancel with pghactl flush restart; returns at once)' })), 'each member is back in service (leader: primary answering /primary; standby: streaming)')
    .example('pghactl -c /etc/pgha/pgha.yml restart node2 --force', 'restart node2 without asking, and wait until it streams again')
    .example('pghactl restart --pending --force', 'restart every member whose settings need it'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      let targets = chosen(view.members, argv.members ?? []);
      if (argv.pending) targets = targets.filter((m) => m.pendingRestart);
      if (targets.length === 0) { printResult(argv.format, { restart: [] }, 'restart: nothing to do (no member has settings pending a restart)'); return; }
      await confirm(`restart ${targets.map((m) => m.name).join(', ')}?`, argv.force);
      const at = parseTime(argv.scheduled);
      const body: Record<string, unknown> = at === undefined ? {} : { schedule: new Date(at).toISOString() };
      const waiting = argv.wait && argv.scheduled === undefined;
      const done: Array<{ member: string; seconds?: number }> = [];
      for (const m of targets) {
        const started = performance.now();
        await postToMember(ctx, m, '/restart', body);
        if (!waiting) { done.push({ member: m.name }); continue; }
        await waitForMember(m, view.leader?.name === m.name, performance.now(), restartSettleMs(view.config.loop_wait), 'restarted, but', ctx.tls);
        done.push({ member: m.name, seconds: (performance.now() - started) / 1000 });
      }
      const what = argv.scheduled !== undefined ? `restart scheduled for ${new Date(body.schedule as string).toISOString()}` : 'restart';
      const list = done.map((d) => (d.seconds === undefined ? d.member : `${d.member} (back in ${seconds(d.seconds)})`)).join(', ');
      printResult(argv.format, { restart: done.map((d) => d.member), ...(waiting ? { members: done } : {}) }, `${what}: ${list}`);
    });
  },
};

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export const reloadCommand: CommandModule<GlobalOpts, GlobalOpts & { members?: string[]; agent?: boolean }> = {
  command: 'reload [members..]',
  describe: 'reload PostgreSQL configuration on members (all by default); --agent: the agents re-read their YAML',
  builder: (y) => y
    .positional('members', { type: 'string', array: true, describe: 'member names (default: every member)' })
    .option('agent', { type: 'boolean', describe: 'each agent re-reads its configuration file (as on SIGHUP) and reports what it applied and what needs an agent restart' })
    .example('pghactl reload --agent node2', 'node2 re-reads /etc/pgha/pgha.yml'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const targets = chosen((await ctx.dcs.readCluster(ctx.fallback)).members, argv.members ?? []);
      if (!argv.agent) {
        for (const m of targets) await postToMember(ctx, m, '/reload');
        printResult(argv.format, { reload: targets.map((m) => m.name) }, `reload: ${targets.map((m) => m.name).join(', ') || 'nothing to do'}`);
        return;
      }
      const done: Array<{ member: string; applied: string[]; restart_needed: string[] }> = [];
      for (const m of targets) {
        const b = await postToMember(ctx, m, '/reload-agent');
        done.push({ member: m.name, applied: strings(b.applied), restart_needed: strings(b.restart_needed) });
      }
      const lines = done.map((d) => `${d.member}: applied ${d.applied.join(', ') || 'nothing'}${d.restart_needed.length > 0 ? `; needs an agent restart (not applied): ${d.restart_needed.join(', ')}` : ''}`);
      printResult(argv.format, { reload_agent: done }, lines.join('\n') || 'reload --agent: nothing to do');
    });
  },
};

type ReinitOpts = GlobalOpts & { member: string; force?: boolean; wait: boolean; timeout: number };

export const reinitCommand: CommandModule<GlobalOpts, ReinitOpts> = {
  command: 'reinit <member>',
  describe: 'wipe a standby and clone it afresh from the leader (refused on the leader); waits until it streams',
  builder: (y) => waitOption(forceOption(y
    .positional('member', { type: 'string', demandOption: true, describe: 'the standby to rebuild' })
    // A clone copies the whole database, so the wait depends on its size: 600 s is about 30 GB
    // at 50 MB/s; give more for a larger database.
    .option('timeout', { type: 'number', default: 600, describe: 'seconds to wait for the rebuilt standby to stream' })), 'the rebuilt standby streams from the leader')
    .example('pghactl -c /etc/pgha/pgha.yml reinit node3 --force', 'rebuild node3 without asking, and wait until it streams again'),
  handler: async (argv) => {
    if (!(argv.timeout > 0)) throw new PgHaError('PGHA_CLI_USAGE', '--timeout: a positive number of seconds');
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      const [m] = chosen(view.members, [argv.member]);
      if (m === undefined) throw new PgHaError('PGHA_CLI_REFUSED', `${argv.member} is not a member`);
      await confirm(`reinit ${m.name} (its data directory is wiped)?`, argv.force);
      const started = performance.now();
      await postToMember(ctx, m, '/reinitialize');
      if (!argv.wait) { printResult(argv.format, { reinit: [m.name] }, `reinit: ${m.name} wiped; it clones from the leader now`); return; }
      await waitForMember(m, false, performance.now(), argv.timeout * 1000, 'wiped, but', ctx.tls);
      const s = (performance.now() - started) / 1000;
      printResult(argv.format, { reinit: [m.name], seconds: s }, `reinit done: ${m.name} streams again, rebuilt in ${seconds(s)}`);
    });
  },
};
