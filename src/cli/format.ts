// Pure rendering for pghactl: rows from a cluster view, then table, TSV, JSON or YAML.
import Table from 'cli-table3';
import { stringify } from 'yaml';
import { currentSync, guaranteeOf, recordedStandbys } from '../ha/quorum.ts';
import type { ClusterView } from '../ha/types.ts';
import { describeSource } from '../ha/standby.ts';

import type { Format } from './formats.ts';
import { memberLag } from '../ha/view.ts';
export { FORMATS, type Format } from './formats.ts';

const TSV_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * One TSV cell: null and undefined are empty; a backslash, tab, newline or carriage return is
 * written as \\, \t, \n, \r (PostgreSQL's COPY text escapes), so every row stays one line.
 */
export function tsvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return text.replace(/[\\\t\n\r]/g, (c) => TSV_ESCAPES[c] ?? c);
}

/** A header line, then one line per row, cells separated by tabs. */
export function renderTsv(head: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return [head, ...rows].map((r) => r.map(tsvCell).join('\t')).join('\n') + '\n';
}

export interface ListRow {
  member: string;
  host: string;
  role: 'Leader' | 'Standby Leader' | 'Sync Standby' | 'Quorum Standby' | 'Replica' | 'Unknown';
  state: string;
  tl: number | null;
  lag_mb: number | null;
  tags: string;
  pending_restart: boolean;
}

const MB = 1024 * 1024;

/** Lag for people: MB to two decimals (JSON and YAML keep the exact figure). */
const lagText = (mb: number | null) => (mb === null ? '' : String(Math.round(mb * 100) / 100));

function compactTags(t: ClusterView['members'][number]['tags']): string {
  const parts: string[] = [];
  if (t.nofailover) parts.push('nofailover');
  if (t.noloadbalance) parts.push('noloadbalance');
  if (t.clonefrom) parts.push('clonefrom');
  if (t.nosync) parts.push('nosync');
  if (t.nostream) parts.push('nostream');
  if (t.replicatefrom !== undefined) parts.push(`replicatefrom=${t.replicatefrom}`);
  if (t.failover_priority !== 1) parts.push(`priority=${t.failover_priority}`);
  return parts.join(',');
}

const mbOrNull = (bytes: number | null) => (bytes === null ? null : bytes / MB);

export function buildListRows(c: ClusterView): ListRow[] {
  const leader = c.leader?.name ?? null;
  const syncNames = recordedStandbys(c);
  const standbyRole = c.config.synchronous_mode === 'quorum' ? 'Quorum Standby' : 'Sync Standby';
  const rows = c.members.map((m): ListRow => ({
    member: m.name,
    host: m.conn,
    role: m.name === leader ? (c.config.standby_cluster != null ? 'Standby Leader' : 'Leader') : m.role !== 'standby' ? 'Unknown' : syncNames.includes(m.name) ? standbyRole : 'Replica',
    state: m.state,
    tl: m.timeline,
    lag_mb: m.name === leader ? null : mbOrNull(memberLag(c, m)),
    tags: [compactTags(m.tags), c.unsafe?.[m.name] !== undefined ? 'UNSAFE(verify)' : ''].filter(Boolean).join(','),
    pending_restart: m.pendingRestart,
  }));
  const first = (r: ListRow) => r.role === 'Leader' || r.role === 'Standby Leader';
  return rows.sort((a, b) => (first(a) ? -1 : first(b) ? 1 : a.member.localeCompare(b.member)));
}

const LIST_HEAD = ['Member', 'Host', 'Role', 'State', 'TL', 'Lag in MB', 'Tags', 'Pending restart'];

export function renderList(scope: string, c: ClusterView, rows: ListRow[], format: Format, color: boolean): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (format === 'yaml') return stringify(rows);
  if (format === 'tsv') return renderTsv(LIST_HEAD, rows.map((r) => [r.member, r.host, r.role, r.state, r.tl, r.lag_mb, r.tags, r.pending_restart ? '*' : '']));
  const t = new Table({ head: LIST_HEAD, style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] } });
  for (const r of rows) t.push([r.member, r.host, r.role, r.state, r.tl ?? '', lagText(r.lag_mb), r.tags, r.pending_restart ? '*' : '']);
  const g = guaranteeOf(currentSync(c));
  const asyncFallback = c.config.synchronous_mode !== 'off' && !c.config.synchronous_mode_strict && g.acks === 0
    ? ' Synchronous mode: no synchronous standby, replication is asynchronous\n' : '';
  const quorum = c.config.synchronous_mode === 'quorum' && g.acks > 0
    ? ` Quorum: every acknowledged commit is on at least ${g.acks} of ${g.members.join(', ')}\n` : '';
  const standby = c.config.standby_cluster == null ? '' : ` Standby cluster: following ${describeSource(c.config.standby_cluster)}\n`;
  const banner = (c.config.pause ? '\n Maintenance mode: on\n' : '') + standby + pendingLine(c) + asyncFallback + quorum;
  return `+ Cluster: ${scope} (${c.initialize ?? 'uninitialized'})\n${t.toString()}\n${banner}`;
}

/** Print a command's result: the object as JSON/YAML, or a sentence for tables. */
export function printResult(format: Format, value: unknown, sentence: string): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(stringify(value));
  else process.stdout.write(`${sentence}\n`);
}

/** A line about a pending or scheduled switchover/failover, or ''. */
export function pendingLine(c: ClusterView): string {
  const r = c.failover;
  if (r === null) return '';
  const when = r.scheduledAt === null ? 'pending' : `scheduled at ${new Date(r.scheduledAt).toISOString()}`;
  return ` ${r.kind === 'switchover' ? 'Switchover' : 'Failover'} ${when}: ${r.leader ?? 'any leader'} -> ${r.candidate ?? 'best standby'} (cancel: pghactl flush --scheduled)\n`;
}

