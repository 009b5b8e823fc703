// pghactl verify: is every standby (or a logical subscriber) the same as the leader? Table by
// table, chunk by primary-key range (src/verify/). Exit codes: 0 the same, 3 a difference, 4 part
// could not be checked, 1 refused or failed before checking, 2 usage. A physical standby with a
// difference is marked unsafe in etcd (never promoted); --repair offers its reinit, or copies the
// differing rows to a subscriber. The argument for correctness is in docs/consistency.md.
import type pg from 'pg';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.ts';
import { PgHaError, isPgHaError } from '../errors.ts';
import type { ClusterView, MemberInfo } from '../ha/types.ts';
import { repairChunk } from '../verify/repair.ts';
import { renderJson, renderText, summarize, exitCode, differentSides, progressLine, type SideReport } from '../verify/report.ts';
import { verifyTable, type Side, type VerifyOptions } from '../verify/run.ts';
import { connectMember, connectString, findSubscription, logicalSide, physicalSide, type Limits, type Login } from '../verify/sides.ts';
import { listTables, type TableInfo } from '../verify/sql.ts';
import { confirm, forceOption } from './confirm.ts';
import { configPath, withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { postToMember } from './members.ts';
import { waitForMember } from './wait.ts';
import { leaderMember, memberByName } from '../ha/view.ts';

type VerifyOpts = GlobalOpts & {
  member?: string[]; subscriber?: string; subscription?: string; dbname?: string[]; table?: string[]; schema?: string[];
  chunkRows: number; rate: number; rateUnit: 'rows' | 'chunks'; statementTimeout: number; replayTimeout: number; attempts: number;
  repair?: boolean; force?: boolean; username?: string; timeout: number;
};

/** Why verify must not run (or go on) now, or null. Pure. */
export function busyProblem(view: ClusterView, leader: string | null): string | null {
  if (view.leader === null) return 'the cluster has no leader';
  if (leader !== null && view.leader.name !== leader) return `the leader changed (${leader} -> ${view.leader.name})`;
  const lm = leaderMember(view);
  if (lm === undefined || lm.role !== 'primary' || lm.state !== 'running') return `the leader ${view.leader.name} is not a running primary`;
  if (view.failover !== null) return `a ${view.failover.kind} is pending (pghactl flush --scheduled cancels it)`;
  const busy = view.members.find((m) => m.state === 'cloning' || m.state === 'rewinding' || m.state === 'bootstrapping');
  if (busy !== undefined) return `${busy.name} is ${busy.state === 'cloning' ? 'being reinitialized (cloning)' : busy.state}`;
  return null;
}

/** The standbys to compare: --member names, else every standby. Refuses a member that is not a running standby. */
export function targetStandbys(view: ClusterView, names: string[]): MemberInfo[] {
  const leader = view.leader?.name;
  for (const n of names) {
    const m = memberByName(view, n);
    if (m === undefined) throw new PgHaError('PGHA_CLI_REFUSED', `${n} is not a member`);
    if (n === leader) throw new PgHaError('PGHA_CLI_REFUSED', `${n} is the leader: name a standby`);
  }
  const picked = view.members.filter((m) => m.name !== leader && (names.length === 0 || names.includes(m.name)));
  for (const m of picked) {
    if (m.role !== 'standby' || (m.state !== 'streaming' && m.state !== 'running')) throw new PgHaError('PGHA_CLI_REFUSED', `${m.name} is not a running standby (state ${m.state})`);
  }
  if (picked.length === 0) throw new PgHaError('PGHA_CLI_REFUSED', 'no standby to compare');
  return picked;
}

/** --table (name or schema.name) and --schema narrow the tables; nothing given: all. */
export function selectTables(all: TableInfo[], tables: string[], schemas: string[]): TableInfo[] {
  return all.filter((t) => (schemas.length === 0 || schemas.includes(t.schema))
    && (tables.length === 0 || tables.includes(t.name) || tables.includes(`${t.schema}.${t.name}`)));
}

async function databases(leader: pg.Client): Promise<string[]> {
  const r = await leader.query('select datname from pg_database where datallowconn and not datistemplate order by 1');
  return r.rows.map((x: { datname: string }) => x.datname);
}

async function publishedTables(leader: pg.Client, pubs: string[]): Promise<Set<string>> {
  const r = await leader.query('select schemaname, tablename from pg_publication_tables where pubname = any($1::text[])', [pubs]);
  return new Set(r.rows.map((x: { schemaname: string; tablename: string }) => `${x.schemaname}.${x.tablename}`));
}

interface Run { ctx: Ctx; argv: VerifyOpts; login: Login; limits: Limits; opts: VerifyOptions; leader: MemberInfo; progress: (table: string) => void; estimate: (rows: number) => void }

/** One side, one database: every selected table; an abort ends this side with the reason. */
async function verifySide(run: Run, db: string, open: () => Promise<{ side: Side; repairable: boolean; only?: Set<string> }>, report: SideReport): Promise<void> {
  const { argv } = run;
  let leader: pg.Client | null = null;
  let side: Side | null = null;
  try {
    leader = await connectMember(run.leader.conn, db, run.login, run.limits, `leader ${run.leader.name}`);
    const o = await open();
    side = o.side;
    const tables = selectTables(await listTables(leader), argv.table ?? [], argv.schema ?? []).filter((t) => o.only === undefined || o.only.has(`${t.schema}.${t.name}`));
    run.estimate(tables.reduce((a, t) => a + t.estRows, 0));
    const clock = { start: performance.now(), units: 0 };
    for (const t of tables) {
      const p = busyProblem(await run.ctx.dcs.readCluster(run.ctx.fallback), run.leader.name);
      if (p !== null) throw new PgHaError('PGHA_VERIFY_ABORTED', p);
      run.progress(`${t.schema}.${t.name}`);
      const res = await verifyTable(leader, side, t, run.opts, clock);
      report.tables.push(res);
      if (argv.repair && o.repairable) {
        for (const c of res.problems.filter((x) => x.status === 'different')) {
          const done = await repairChunk(leader, side.client, t, c);
          c.message = `${c.message ? `${c.message}; ` : ''}repaired: ${done.deleted} rows deleted, ${done.inserted} copied from the publisher`;
        }
      }
    }
  } catch (err) {
    if (!isPgHaError(err)) throw err;
    report.aborted = err.message;
  } finally {
    await leader?.end().catch(() => undefined);
    await side?.client.end().catch(() => undefined);
  }
}

export const verifyCommand: CommandModule<GlobalOpts, VerifyOpts> = {
  command: 'verify',
  describe: 'compare every table of the standbys (or a logical subscriber) with the leader; exit 3: different, 4: not all checked',
  // yargs types the dashed options under their dashed names; the handler reads the camelCase twins.
  builder: ((y: import('yargs').Argv<GlobalOpts>) => forceOption(y
    .option('member', { alias: 'm', type: 'string', array: true, describe: 'compare these standbys (default: every standby)' })
    .option('subscriber', { type: 'string', describe: 'compare a logical subscriber instead: its connection string (libpq URI or key=value)' })
    .option('subscription', { type: 'string', describe: 'with --subscriber: the subscription to compare (default: the only one in that database)' })
    .option('dbname', { alias: 'd', type: 'string', array: true, describe: 'databases to compare (default: every database; with --subscriber: postgres)' })
    .option('table', { alias: 't', type: 'string', array: true, describe: 'only these tables (name or schema.name)' })
    .option('schema', { type: 'string', array: true, describe: 'only the tables of these schemas' })
    .option('chunk-rows', { type: 'number', default: 5000, describe: 'rows per chunk (primary-key range)' })
    .option('rate', { type: 'number', default: 0, describe: 'at most this many rows (or chunks, --rate-unit) per second read from the leader; 0: no limit' })
    .option('rate-unit', { choices: ['rows', 'chunks'] as const, default: 'rows' as const, describe: 'unit of --rate' })
    .option('statement-timeout', { type: 'number', default: 30, describe: 'seconds one verify statement may run on any server' })
    // A standby normally replays within milliseconds; 30 s covers a loaded or briefly lagging one.
    .option('replay-timeout', { type: 'number', default: 30, describe: 'seconds a standby may take to replay the leader position a chunk waits for' })
    .option('attempts', { type: 'number', default: 5, describe: 'row-by-row comparisons of a differing chunk before it counts as not settled' })
    .option('repair', { type: 'boolean', describe: 'physical standby: reinit each one that differs (asks first); subscriber: copy the differing rows from the publisher' })
    // A reinit copies the whole database: 600 s is about 30 GB at 50 MB/s.
    .option('timeout', { type: 'number', default: 600, describe: 'with --repair: seconds to wait for a reinitialized standby to stream' })
    .option('username', { alias: 'U', type: 'string', describe: 'connect as this user (default: the YAML\'s superuser; its password from PGPASSWORD or ~/.pgpass)' }), 'with --repair: do not ask before a reinit')
    .example('pghactl -c /etc/pgha/pgha.yml verify', 'compare every standby with the leader')
    .example('pghactl verify -m node2 --table public.accounts --rate 20000', 'one table on node2, at most 20000 rows/s')
    .example('pghactl verify -m node3 --repair --force', 'compare node3, and reinit it without asking if it differs')
    .example('pghactl verify --subscriber "host=10.0.0.9 dbname=app user=postgres" -d app --repair', 'compare a subscriber and copy the differing rows')) as never,
  handler: async (argv) => {
    for (const [k, v] of [['chunk-rows', argv.chunkRows], ['statement-timeout', argv.statementTimeout], ['replay-timeout', argv.replayTimeout], ['attempts', argv.attempts], ['timeout', argv.timeout]] as const) {
      if (!(v > 0)) throw new PgHaError('PGHA_CLI_USAGE', `--${k}: a positive number`);
    }
    if (!(argv.rate >= 0)) throw new PgHaError('PGHA_CLI_USAGE', '--rate: 0 or a positive number');
    if (argv.subscriber !== undefined && argv.member !== undefined) throw new PgHaError('PGHA_CLI_USAGE', '--subscriber and --member exclude each other');
    const path = configPath(argv);
    const su = path === undefined ? undefined : (await loadConfig(path)).postgresql.authentication.superuser;
    const user = argv.username ?? su?.username ?? 'postgres';
    const login: Login = { user, password: su !== undefined && su.username === user ? su.password : undefined };
    const limits: Limits = { statementTimeoutMs: argv.statementTimeout * 1000, lockTimeoutMs: Math.min(5000, argv.statementTimeout * 1000) };
    const started = performance.now();
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      const busy = busyProblem(view, null);
      if (busy !== null) throw new PgHaError('PGHA_CLI_REFUSED', `not verifying now: ${busy}`);
      const leader = leaderMember(view) as MemberInfo;
      const standbys = argv.subscriber === undefined ? targetStandbys(view, argv.member ?? []) : [];
      const tty = process.stderr.isTTY === true && argv.format === 'table';
      let rows = 0; let bytesDone = 0; let est = 0; let current = '';
      const draw = () => { if (tty) process.stderr.write(progressLine(rows, est, bytesDone, current, (performance.now() - started) / 1000)); };
      const opts: VerifyOptions = {
        chunkRows: argv.chunkRows, rate: argv.rate, rateUnit: argv.rateUnit, attempts: argv.attempts,
        // 50 ms, doubling: five attempts span about 1.5 s, long enough for a burst of writes to pass.
        backoffMs: 50, maxNoPkBytes: 256 * 1024 * 1024,
        onChunk: (n, b) => { rows += n; bytesDone += b; draw(); },
      };
      const run: Run = { ctx, argv, login, limits, opts, leader, progress: (t) => { current = t; draw(); }, estimate: (n) => { est += n; } };
      const reports: SideReport[] = [];
      // The progress bar's total grows by the leader's row estimates (pg_class.reltuples) as each side starts.
      const probe = await connectMember(leader.conn, 'postgres', login, limits, `leader ${leader.name}`);
      let dbs: string[];
      try {
        dbs = argv.dbname ?? (argv.subscriber !== undefined ? ['postgres'] : await databases(probe));
      } finally { await probe.end().catch(() => undefined); }
      if (argv.subscriber !== undefined) {
        const conn = argv.subscriber;
        const report: SideReport = { side: 'subscriber', kind: 'logical', database: dbs[0]!, tables: [] };
        await verifySide(run, dbs[0]!, async () => {
          const client = await connectString(conn, limits, 'subscriber');
          const sub = await findSubscription(client, argv.subscription);
          const lc = await connectMember(leader.conn, dbs[0]!, login, limits, `leader ${leader.name}`);
          try {
            const only = await publishedTables(lc, sub.publications);
            // 2 s: a subscriber applies a commit within milliseconds; a quiet publisher never passes the position.
            return { side: logicalSide(client, sub, 2000), repairable: true, only };
          } finally { await lc.end().catch(() => undefined); }
        }, report);
        reports.push(report);
      } else {
        for (const m of standbys) {
          for (const db of dbs) {
            const report: SideReport = { side: m.name, kind: 'physical', database: db, tables: [] };
            await verifySide(run, db, async () => ({ side: physicalSide(m.name, await connectMember(m.conn, db, login, limits, m.name), argv.replayTimeout * 1000), repairable: false }), report);
            reports.push(report);
          }
        }
      }
      if (tty) process.stderr.write('\r'.padEnd(121) + '\r');
      const summary = summarize(reports, (performance.now() - started) / 1000);
      const differ = differentSides(reports).filter((s) => s !== 'subscriber');
      const marks: Record<string, string> = {};
      for (const name of differ) {
        const found = reports.filter((r) => r.side === name).flatMap((r) => r.tables.filter((t) => t.problems.some((c) => c.status === 'different')).map((t) => `${r.database}:${t.table}`));
        await ctx.dcs.markUnsafe(name, { at: Date.now(), reason: `pghactl verify: differs from ${leader.name} in ${found.join(', ')}`.slice(0, 2000) });
        marks[name] = 'marked unsafe';
      }
      // A complete, clean check of every table of every database lifts an earlier mark.
      const full = argv.table === undefined && argv.schema === undefined && argv.dbname === undefined;
      for (const m of standbys) {
        const mine = reports.filter((r) => r.side === m.name);
        const clean = mine.every((r) => r.aborted === undefined && r.tables.every((t) => t.problems.length === 0));
        if (full && clean && view.unsafe?.[m.name] !== undefined && (await ctx.dcs.clearUnsafe(m.name))) marks[m.name] = 'unsafe mark cleared';
      }
      const out = argv.format === 'json' ? renderJson(reports, summary, { marks }) : argv.format === 'yaml' ? stringify({ summary, sides: reports, marks }) : renderText(reports, summary) + Object.entries(marks).map(([k, v]) => `${k}: ${v}\n`).join('');
      process.stdout.write(out);
      let code = exitCode(reports, summary);
      if (argv.repair && differ.length > 0) {
        for (const name of differ) {
          const m = memberByName(view, name) as MemberInfo;
          await confirm(`${name} differs from the leader: reinit it (its data directory is wiped and cloned afresh)?`, argv.force);
          const t0 = performance.now();
          await postToMember(ctx, m, '/reinitialize');
          await waitForMember(m, false, performance.now(), argv.timeout * 1000, 'wiped, but', ctx.tls);
          process.stderr.write(`${name}: reinitialized in ${((performance.now() - t0) / 1000).toFixed(1)} s; run pghactl verify again to confirm\n`);
        }
      }
      if (argv.repair && argv.subscriber !== undefined && code === 3) process.stderr.write('subscriber: differing rows copied from the publisher; run pghactl verify again to confirm\n');
      process.exitCode = code;
    });
  },
};
