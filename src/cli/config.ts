// pghactl pause / resume / show-config / edit-config
import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { parse as parseYaml, stringify } from 'yaml';
import { apiRequest, jsonOf } from '../api/client.ts';
import { PgHaError } from '../errors.ts';
import { editConfig, mergePatch, parseAssignment, setPath, type ConfigEdit } from '../ops/store.ts';
import { withCtx, type Ctx, type GlobalOpts } from './context.ts';
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

type EditOpts = GlobalOpts & { set?: string[]; pg?: string[]; apply?: string };

export const editConfigCommand: CommandModule<GlobalOpts, EditOpts> = {
  command: 'edit-config',
  describe: 'change the dynamic configuration (validated, compare-and-set)',
  builder: (y) => y
    .option('set', { type: 'string', array: true, describe: 'key=value, e.g. ttl=5 or postgresql.use_slots=false' })
    .option('pg', { type: 'string', array: true, describe: 'PostgreSQL parameter name=value' })
    .option('apply', { type: 'string', describe: 'a YAML file merged into the configuration' }),
  handler: async (argv) => {
    const edits: ConfigEdit[] = [];
    for (const s of argv.set ?? []) { const a = parseAssignment(s); edits.push((c) => setPath(c, a.path, a.value)); }
    for (const s of argv.pg ?? []) { const a = parseAssignment(s); edits.push((c) => setPath(c, ['postgresql', 'parameters', a.path.join('.')], a.value)); }
    if (argv.apply !== undefined) {
      const doc = parseYaml(await readFile(argv.apply, 'utf8')) as unknown;
      if (typeof doc !== 'object' || doc === null) throw new PgHaError('PGHA_CLI_USAGE', `${argv.apply}: not a YAML mapping`);
      edits.push((c) => mergePatch(c, doc as Record<string, unknown>));
    }
    if (edits.length === 0) throw new PgHaError('PGHA_CLI_USAGE', 'give --set, --pg or --apply');
    await withCtx(argv, async (ctx) => {
      const { after } = await editConfig(ctx.dcs, (c) => edits.reduce((acc, e) => e(acc), c), ctx.fallback, 'edit-config');
      printResult(argv.format, after, stringify(after).trimEnd());
    });
  },
};
