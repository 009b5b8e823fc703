// pghactl backup [list|expire]: pgBackRest backups run by the agents (docs/backup.md). A backup
// runs on the leader, or with --standby on a streaming standby, through that member's REST API
// (POST /backup, then GET /backup for its progress); list and expire ask the leader.
import Table from 'cli-table3';
import type { CommandModule } from 'yargs';
import { apiRequest, jsonOf } from '../api/client.ts';
import { loadConfig } from '../config/load.ts';
import { PgHaError, type ErrorCode } from '../errors.ts';
import type { ClusterView, MemberInfo } from '../ha/types.ts';
import { bytes, seconds } from '../human.ts';
import { configPath, withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { printResult, renderTsv } from './format.ts';
import type { BackupJob } from '../backup/jobs.ts';
import type { BackupSummary, StanzaInfo } from '../backup/info.ts';
import { stringify } from 'yaml';
import { restorePointName } from '../backup/config.ts';
import { leaderMember } from '../ha/view.ts';

/** One REST call to an agent: a start or a progress read answers at once; `info`/`expire` run pgbackrest (its own 60 s and 10 min limits). */
async function call(ctx: Ctx, m: MemberInfo, path: string, o: { body?: unknown; timeoutMs: number }): Promise<Record<string, unknown>> {
  const r = await apiRequest(`${m.apiUrl}${path}`, { ...o, auth: ctx.auth, member: m.name, tls: ctx.tls })
    .catch((err: unknown) => { throw new PgHaError('PGHA_CLI_REFUSED', `${m.name}: ${m.apiUrl}: ${(err as Error).message}`, { cause: err }); });
  const b = jsonOf(r);
  if (r.status < 200 || r.status > 299) {
    const passed: ErrorCode[] = ['PGHA_BACKUP_BUSY', 'PGHA_BACKUP_NOT_CONFIGURED', 'PGHA_BACKUP_COMMAND'];
    const code = passed.find((c) => c === b.error) ?? 'PGHA_CLI_REFUSED';
    throw new PgHaError(code, `${m.name}: HTTP ${r.status}: ${String(b.message ?? b.error ?? '')}`);
  }
  return b;
}

/** The member a backup runs on: the leader, or (standby) the streaming standby closest to it. */
export function backupMember(view: ClusterView, standby: boolean): MemberInfo {
  const leader = leaderMember(view);
  if (!standby) {
    if (leader === undefined) throw new PgHaError('PGHA_CLI_REFUSED', 'the cluster has no leader: no backup can start');
    return leader;
  }
  const healthy = view.members.filter((m) => m.name !== view.leader?.name && m.state === 'streaming').sort((a, b) => (b.lsn ?? 0) - (a.lsn ?? 0) || a.name.localeCompare(b.name));
  const m = healthy[0];
  if (m === undefined) throw new PgHaError('PGHA_CLI_REFUSED', 'no standby is streaming: a standby backup needs a healthy standby (or run it on the leader without --standby)');
  return m;
}

function leaderOf(view: ClusterView): MemberInfo {
  return backupMember(view, false);
}

/** How often the progress is read while a backup runs. */
const POLL_MS = 1000;
/** A progress read or a start answers from memory: 10 s covers a loaded agent. */
const QUICK_MS = 10_000;

type BackupOpts = GlobalOpts & { action?: 'list' | 'expire'; type: 'full' | 'diff' | 'incr'; standby?: boolean; 'if-member'?: boolean; timeout: number };

export const backupCommand: CommandModule<GlobalOpts, BackupOpts> = {
  command: 'backup [action]',
  describe: 'take a pgBackRest backup (on the leader, or --standby), or list / expire the backups',
  builder: (y) => y
    .positional('action', { choices: ['list', 'expire'] as const, describe: 'list: the backups in the repository; expire: apply the retention now' })
    .option('type', { choices: ['full', 'diff', 'incr'] as const, default: 'full' as const, describe: 'backup type' })
    .option('standby', { type: 'boolean', describe: 'copy the files from a streaming standby (pgBackRest backup-standby; needs backup.peers)' })
    .option('if-member', { type: 'boolean', describe: 'for a timer on every host: run only if the member of this host\'s YAML (-c) is the one that should run it; else print why not and exit 0' })
    // A backup copies the whole database: 6 h covers about 1 TB at 50 MB/s.
    .option('timeout', { type: 'number', default: 6 * 3600, describe: 'seconds to wait for the backup to finish' })
    .example('pghactl -c /etc/pgha/pgha.yml backup --type diff', 'a differential backup on the leader, with progress')
    .example('pghactl backup list -f json', 'the backups, for scripts'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      if (argv.action === 'list') return list(ctx, view, argv);
      if (argv.action === 'expire') {
        const m = leaderOf(view);
        const r = await call(ctx, m, '/backup/expire', { body: {}, timeoutMs: 700_000 });
        const expired = (r.expired as string[] | undefined) ?? [];
        printResult(argv.format, r, `expire on ${m.name}: ${expired.length === 0 ? 'nothing to expire' : `removed ${expired.join(', ')}`}; kept ${((r.kept as string[] | undefined) ?? []).join(', ') || 'none'}`);
        return;
      }
      const m = backupMember(view, argv.standby === true);
      if (argv['if-member'] === true) {
        const path = configPath(argv);
        if (path === undefined) throw new PgHaError('PGHA_CLI_USAGE', '--if-member needs the agent YAML (-c or PGHA_CONFIG): it names this host\'s member');
        const self = (await loadConfig(path)).name;
        if (self !== m.name) {
          printResult(argv.format, { skipped: true, member: self, runs_on: m.name }, `backup: not run here (${self}); it runs on ${m.name}`);
          return;
        }
      }
      await runBackup(ctx, m, argv);
    });
  },
};

