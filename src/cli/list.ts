// pghactl list [-W | --watch SECONDS] / topology (src/cli/topology.ts)
import type { CommandModule } from 'yargs';
import { withCtx, type GlobalOpts } from './context.ts';
import { buildListRows, renderList } from './format.ts';
import { buildTopology, renderTopology } from './topology.ts';
import { apiRequest, jsonOf } from '../api/client.ts';
import { archiveWarning, type ArchiveHealth } from '../backup/health.ts';
import type { ClusterView } from '../ha/types.ts';
import { timingAdvice } from './timing-advice.ts';
import type { ClientTls } from '../api/tls.ts';

/** A /status read for the archive banner: 1.5 s, so one dead member delays the table little. */
const STATUS_MS = 1500;

/**
 * Warning lines about WAL archiving (backup: configured): each member's /status carries its
 * archive health; a member that does not answer, or has no backup: section, adds nothing.
 */
export async function archiveBanner(view: ClusterView, tls: ClientTls | undefined): Promise<string> {
  const lines = await Promise.all(view.members.map(async (m) => {
    try {
      const r = await apiRequest(`${m.apiUrl}/status`, { tls, timeoutMs: STATUS_MS });
      const a = jsonOf(r).archive as ArchiveHealth | null | undefined;
      return archiveWarning(m.name, a ?? null);
    } catch {
      return null;
    }
  }));
  return lines.filter((l) => l !== null).map((l) => ` ${l}\n`).join('');
}

/** patronictl's -W: reprint every 2 seconds. */
export const WATCH_DEFAULT_S = 2;

/** Seconds between reprints: --watch N wins, -W means WATCH_DEFAULT_S, neither means print once. */
export function watchInterval(o: { watch?: number | undefined; W?: boolean | undefined }): number | null {
  if (o.watch !== undefined && o.watch > 0) return o.watch;
  return o.W ? WATCH_DEFAULT_S : null;
}

export const listCommand: CommandModule<GlobalOpts, GlobalOpts & { watch?: number; W?: boolean }> = {
  command: 'list',
  describe: 'members with role, state, timeline and lag',
  builder: (y) => y
    .option('watch', { alias: 'w', type: 'number', describe: 'reprint every N seconds (until interrupted)' })
    .option('W', { type: 'boolean', describe: `reprint every ${WATCH_DEFAULT_S} seconds (patronictl's -W)` })
    .example('pghactl -c /etc/pgha/pgha.yml list -W', `the member table, redrawn every ${WATCH_DEFAULT_S} s`),
  handler: async (argv) => {
    const every = watchInterval(argv);
    await withCtx(argv, async (ctx) => {
      for (;;) {
        const view = await ctx.dcs.readCluster(ctx.fallback);
        const table = renderList(ctx.scope, view, buildListRows(view), argv.format, process.stdout.isTTY === true);
        const out = argv.format === 'table' ? table + await archiveBanner(view, ctx.tls) + timingAdvice(view) : table;
        // On a terminal the screen is cleared before each table; piped output just appends.
        process.stdout.write(every !== null && process.stdout.isTTY ? `\x1b[2J\x1b[H${out}` : out);
        if (every === null) return;
        await new Promise((r) => setTimeout(r, every * 1000));
      }
    });
  },
};

export const topologyCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'topology',
  describe: 'the replication tree as observed (each standby under the member it streams from)',
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      process.stdout.write(renderTopology(buildTopology(ctx.scope, view), argv.format, process.stdout.isTTY === true));
    });
  },
};
