// pghactl pause / resume / show-config / edit-config (flags, or $EDITOR with a diff and a question)
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { CommandModule } from 'yargs';
import { parse as parseYaml, stringify } from 'yaml';
import { apiRequest, jsonOf } from '../api/client.ts';
import { PgHaError } from '../errors.ts';
import { loadConfig, parseDynamicConfig } from '../config/load.ts';
import type { DynamicConfig } from '../config/schema.ts';
import { editConfig, mergePatch, parseAssignment, setPath, type ConfigEdit } from '../ops/store.ts';
import { leaderCheck, type LogicalCheck } from '../slots/check.ts';
import { configPath, withCtx, type Ctx, type GlobalOpts } from './context.ts';
import { confirm, forceOption } from './confirm.ts';
import { unifiedDiff } from './diff.ts';
import { printResult } from './format.ts';

/** Poll every member's /status until all report `pause === want` (or the deadline passes). */
async function waitForPause(ctx: Ctx, want: boolean, timeoutMs: number): Promise<string[]> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const view = await ctx.dcs.readCluster(ctx.fallback);
    const states = await Promise.all(view.members.map(async (m) => {
      const r = await apiRequest(`${m.apiUrl}/status`, { tls: ctx.tls, timeoutMs: 1000 }).then(jsonOf, () => null);
      return r?.pause === want ? null : m.name;
    }));
    const pending = states.filter((s): s is string => s !== null);
    if (pending.length === 0 || performance.now() > end) return pending;
    await new Promise((r) => setTimeout(r, 250));
  }
}

function pauseCommand(pause: boolean): CommandModule<GlobalOpts, GlobalOpts & { wait?: boolean }> {
  return {
    command: pause ? 'pause' : 'resume',
    describe: pause ? 'maintenance mode: no automatic failover, demotion, restart or fencing' : 'leave maintenance mode',
    builder: (y) => y.option('wait', { type: 'boolean', describe: 'return once every member has acknowledged' }),
    handler: async (argv) => {
      await withCtx(argv, async (ctx) => {
        // Unpaused, the leader would start PostgreSQL over a restore in progress (docs/backup.md).
        if (!pause && (await ctx.dcs.readRestoreRecord()).value !== undefined) {
          throw new PgHaError('PGHA_RESTORE_IN_PROGRESS', 'a restore is recorded in etcd (/restore): finish it (pghactl restore --resume) or drop it (pghactl restore --abort) before resuming');
        }
        await editConfig(ctx.dcs, (c) => ({ ...c, pause }), ctx.fallback, pause ? 'pause' : 'resume');
        // Each agent reads /config once per loop: 30 s is many loops, even on a loaded host.
        const pending = argv.wait ? await waitForPause(ctx, pause, 30_000) : [];
        if (pending.length > 0) throw new PgHaError('PGHA_CLI_REFUSED', `not acknowledged by: ${pending.join(', ')}`);
        printResult(argv.format, { pause }, pause ? 'cluster paused (maintenance mode)' : 'cluster resumed');
      });
    },
  };
}

export const pauseCmd = pauseCommand(true);
export const resumeCmd = pauseCommand(false);

export const showConfigCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'show-config',
  describe: 'the cluster-wide dynamic configuration in etcd',
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      process.stdout.write(argv.format === 'json' ? `${JSON.stringify(view.config, null, 2)}\n` : stringify(view.config));
    });
  },
};

/**
 * Logical slots and publications are checked on the leader as the superuser of the agent YAML
 * (-c, PGHA_CONFIG); without one, an edit that touches them is refused (PGHA_LOGICAL_UNCHECKED).
 */
async function cliLogicalCheck(argv: GlobalOpts): Promise<LogicalCheck> {
  const path = configPath(argv);
  if (path === undefined) {
    return async () => { throw new PgHaError('PGHA_LOGICAL_UNCHECKED', 'logical slots and publications are checked on the leader as the superuser of the agent YAML: give it with -c (or PGHA_CONFIG)'); };
  }
  return leaderCheck((await loadConfig(path)).postgresql.authentication.superuser);
}

type EditOpts = GlobalOpts & { set?: string[]; pg?: string[]; apply?: string; force: boolean | undefined };

/** The editor command: $VISUAL, else $EDITOR, else vi; split on blanks (no shell), e.g. "code --wait". */
export function editorCommand(env: NodeJS.ProcessEnv = process.env): string[] {
  const words = (env['VISUAL'] || env['EDITOR'] || 'vi').trim().split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : ['vi'];
}

