// pghactl switchover: which PgBouncer poolers the old leader paused, from its GET /poolers. The
// sentence is pure (unit-tested); fetching it never fails the switchover command.
import { z } from 'zod';
import { apiRequest, jsonOf } from '../api/client.ts';
import type { ClientTls } from '../api/tls.ts';
import type { Ctx } from './context.ts';
import { memberByName } from '../ha/view.ts';

const outcome = z.object({ pooler: z.string(), command: z.string(), ok: z.boolean(), ms: z.number(), error: z.string().optional() });
const report = z.object({ step: z.enum(['pause', 'resume']), at: z.string(), waitedMs: z.number().nullable().optional(), outcomes: z.array(outcome) });
const answer = z.object({ configured: z.boolean(), reports: z.array(report) });

export type PauseReport = z.infer<typeof report>;

/** The last PAUSE report at or after `since` (ISO time) in a GET /poolers body; null: none. */
export function pauseSince(body: unknown, since: string): PauseReport | null {
  const a = answer.safeParse(body);
  if (!a.success || !a.data.configured) return null;
  const found = a.data.reports.filter((r) => r.step === 'pause' && r.at >= since);
  return found[found.length - 1] ?? null;
}

/** "poolers paused: a (3 ms), b (12 ms); NOT paused: c (PAUSE got no answer within 2000 ms)". */
export function poolerSentence(r: PauseReport | null): string {
  if (r === null) return 'poolers: none paused (no pgbouncer.poolers configured, or the old leader did not report)';
  const pauses = r.outcomes.filter((o) => o.command === 'PAUSE');
  const ok = pauses.filter((o) => o.ok).map((o) => `${o.pooler} (${o.ms} ms)`);
  const bad = pauses.filter((o) => !o.ok).map((o) => `${o.pooler} (${o.error ?? 'failed'})`);
  return `poolers paused: ${ok.length > 0 ? ok.join(', ') : 'none'}${bad.length > 0 ? `; NOT paused: ${bad.join(', ')}` : ''}`;
}

/** The old leader's PAUSE report for the switchover requested at `since`; null when it cannot be had. */
export async function fetchPauseReport(ctx: Ctx, oldLeader: string | null, since: string, tls: ClientTls | undefined): Promise<PauseReport | null> {
  if (oldLeader === null) return null;
  try {
    const view = await ctx.dcs.readCluster(ctx.fallback);
    const m = memberByName(view, oldLeader);
    if (m === undefined) return null;
    // The agent answers from memory: 2 s allows for a loaded host that has just restarted PostgreSQL.
    const r = await apiRequest(`${m.apiUrl}/poolers`, { tls, timeoutMs: 2000 });
    return r.status === 200 ? pauseSince(jsonOf(r), since) : null;
  } catch {
    return null;
  }
}
