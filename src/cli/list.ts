// pghactl list [--watch SECONDS]
import type { CommandModule } from 'yargs';
import { withCtx, type GlobalOpts } from './context.ts';
import { buildListRows, renderList, renderTopology } from './format.ts';

export const listCommand: CommandModule<GlobalOpts, GlobalOpts & { watch?: number }> = {
  command: 'list',
  describe: 'members with role, state, timeline and lag',
  builder: (y) => y.option('watch', { alias: 'w', type: 'number', describe: 'reprint every N seconds' }),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      for (;;) {
        const view = await ctx.dcs.readCluster(ctx.fallback);
        const out = renderList(ctx.scope, view, buildListRows(view), argv.format, process.stdout.isTTY === true);
        process.stdout.write(argv.watch ? `\x1b[2J\x1b[H${out}` : out);
        if (!argv.watch) return;
        await new Promise((r) => setTimeout(r, (argv.watch ?? 1) * 1000));
      }
    });
  },
};

export const topologyCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'topology',
  describe: 'the members as a tree (standbys under their upstream)',
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      process.stdout.write(argv.format === 'table' ? renderTopology(ctx.scope, view) : renderList(ctx.scope, view, buildListRows(view), argv.format, false));
    });
  },
};
