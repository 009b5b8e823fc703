// pghactl restore: whole-cluster point-in-time restore from the pgBackRest repository
// (docs/backup.md#pghactl-restore). pghactl drives the steps through the agents' REST API; etcd's
// /restore record (created only if absent) holds the restore and the last step completed, so a
// second restore is refused and an interrupted one is finished with --resume or dropped with
// --abort. Steps: check the target, claim /restore, pause, stop the other members, restore and
// promote the leader (an agent job that records itself), rebuild the others from it, resume.
import { randomBytes } from 'node:crypto';
import type { CommandModule } from 'yargs';
import { apiRequest, jsonOf } from '../api/client.ts';
import type { StanzaInfo } from '../backup/info.ts';
import type { RestoreJob } from '../backup/restore-job.ts';
import {
  advance, backupLabel, checkTarget, describeTarget, lossSummary, reached, restoreRecordSchema, restoreTargetSchema,
  type RestorePhase, type RestoreRecord, type RestoreTarget,
} from '../backup/restore-plan.ts';
import { PgHaError, describeError, isPgHaError, type ErrorCode } from '../errors.ts';
import type { ClusterView, MemberInfo } from '../ha/types.ts';
import { seconds } from '../human.ts';
import { editConfig } from '../ops/store.ts';
import { formatLsn } from '../postgres/lsn.ts';
import { confirm, forceOption } from './confirm.ts';
import { withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { printResult } from './format.ts';
import { waitForMember } from './wait.ts';
import { leaderMember, memberByName } from '../ha/view.ts';

type RestoreOpts = GlobalOpts & {
  time?: string; lsn?: string; name?: string; latest?: boolean; set?: string;
  resume?: boolean; abort?: boolean; force?: boolean; timeout: number;
};

/** A start, a stop or a progress read: the agent answers within a pg_ctl stop (fast), 90 s at most. */
const CALL_MS = 90_000;
/** `pgbackrest info` on the leader: its own limit is 60 s. */
const INFO_MS = 70_000;
/** Progress poll pace of the restore job. */
const POLL_MS = 1000;
/** Each agent reads /config once per loop: 30 s is many loops, even on a loaded host. */
const PAUSE_WAIT_MS = 30_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The target the options name (exactly one of --time, --lsn, --name, --latest). */
export function targetOf(o: Pick<RestoreOpts, 'time' | 'lsn' | 'name' | 'latest'>): RestoreTarget {
  const given = [o.time !== undefined, o.lsn !== undefined, o.name !== undefined, o.latest === true].filter(Boolean).length;
  if (given !== 1) throw new PgHaError('PGHA_CLI_USAGE', 'name exactly one target: --time T, --lsn L, --name RESTORE_POINT or --latest (or --resume / --abort)');
  const raw = o.time !== undefined ? { type: 'time', value: o.time } : o.lsn !== undefined ? { type: 'lsn', value: o.lsn } : o.name !== undefined ? { type: 'name', value: o.name } : { type: 'latest' };
  const r = restoreTargetSchema.safeParse(raw);
  if (!r.success) throw new PgHaError('PGHA_CLI_USAGE', `--${raw.type}: ${r.error.issues[0]?.message ?? 'not valid'}`);
  return r.data;
}

async function call(ctx: Ctx, m: MemberInfo, path: string, body?: unknown, timeoutMs = CALL_MS): Promise<Record<string, unknown>> {
  const r = await apiRequest(`${m.apiUrl}${path}`, { body, auth: ctx.auth, member: m.name, tls: ctx.tls, timeoutMs })
    .catch((err: unknown) => { throw new PgHaError('PGHA_RESTORE_FAILED', `${m.name}: ${m.apiUrl}: ${(err as Error).message}`, { cause: err }); });
  const b = jsonOf(r);
  if (r.status < 200 || r.status > 299) {
    const passed: ErrorCode[] = ['PGHA_RESTORE_STATE', 'PGHA_BACKUP_NOT_CONFIGURED', 'PGHA_BACKUP_COMMAND'];
    throw new PgHaError(passed.find((c) => c === b.error) ?? 'PGHA_RESTORE_FAILED', `${m.name}: HTTP ${r.status}: ${String(b.message ?? b.error ?? '')}`);
  }
  return b;
}

async function readRecord(ctx: Ctx): Promise<{ rec: RestoreRecord | null; raw: unknown; rev: string }> {
  const cur = await ctx.dcs.readRestoreRecord();
  const r = restoreRecordSchema.safeParse(cur.value);
  return { rec: r.success ? r.data : null, raw: cur.value, rev: cur.revision };
}

/** Compare-and-set of the record, only while it still holds `id`. */
async function save(ctx: Ctx, id: string, fn: (r: RestoreRecord) => RestoreRecord): Promise<RestoreRecord> {
  for (let i = 0; i < 5; i++) {
    const { rec, rev } = await readRecord(ctx);
    if (rec === null || rec.id !== id) throw new PgHaError('PGHA_RESTORE_STATE', `/restore no longer holds restore ${id} (dropped with --abort?)`);
    const next = fn(rec);
    if (await ctx.dcs.writeRestoreRecord(next, rev)) return next;
  }
  throw new PgHaError('PGHA_DCS_CONFLICT', '/restore kept changing under us');
}

const memberOf = (view: ClusterView, name: string): MemberInfo => {
  const m = memberByName(view, name);
  if (m === undefined) throw new PgHaError('PGHA_RESTORE_FAILED', `${name} is not in the cluster (its agent is down?): start it, then pghactl restore --resume`);
  return m;
};

const say = (argv: RestoreOpts, line: string) => { if (argv.format === 'table') process.stderr.write(`${line}\n`); };

/** Every member reports `pause === want` in its /status (each reads /config once per loop). */
async function waitPause(ctx: Ctx, want: boolean): Promise<void> {
  const end = performance.now() + PAUSE_WAIT_MS;
  for (;;) {
    const view = await ctx.dcs.readCluster(ctx.fallback);
    const pending = (await Promise.all(view.members.map(async (m) => {
      // /status answers from memory: 2 s covers a loaded agent.
      const s = await apiRequest(`${m.apiUrl}/status`, { tls: ctx.tls, timeoutMs: 2000 }).then(jsonOf, () => null);
      return s?.pause === want ? null : m.name;
    }))).filter((x): x is string => x !== null);
    if (pending.length === 0) return;
    if (performance.now() > end) throw new PgHaError('PGHA_RESTORE_FAILED', `not ${want ? 'paused' : 'resumed'} after ${PAUSE_WAIT_MS / 1000} s: ${pending.join(', ')}`);
    await sleep(250);
  }
}

/** Run the restore job on the record's member and wait for it (the agent marks /restore "restored"). */
async function restoreLeader(ctx: Ctx, rec: RestoreRecord, argv: RestoreOpts, deadline: number): Promise<void> {
  const m = memberOf(await ctx.dcs.readCluster(ctx.fallback), rec.member);
  await call(ctx, m, '/restore', { id: rec.id });
  let last = '';
  for (;;) {
    await sleep(POLL_MS);
    const job = (await call(ctx, m, '/restore', undefined).catch(() => ({ job: undefined }))).job as RestoreJob | null | undefined;
    if (job === undefined) continue; // the agent does not answer right now: ask again
    if (job === null || job.id !== rec.id) { await call(ctx, m, '/restore', { id: rec.id }); continue; } // its agent restarted: start again
    const line = `${m.name}: ${job.step} ${seconds(job.seconds)} ${job.lines.at(-1) ?? ''}`.slice(0, 160);
    if (line !== last) say(argv, line);
    last = line;
    if (job.state === 'failed') throw new PgHaError('PGHA_RESTORE_FAILED', `the restore on ${m.name} failed at ${job.error ?? job.step}`);
    if (job.state === 'done') return;
    if (performance.now() > deadline) throw new PgHaError('PGHA_RESTORE_FAILED', `the restore on ${m.name} still runs after ${argv.timeout} s (it goes on: pghactl restore --resume waits for it)`);
  }
}

/** Rebuild every other member from the restored leader (reinit: wipe, clone) and wait until it streams. */
async function rebuild(ctx: Ctx, rec: RestoreRecord, argv: RestoreOpts, deadline: number): Promise<void> {
  const view = await ctx.dcs.readCluster(ctx.fallback);
  for (const m of view.members.filter((x) => x.name !== rec.member)) {
    if (m.state === 'streaming' && m.timeline === rec.timeline_after) { say(argv, `${m.name}: streams on timeline ${m.timeline} already`); continue; }
    say(argv, `${m.name}: rebuilding from ${rec.member}`);
    const started = performance.now();
    await call(ctx, m, '/reinitialize', {});
    await waitForMember(m, false, started, Math.max(1000, deadline - started), 'rebuilt, but', ctx.tls)
      .catch((err: unknown) => { throw new PgHaError('PGHA_RESTORE_FAILED', describeError(err).message); });
  }
}

/** The steps after the claim, each skipped when the record says it is done. */
async function drive(ctx: Ctx, rec0: RestoreRecord, argv: RestoreOpts): Promise<RestoreRecord> {
  const deadline = performance.now() + argv.timeout * 1000;
  let rec = rec0;
  const step = async (phase: RestorePhase, what: string, run: () => Promise<void>) => {
    if (reached(rec, phase)) return;
    say(argv, `restore ${rec.id}: ${what}`);
    try {
      await run();
    } catch (err) {
      const message = describeError(err).message;
      await save(ctx, rec.id, (r) => ({ ...r, error: `${what}: ${message}`, updated: new Date().toISOString() })).catch(() => undefined);
      throw new PgHaError('PGHA_RESTORE_FAILED', `${what}: ${message}. The restore stays recorded (phase ${rec.phase}): fix the cause and run pghactl restore --resume, or pghactl restore --abort`);
    }
    rec = phase === 'restored' ? (await readRecord(ctx)).rec ?? rec : await save(ctx, rec.id, (r) => advance(r, phase, new Date()));
    if (!reached(rec, phase)) throw new PgHaError('PGHA_RESTORE_FAILED', `${rec.member} did not record the restore as done`);
  };
  await step('paused', 'pausing the cluster', async () => {
    await editConfig(ctx.dcs, (c) => ({ ...c, pause: true }), ctx.fallback, 'restore');
    await waitPause(ctx, true);
  });
  await step('stopped', 'stopping PostgreSQL on the other members', async () => {
    const view = await ctx.dcs.readCluster(ctx.fallback);
    for (const m of view.members.filter((x) => x.name !== rec.member)) await call(ctx, m, '/restore/stop', { id: rec.id });
  });
  await step('restored', `restoring ${rec.member} to ${describeTarget(rec.target)} (a delta pgbackrest restore, recovery, promotion)`, () => restoreLeader(ctx, rec, argv, deadline));
  await step('rebuilt', `rebuilding the other members from ${rec.member}`, () => rebuild(ctx, rec, argv, deadline));
  if (!rec.was_paused) {
    say(argv, `restore ${rec.id}: resuming the cluster`);
    await editConfig(ctx.dcs, (c) => ({ ...c, pause: false }), ctx.fallback, 'restore done');
    await waitPause(ctx, false);
  }
  await ctx.dcs.deleteRestoreRecord();
  return rec;
}

function outcome(argv: RestoreOpts, rec: RestoreRecord, view: ClusterView, started: number): void {
  const s = (performance.now() - started) / 1000;
  const streaming = view.members.filter((m) => m.name !== rec.member && m.state === 'streaming').map((m) => m.name);
  printResult(argv.format, { ...rec, seconds: s, streaming }, `restore done in ${seconds(s)}: ${rec.member} leads on timeline ${rec.timeline_after ?? '?'} from ${rec.lsn_after ?? '?'} ` +
    `(restored to ${describeTarget(rec.target)}${rec.set === null ? '' : `, backup ${rec.set}`}); streaming: ${streaming.join(', ') || 'none'}${rec.was_paused ? '; the cluster stays paused as it was' : ''}`);
}

/** Refusals before anything changes; returns the record to claim. */
async function plan(ctx: Ctx, argv: RestoreOpts, target: RestoreTarget): Promise<RestoreRecord> {
  const { raw } = await readRecord(ctx);
  if (raw !== undefined) {
    const r = restoreRecordSchema.safeParse(raw);
    const what = r.success ? `restore ${r.data.id} to ${describeTarget(r.data.target)} (phase ${r.data.phase}${r.data.error === null ? '' : `, failed: ${r.data.error}`})` : 'an unreadable restore record';
    throw new PgHaError('PGHA_RESTORE_IN_PROGRESS', `${what} is recorded in etcd: wait for it, finish it with pghactl restore --resume, or drop it with pghactl restore --abort`);
  }
  const view = await ctx.dcs.readCluster(ctx.fallback);
  if (view.failover !== null) throw new PgHaError('PGHA_RESTORE_HANDOVER_PENDING', `a ${view.failover.kind} request is pending: let it finish or cancel it (pghactl flush --scheduled) before a restore`);
  const leader = leaderMember(view);
  if (leader === undefined) throw new PgHaError('PGHA_CLI_REFUSED', 'the cluster has no leader: pghactl restore restores the leader (with every node lost, see docs/backup.md "Every node was lost")');
  if (argv.set !== undefined && !backupLabel.safeParse(argv.set).success) throw new PgHaError('PGHA_CLI_USAGE', `--set ${argv.set}: not a pgBackRest backup label (pghactl backup list shows them)`);
  const stanzas = ((await call(ctx, leader, '/backup/info', undefined, INFO_MS)).stanzas ?? []) as StanzaInfo[];
  const now = Date.now();
  const set = argv.set ?? checkTarget(target, { backups: stanzas.flatMap((s) => s.backups), now, leaderLsn: leader.lsn });
  const summary = lossSummary(target, { timeline: leader.timeline, leaderLsn: leader.lsn, now });
  process.stderr.write(`WARNING: restore to ${describeTarget(target)} on ${leader.name}${set === null ? '' : ` from backup ${set}`}: ${summary}\n`);
  await confirm(`Restore the whole cluster ${ctx.scope} to ${describeTarget(target)}?`, argv.force);
  const at = new Date(now).toISOString();
  return {
    id: randomBytes(6).toString('hex'), target, member: leader.name, set, phase: 'claimed', was_paused: view.config.pause,
    started: at, updated: at, timeline_before: leader.timeline, lsn_before: leader.lsn === null ? null : formatLsn(leader.lsn),
    timeline_after: null, lsn_after: null, error: null,
  };
}

export const restoreCommand: CommandModule<GlobalOpts, RestoreOpts> = {
  command: 'restore',
  describe: 'whole-cluster point-in-time restore from the pgBackRest repository (--time, --lsn, --name or --latest); --resume / --abort an interrupted one',
  builder: (y) => forceOption(y
    .option('time', { type: 'string', describe: 'restore to this time (ISO 8601 with an offset), inclusive' })
    .option('lsn', { type: 'string', describe: 'restore to this WAL position (pg_lsn), inclusive' })
    .option('name', { type: 'string', describe: 'restore to this restore point (pghactl restore-point)' })
    .option('latest', { type: 'boolean', describe: 'restore to the end of the archive (the leader archives its current WAL first)' })
    .option('set', { type: 'string', describe: 'the backup to start from (pgBackRest label; default: chosen for --time/--lsn, the newest otherwise)' })
    .option('resume', { type: 'boolean', describe: 'finish the restore recorded in etcd from the step it reached' })
    .option('abort', { type: 'boolean', describe: 'drop the restore recorded in etcd (the cluster stays paused; nothing is undone)' })
    // A restore copies the whole database and replays WAL, then each member is cloned: 2 h
    // covers about 100 GB at 50 MB/s; give more for a larger database.
    .option('timeout', { type: 'number', default: 7200, describe: 'seconds to wait for the restore and the rebuilds' }),
  'do not ask (needed without a terminal)')
    .example('pghactl -c /etc/pgha/pgha.yml restore --time 2026-11-30T10:41:00Z --force', 'bring the whole cluster back to 10:41:00 UTC without asking, and wait for it')
    .example('pghactl restore --resume', 'finish a restore whose pghactl was interrupted'),
  handler: async (argv) => {
    if (!(argv.timeout > 0)) throw new PgHaError('PGHA_CLI_USAGE', '--timeout: a positive number of seconds');
    if (argv.resume === true && argv.abort === true) throw new PgHaError('PGHA_CLI_USAGE', '--resume or --abort, not both');
    const target = argv.resume === true || argv.abort === true ? null : targetOf(argv);
    await withCtx(argv, async (ctx) => {
      const started = performance.now();
      let rec: RestoreRecord;
      if (target === null) {
        const { rec: cur, raw } = await readRecord(ctx);
        if (raw === undefined) throw new PgHaError('PGHA_CLI_REFUSED', 'no restore is recorded in etcd: nothing to resume or abort');
        if (argv.abort === true) {
          await confirm(`Drop ${cur === null ? 'the unreadable restore record' : `restore ${cur.id} (phase ${cur.phase})`}? The cluster stays paused and nothing is undone.`, argv.force);
          await ctx.dcs.deleteRestoreRecord();
          printResult(argv.format, { aborted: cur?.id ?? null }, `restore record dropped${cur === null ? '' : ` (${cur.id}, phase ${cur.phase})`}; the cluster is ${cur?.phase === 'claimed' ? 'unchanged' : 'paused: pghactl resume when it is in the state you want'}`);
          return;
        }
        if (cur === null) throw new PgHaError('PGHA_RESTORE_STATE', '/restore holds no readable record: pghactl restore --abort drops it');
        rec = cur;
        say(argv, `resuming restore ${rec.id} to ${describeTarget(rec.target)} from phase ${rec.phase}`);
      } else {
        rec = await plan(ctx, argv, target);
        if (!(await ctx.dcs.writeRestoreRecord(rec, '0'))) {
          throw new PgHaError('PGHA_RESTORE_IN_PROGRESS', 'another restore was recorded in etcd at the same moment');
        }
      }
      try {
        rec = await drive(ctx, rec, argv);
      } catch (err) {
        if (isPgHaError(err)) throw err;
        throw new PgHaError('PGHA_RESTORE_FAILED', `${describeError(err).message}: pghactl restore --resume retries from the step reached`);
      }
      outcome(argv, rec, await ctx.dcs.readCluster(ctx.fallback), started);
    });
  },
};
