// pghactl slots: every logical slot on every member, from each member's GET /status. On the
// leader, the position its consumer confirmed and the WAL written since (lag); on a standby, its
// copy and how far the copy is behind the leader's published position.
import Table from 'cli-table3';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { apiRequest, jsonOf } from '../api/client.ts';
import type { LogicalSlotStatus } from '../slots/types.ts';
import { withCtx, type GlobalOpts } from './context.ts';
import { renderTsv, type Format } from './format.ts';

export interface SlotLine {
  member: string;
  role: 'leader' | 'standby';
  slot: string;
  plugin: string | null;
  database: string | null;
  active: boolean;
  confirmed_flush_lsn: string | null;
  lag_bytes: number | null;
}

/** Rows from each member's logical_slots (pure); a member that did not answer has none. */
export function slotLines(statuses: Array<{ member: string; leader: boolean; slots: LogicalSlotStatus[] }>): SlotLine[] {
  return statuses.flatMap((s) => s.slots.map((x) => ({
    member: s.member, role: s.leader ? 'leader' as const : 'standby' as const, slot: x.name, plugin: x.plugin, database: x.database,
    active: x.active, confirmed_flush_lsn: x.confirmed_flush_lsn, lag_bytes: x.lag_bytes,
  })));
}

export function renderSlots(rows: SlotLine[], format: Format): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (format === 'yaml') return stringify(rows);
  const head = ['member', 'role', 'slot', 'plugin', 'database', 'active', 'confirmed_flush_lsn', 'lag_bytes'];
  const cells = rows.map((r) => [r.member, r.role, r.slot, r.plugin, r.database, r.active, r.confirmed_flush_lsn, r.lag_bytes]);
  if (format === 'tsv') return renderTsv(head, cells);
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const c of cells) t.push(c.map((v) => (v === null ? '' : String(v))));
  return `${t.toString()}\n`;
}

export const slotsCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'slots',
  describe: 'logical slots on every member: the consumer\'s confirmed position and lag (leader), the copies (standbys)',
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      const view = await ctx.dcs.readCluster(ctx.fallback);
      const statuses = await Promise.all(view.members.map(async (m) => {
        // 2 s: /status answers from the loop's snapshot, in milliseconds when the agent is alive.
        const body = await apiRequest(`${m.apiUrl}/status`, { tls: ctx.tls, timeoutMs: 2000 }).then(jsonOf, () => null) as { logical_slots?: LogicalSlotStatus[] } | null;
        return { member: m.name, leader: view.leader?.name === m.name, slots: body?.logical_slots ?? [] };
      }));
      process.stdout.write(renderSlots(slotLines(statuses), argv.format));
    });
  },
};