async function runBackup(ctx: Ctx, m: MemberInfo, argv: BackupOpts): Promise<void> {
  const started = await call(ctx, m, '/backup', { body: { type: argv.type, standby: argv.standby === true }, timeoutMs: QUICK_MS });
  const id = (started.job as BackupJob).id;
  const deadline = performance.now() + argv.timeout * 1000;
  const tty = process.stderr.isTTY === true;
  let last = '';
  process.stderr.write(`backup ${argv.type} on ${m.name} started (job ${id})\n`);
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const job = (await call(ctx, m, '/backup', { timeoutMs: QUICK_MS })).job as BackupJob | null;
    if (job === null || job.id !== id) throw new PgHaError('PGHA_CLI_NOT_DONE', `${m.name} no longer reports backup job ${id} (did its agent restart?)`);
    const line = `${job.percent === null ? '...' : `${job.percent.toFixed(1)}%`} ${seconds(job.seconds)} ${job.lines.at(-1) ?? ''}`.slice(0, 160);
    if (line !== last && argv.format === 'table') process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    last = line;
    if (job.state === 'failed') {
      if (tty) process.stderr.write('\n');
      throw new PgHaError('PGHA_BACKUP_COMMAND', `backup on ${m.name} failed: ${job.error ?? 'unknown error'}`);
    }
    if (job.state === 'done') {
      if (tty) process.stderr.write('\n');
      const b = job.result;
      const sentence = b === null ? `backup done on ${m.name} in ${seconds(job.seconds)}`
        : `backup ${b.label} (${b.type}) done on ${m.name} in ${seconds(job.seconds)}: ${bytes(b.size)}${b.repo_size === null ? '' : ` (${bytes(b.repo_size)} in the repository)`}, WAL ${b.wal_start ?? '?'} .. ${b.wal_stop ?? '?'}`;
      printResult(argv.format, { member: m.name, seconds: job.seconds, backup: b }, sentence);
      return;
    }
    if (performance.now() > deadline) throw new PgHaError('PGHA_CLI_NOT_DONE', `backup on ${m.name} still running after ${argv.timeout} s (it goes on; pghactl backup list shows it once done)`);
  }
}

const LIST_HEAD = ['Label', 'Type', 'Started', 'Duration', 'Size', 'Repo size', 'WAL start', 'WAL stop'];

async function list(ctx: Ctx, view: ClusterView, argv: BackupOpts): Promise<void> {
  const m = leaderOf(view);
  const stanzas = ((await call(ctx, m, '/backup/info', { timeoutMs: 90_000 })).stanzas ?? []) as StanzaInfo[];
  const rows: BackupSummary[] = stanzas.flatMap((s) => s.backups);
  if (argv.format === 'json') { process.stdout.write(`${JSON.stringify(stanzas, null, 2)}\n`); return; }
  if (argv.format === 'yaml') { process.stdout.write(stringify(stanzas)); return; }
  const cells = rows.map((b) => [b.label, b.type, b.started, seconds(b.duration_s), bytes(b.size), b.repo_size === null ? '' : bytes(b.repo_size), b.wal_start ?? '', b.wal_stop ?? '']);
  if (argv.format === 'tsv') { process.stdout.write(renderTsv(LIST_HEAD, cells)); return; }
  const t = new Table({ head: LIST_HEAD, style: { head: [], border: [] } });
  for (const c of cells) t.push(c);
  const s = stanzas[0];
  const head = s === undefined ? '+ no stanza' : `+ Stanza: ${s.stanza} (${s.status}); WAL archive ${s.wal_min ?? '-'} .. ${s.wal_max ?? '-'}${s.running === null ? '' : '; a backup is running'}`;
  process.stdout.write(`${head}\n${t.toString()}\n`);
}

export const restorePointCommand: CommandModule<GlobalOpts, GlobalOpts & { name: string }> = {
  command: 'restore-point <name>',
  describe: 'create a named restore point on the leader (pg_create_restore_point) and archive it, for a restore to --type=name later',
  builder: (y) => y
    .positional('name', { type: 'string', demandOption: true, describe: 'the restore point: 1-63 letters, digits, _ . : -' })
    .example('pghactl restore-point before-migration-42', 'mark the WAL before a risky change'),
  handler: async (argv) => {
    const ok = restorePointName.safeParse(argv.name);
    if (!ok.success) throw new PgHaError('PGHA_CLI_USAGE', `restore-point: ${ok.error.issues[0]?.message ?? 'bad name'}`);
    await withCtx(argv, async (ctx) => {
      const m = leaderOf(await ctx.dcs.readCluster(ctx.fallback));
      const r = await call(ctx, m, '/backup/restore-point', { body: { name: argv.name }, timeoutMs: QUICK_MS });
      printResult(argv.format, r, `restore point ${String(r.name)} created on ${m.name} at ${String(r.lsn)} (${String(r.time)})`);
    });
  },
};
