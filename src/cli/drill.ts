// pghactl drill: rehearse a failure on a real cluster through its agents, with a write probe, and
// report the outage and any lost writes. The probe table lives in its own schema and is dropped.
import type { CommandModule } from 'yargs';
import { apiRequest } from '../api/client.ts';
import pg from 'pg';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.ts';
import { seconds } from '../human.ts';
import { PgHaError } from '../errors.ts';
import type { ClusterView, MemberInfo } from '../ha/types.ts';
import { requestHandover } from '../ops/store.ts';
import { confirm, forceOption } from './confirm.ts';
import { configPath, withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { leaderMember } from '../ha/view.ts';

type Kind = 'switchover' | 'kill-primary' | 'stop-primary';
type Opts = GlobalOpts & { kind: Kind; count: number; force?: boolean };
interface Creds { user: string; password: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function healthyProblem(v: ClusterView): string | null {
  if (v.config.pause) return 'the cluster is paused';
  const leader = leaderMember(v);
  if (leader === undefined || leader.role !== 'primary' || leader.state !== 'running') return 'there is no running leader';
  const bad = v.members.filter((m) => m !== leader && m.state !== 'streaming');
  if (bad.length > 0) return `not every standby is streaming (${bad.map((m) => `${m.name}: ${m.state}`).join(', ')})`;
  if (v.members.length < 2) return 'there is no standby';
  return null;
}

/** Commits one row every 20 ms to whichever member accepts writes; records acknowledged ids. */
class DrillProbe {
  acked: Array<{ id: number; at: number }> = [];
  /** performance.now() of every failed write (connection lost, read-only server, ...). */
  failures: number[] = [];
  #id = 0;
  #stop = false;
  #run: Promise<void> | null = null;
  readonly members: () => MemberInfo[];
  readonly creds: Creds;
  constructor(members: () => MemberInfo[], creds: Creds) {
    this.members = members;
    this.creds = creds;
  }

  async #connect(): Promise<pg.Client | null> {
    for (const m of this.members()) {
      const i = m.conn.lastIndexOf(':');
      const c = new pg.Client({ host: m.conn.slice(0, i), port: Number(m.conn.slice(i + 1)), user: this.creds.user, password: this.creds.password, database: 'postgres', connectionTimeoutMillis: 500, query_timeout: 1000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const r = await c.query<{ ro: boolean }>('select pg_is_in_recovery() as ro');
        if (r.rows[0]?.ro === false) return c;
      } catch { /* next member */ }
      await c.end().catch(() => undefined);
    }
    return null;
  }

  start(): void {
    this.#run = (async () => {
      let c: pg.Client | null = null;
      while (!this.#stop) {
        try {
          c ??= await this.#connect();
          if (c !== null) {
            const id = ++this.#id;
            await c.query('insert into pgha_drill.probe(id) values ($1)', [id]);
            this.acked.push({ id, at: performance.now() });
          }
        } catch {
          this.failures.push(performance.now());
          void c?.end().catch(() => undefined);
          c = null;
        }
        if (c === null) this.failures.push(performance.now());
        await sleep(20);
      }
      await c?.end().catch(() => undefined);
    })();
  }

  async stop(): Promise<void> { this.#stop = true; await this.#run; }

  /** The first failed write after t, or null while writes still succeed. */
  firstFailureAfter(t: number): number | null {
    return this.failures.find((f) => f > t) ?? null;
  }

  /** The write outage of an event at t: last ack before the first failure to the first ack after it. */
  outage(t: number): number {
    const fail = this.firstFailureAfter(t);
    if (fail === null) return Number.NaN;
    const before = this.acked.filter((a) => a.at <= fail).at(-1);
    const after = this.acked.find((a) => a.at > fail);
    return before === undefined || after === undefined ? Number.NaN : after.at - before.at;
  }
}

async function onPrimary(ctx: Ctx, creds: Creds, sql: string): Promise<pg.QueryResult> {
  const v = await ctx.dcs.readCluster(ctx.fallback);
  const leader = leaderMember(v);
  if (leader === undefined) throw new PgHaError('PGHA_CLI_REFUSED', 'no leader');
  const i = leader.conn.lastIndexOf(':');
  const c = new pg.Client({ host: leader.conn.slice(0, i), port: Number(leader.conn.slice(i + 1)), ...creds, database: 'postgres', connectionTimeoutMillis: 3000 });
  c.on('error', () => undefined);
  await c.connect();
  try { return await c.query(sql); } finally { await c.end().catch(() => undefined); }
}

async function perform(ctx: Ctx, kind: Kind): Promise<void> {
  if (kind === 'switchover') { await requestHandover(ctx.dcs, { kind: 'switchover' }, ctx.fallback); return; }
  const v = await ctx.dcs.readCluster(ctx.fallback);
  const leader = leaderMember(v);
  if (leader === undefined) throw new PgHaError('PGHA_CLI_REFUSED', 'no leader');
  const r = await apiRequest(`${leader.apiUrl}/drill`, { body: { kind: kind === 'kill-primary' ? 'kill' : 'stop' }, auth: ctx.auth, member: leader.name, tls: ctx.tls, timeoutMs: 10_000 });
  if (r.status !== 200) throw new PgHaError('PGHA_CLI_REFUSED', `${leader.name}: HTTP ${r.status}`);
}

export const drillCommand: CommandModule<GlobalOpts, Opts> = {
  command: 'drill',
  describe: 'rehearse a failure through the agents and measure the outage and lost writes',
  builder: (y) => forceOption(y
    .option('kind', { choices: ['switchover', 'kill-primary', 'stop-primary'] as const, demandOption: true, describe: 'switchover: planned handover; kill-primary: SIGKILL the primary\'s PostgreSQL; stop-primary: stop it in immediate mode (the last two are unplanned failures, what pghactl availability needs)' })
    .option('count', { type: 'number', default: 1, describe: 'how many drills, one after another (the cluster heals in between)' }))
    .example('pghactl -c /etc/pgha/pgha.yml drill --kind kill-primary --count 3 --force', 'crash the primary three times, without asking, and report each outage')
    .example('pghactl -c /etc/pgha/pgha.yml drill --kind kill-primary --count 5 --format json --force > kill.json', 'the same as JSON, for pghactl availability --from-drill kill.json'),
  handler: async (argv) => {
    const path = configPath(argv);
    if (!Number.isInteger(argv.count) || argv.count < 1) throw new PgHaError('PGHA_CLI_USAGE', '--count: a whole number of drills, 1 or more');
    if (path === undefined) throw new PgHaError('PGHA_CLI_USAGE', 'drill needs -c/--config FILE or PGHA_CONFIG: it writes its probe rows as the superuser named there');
    const su = (await loadConfig(path)).postgresql.authentication.superuser;
    const creds = { user: su.username, password: su.password };
    await withCtx(argv, async (ctx) => {
      const first = await ctx.dcs.readCluster(ctx.fallback);
      const problem = healthyProblem(first);
      if (problem !== null) throw new PgHaError('PGHA_CLI_REFUSED', `refusing to drill: ${problem}`);
      await confirm(`Run ${argv.count} ${argv.kind} drill(s) on cluster ${ctx.scope}? Writes will pause for seconds.`, argv.force);
      let members = first.members;
      await onPrimary(ctx, creds, 'create schema if not exists pgha_drill; create table if not exists pgha_drill.probe (id int primary key, at timestamptz default now())');
      const probe = new DrillProbe(() => members, creds);
      const drills: Array<{ n: number; outage_s: number }> = [];
      probe.start();
      try {
        for (let n = 1; n <= argv.count; n++) {
          // A healed cluster again, and writes flowing, before each drill; 120 s covers a rebuild.
          const end = performance.now() + 120_000;
          for (;;) {
            const v = await ctx.dcs.readCluster(ctx.fallback);
            members = v.members;
            if (healthyProblem(v) === null && probe.acked.some((a) => a.at > performance.now() - 500)) break;
            if (performance.now() > end) throw new PgHaError('PGHA_CLI_REFUSED', `the cluster did not heal: ${healthyProblem(v) ?? 'no writes'}`);
            await sleep(200);
          }
          const t = performance.now();
          await perform(ctx, argv.kind);
          // The event has taken effect once a write failed after it, and is over once one succeeded again.
          while (performance.now() - t < 120_000) {
            const fail = probe.firstFailureAfter(t);
            if (fail !== null && probe.acked.some((a) => a.at > fail)) break;
            await sleep(50);
            members = (await ctx.dcs.readCluster(ctx.fallback)).members;
          }
          drills.push({ n, outage_s: probe.outage(t) / 1000 });
          if (argv.format === 'table') process.stdout.write(`drill ${n}: ${argv.kind}: write outage ${seconds(probe.outage(t) / 1000)}\n`);
        }
      } finally {
        await probe.stop();
      }
      const have = new Set((await onPrimary(ctx, creds, 'select id from pgha_drill.probe')).rows.map((r: { id: number }) => r.id));
      const lost = probe.acked.filter((a) => !have.has(a.id)).length;
      await onPrimary(ctx, creds, 'drop schema pgha_drill cascade');
      const sorted = drills.map((d) => d.outage_s).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
      // synchronous_mode at the start: pghactl availability advises on data loss for it.
      const summary = { kind: argv.kind, drills: drills.length, median_outage_s: sorted[Math.floor((sorted.length - 1) / 2)] ?? null, max_outage_s: sorted.at(-1) ?? null, acknowledged: probe.acked.length, lost_writes: lost, synchronous_mode: first.config.synchronous_mode };
      if (argv.format === 'json') process.stdout.write(`${JSON.stringify({ drills, summary }, null, 2)}\n`);
      else if (argv.format === 'yaml') process.stdout.write(stringify({ drills, summary }));
      else process.stdout.write(`summary: median outage ${seconds(summary.median_outage_s ?? Number.NaN)}, max ${seconds(summary.max_outage_s ?? Number.NaN)}, ${lost} of ${probe.acked.length} acknowledged writes lost\n`);
    });
  },
};
