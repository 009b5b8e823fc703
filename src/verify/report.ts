// What pghactl verify prints: per side and database, the tables whose chunks differ down to the
// rows, tables without a primary key, a summary; JSON for scripts; the exit code.
import { bytes, seconds } from '../human.ts';
import { keyLabel } from './compare.ts';
import type { TableResult } from './run.ts';

export interface SideReport {
  side: string;
  kind: 'physical' | 'logical';
  database: string;
  tables: TableResult[];
  /** Set when the run stopped early (PGHA_VERIFY_ABORTED) or could not start on this side. */
  aborted?: string;
}

export interface Summary {
  tables: number; chunks: number; rows: number; bytes: number; seconds: number; rows_per_second: number;
  different_tables: number; different_chunks: number; different_rows: number;
  unsettled_chunks: number; error_chunks: number; no_primary_key: string[];
}

/** Exit codes: 0 the same everywhere, 3 a difference found, 4 part could not be checked. */
export const EXIT_SAME = 0;
export const EXIT_DIFFERENT = 3;
export const EXIT_INCOMPLETE = 4;

export function summarize(reports: SideReport[], secs: number): Summary {
  const tables = reports.flatMap((r) => r.tables);
  const chunks = tables.flatMap((t) => t.problems);
  const rows = tables.reduce((a, t) => a + t.rows, 0);
  return {
    tables: tables.length, chunks: tables.reduce((a, t) => a + t.chunks, 0), rows, bytes: tables.reduce((a, t) => a + t.bytes, 0), seconds: secs,
    rows_per_second: secs > 0 ? Math.round(rows / secs) : 0,
    different_tables: tables.filter((t) => t.problems.some((c) => c.status === 'different')).length,
    different_chunks: chunks.filter((c) => c.status === 'different').length,
    different_rows: chunks.reduce((a, c) => a + c.rows.length, 0),
    unsettled_chunks: chunks.filter((c) => c.status === 'unsettled').length,
    error_chunks: chunks.filter((c) => c.status === 'error').length,
    no_primary_key: [...new Set(tables.filter((t) => t.noPrimaryKey).map((t) => t.table))],
  };
}

export function exitCode(reports: SideReport[], s: Summary): number {
  if (s.different_chunks > 0) return EXIT_DIFFERENT;
  if (s.unsettled_chunks > 0 || s.error_chunks > 0 || reports.some((r) => r.aborted !== undefined)) return EXIT_INCOMPLETE;
  return EXIT_SAME;
}

/** Sides (members, or "subscriber") with a proven difference. */
export const differentSides = (reports: SideReport[]): string[] =>
  [...new Set(reports.filter((r) => r.tables.some((t) => t.problems.some((c) => c.status === 'different'))).map((r) => r.side))];

const clip = (s: string | null, n = 160) => (s === null ? 'absent' : s.length > n ? `${s.slice(0, n)}...` : s);
const range = (lo: string[] | null, hi: string[] | null) => `(${lo === null ? '-inf' : lo.join(', ')} .. ${hi === null ? '+inf' : hi.join(', ')}]`;

export function renderText(reports: SideReport[], s: Summary): string {
  const out: string[] = [];
  for (const r of reports) {
    out.push(`${r.side} (${r.kind === 'physical' ? 'physical standby' : 'logical subscriber'}), database ${r.database}: ${r.tables.length} tables`);
    if (r.aborted !== undefined) out.push(`  NOT CHECKED to the end: ${r.aborted}`);
    for (const t of r.tables) {
      if (t.noPrimaryKey) out.push(`  warning: ${t.table} has no primary key: compared as a whole (rows identified by content)`);
      for (const c of t.problems) {
        const where = t.noPrimaryKey ? 'whole table' : `keys ${range(c.bounds.lo, c.bounds.hi)}`;
        const what = c.status === 'different' ? 'DIFFERENT' : c.status === 'unsettled' ? 'could not settle' : 'could not check';
        out.push(`  ${t.table} ${where}: ${what}${c.message ? ` (${c.message})` : ''}`);
        for (const d of c.rows) {
          const counts = d.leaderCount > 1 || d.otherCount > 1 ? ` [leader ${d.leaderCount}x, ${r.side} ${d.otherCount}x]` : '';
          out.push(`    ${keyLabel(d.key)}${counts}: leader ${clip(d.leader)} | ${r.side} ${clip(d.other)}`);
        }
      }
    }
  }
  out.push(`summary: ${s.tables} tables, ${s.rows} rows, ${bytes(s.bytes)} in ${seconds(s.seconds)} (${s.rows_per_second} rows/s); ` +
    `${s.different_tables} tables differ (${s.different_chunks} chunks, ${s.different_rows} rows); ${s.unsettled_chunks + s.error_chunks} chunks not checked`);
  return `${out.join('\n')}\n`;
}

export function renderJson(reports: SideReport[], s: Summary, extra: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ summary: s, sides: reports, ...extra }, null, 2)}\n`;
}

/** A one-line progress bar for a terminal (stderr), redrawn in place. */
export function progressLine(doneRows: number, estRows: number, doneBytes: number, table: string, secs: number, width = 30): string {
  const frac = estRows > 0 ? Math.min(1, doneRows / estRows) : 0;
  const fill = Math.round(frac * width);
  return `\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${Math.round(frac * 100)}% ${doneRows} rows ${bytes(doneBytes)} ${seconds(secs)} ${table}`.slice(0, 120).padEnd(120);
}