function runEditor(file: string): Promise<void> {
  const [cmd, ...args] = editorCommand();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd!, [...args, file], { stdio: 'inherit' });
    p.on('error', (err) => reject(new PgHaError('PGHA_CLI_USAGE', `cannot run the editor ${cmd}: ${err.message} (set EDITOR)`)));
    p.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new PgHaError('PGHA_CLI_REFUSED', `the editor ${cmd} exited with ${signal ?? code}: nothing changed`))));
  });
}

/** Open the configuration in the editor; the edited document, or null when it was left as it was. */
async function editInEditor(before: DynamicConfig): Promise<{ text: string; doc: Record<string, unknown> } | null> {
  // A private directory (0700) for the file: the configuration may name paths and commands.
  const dir = await mkdtemp(join(tmpdir(), 'pghactl-edit-'));
  const file = join(dir, 'config.yaml');
  try {
    const original = stringify(before);
    await writeFile(file, original, { mode: 0o600 });
    await runEditor(file);
    const text = await readFile(file, 'utf8');
    if (text === original) return null;
    let doc: unknown;
    try { doc = parseYaml(text); } catch (err) {
      throw new PgHaError('PGHA_CONFIG_INVALID', `the edited configuration is not valid YAML, nothing changed: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new PgHaError('PGHA_CLI_USAGE', 'the edited configuration is not a YAML mapping: nothing changed');
    return { text, doc: doc as Record<string, unknown> };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function editInteractively(ctx: Ctx, argv: EditOpts): Promise<void> {
  const before = (await ctx.dcs.readCluster(ctx.fallback)).config;
  const edited = await editInEditor(before);
  if (edited === null) { printResult(argv.format, { changed: false }, 'no changes'); return; }
  // Validated before the question: a mistake is reported without asking first.
  const after = parseDynamicConfig(edited.doc, 'the edited configuration');
  const diff = unifiedDiff(stringify(before), stringify(after));
  if (diff === '') { printResult(argv.format, { changed: false }, 'no changes'); return; }
  process.stderr.write(diff);
  await confirm('Apply these changes?', argv.force);
  const check = await cliLogicalCheck(argv);
  const r = await editConfig(ctx.dcs, (c) => {
    // Compare-and-set against what was edited: a change made meanwhile is not overwritten.
    if (!isDeepStrictEqual(c, before)) throw new PgHaError('PGHA_CLI_REFUSED', 'the configuration changed in etcd while you edited it: nothing applied, run edit-config again');
    return after as unknown as Record<string, unknown>;
  }, ctx.fallback, 'the edited configuration', false, check);
  printResult(argv.format, r.after, stringify(r.after).trimEnd());
}

export const editConfigCommand: CommandModule<GlobalOpts, EditOpts> = {
  command: 'edit-config',
  describe: 'change the dynamic configuration (validated, compare-and-set); without --set/--pg/--apply in $EDITOR, with a diff and a question',
  builder: (y) => forceOption(y
    .option('set', { type: 'string', array: true, describe: 'key=value, e.g. ttl=5 or postgresql.use_slots=false' })
    .option('pg', { type: 'string', array: true, describe: 'PostgreSQL parameter name=value' })
    .option('apply', { type: 'string', describe: 'a YAML file merged into the configuration' }), 'in the editor: apply the diff without asking (needed without a terminal)')
    .example('pghactl -c /etc/pgha/pgha.yml edit-config', 'open the configuration in $EDITOR, show the diff, ask before applying')
    .example('pghactl -c /etc/pgha/pgha.yml edit-config --set ttl=30 --pg work_mem=8MB', 'change two settings, no editor')
    .example('EDITOR=ed-script pghactl -c /etc/pgha/pgha.yml edit-config --force', 'the editor way without a terminal'),
  handler: async (argv) => {
    const edits: ConfigEdit[] = [];
    for (const s of argv.set ?? []) { const a = parseAssignment(s); edits.push((c) => setPath(c, a.path, a.value)); }
    for (const s of argv.pg ?? []) { const a = parseAssignment(s); edits.push((c) => setPath(c, ['postgresql', 'parameters', a.path.join('.')], a.value)); }
    if (argv.apply !== undefined) {
      const doc = parseYaml(await readFile(argv.apply, 'utf8')) as unknown;
      if (typeof doc !== 'object' || doc === null) throw new PgHaError('PGHA_CLI_USAGE', `${argv.apply}: not a YAML mapping`);
      edits.push((c) => mergePatch(c, doc as Record<string, unknown>));
    }
    if (edits.length === 0) { await withCtx(argv, (ctx) => editInteractively(ctx, argv)); return; }
    await withCtx(argv, async (ctx) => {
      const { after } = await editConfig(ctx.dcs, (c) => edits.reduce((acc, e) => e(acc), c), ctx.fallback, 'edit-config', false, await cliLogicalCheck(argv));
      printResult(argv.format, after, stringify(after).trimEnd());
    });
  },
};
