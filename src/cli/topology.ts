// pghactl topology (pure rendering): the replication tree as observed. A standby sits under the
// member its WAL receiver streams from right now (pg_stat_wal_receiver's sender host:port, which
// each agent publishes as `receiving_from`), not under what its tags ask for; a member that does
// not stream (nostream, stopped, reconnecting) is drawn at the root with its state. With
// `standby_cluster` in the dynamic config, its source is the root line.
import Table from 'cli-table3';
import { stringify } from 'yaml';
import { z } from 'zod';
import type { ClusterView, MemberInfo } from '../ha/types.ts';
import { buildListRows, renderTsv, type Format, type ListRow } from './format.ts';

export interface TopologyRow extends ListRow {
  /** 0: the root level; n: n hops below the leader (or the standby_cluster source). */
  depth: number;
  /** The member this one streams from as observed; null: none (the leader, or not streaming). */
  upstream: string | null;
  /** The member its primary_conninfo names (what pgha configured); null: none. */
  configured_upstream: string | null;
  /** host:port its WAL receiver streams from (pg_stat_wal_receiver); null: not streaming or not reported. */
  receiving_from: string | null;
}

export interface Topology {
  scope: string;
  /** The standby cluster's source (`standby_cluster` in /config), else null. */
  standby_cluster: { host: string | null; port: number | null } | null;
  members: TopologyRow[];
}

// `standby_cluster` may not be in the dynamic config's schema: read it as an optional field.
const standbySource = z.looseObject({ host: z.string().optional(), port: z.coerce.number().int().optional() });

function sourceOf(c: ClusterView): Topology['standby_cluster'] {
  const raw = (c.config as unknown as Record<string, unknown>)['standby_cluster'];
  const p = standbySource.safeParse(raw);
  return raw == null || !p.success ? null : { host: p.data.host ?? null, port: p.data.port ?? null };
}

/** The member `m` streams from as observed; null for the leader and members that do not stream. */
export function observedUpstream(c: ClusterView, m: MemberInfo): string | null {
  if (m.name === c.leader?.name) return null;
  if (m.receivingFrom !== undefined) return c.members.find((x) => x.conn === m.receivingFrom && x.name !== m.name)?.name ?? null;
  // An agent that does not report its WAL receiver's sender: its configured upstream while it streams.
  return m.state === 'streaming' ? m.upstream : null;
}

export function buildTopology(scope: string, c: ClusterView): Topology {
  const rows = buildListRows(c);
  const byName = new Map(c.members.map((m) => [m.name, m]));
  const parent = new Map(c.members.map((m) => [m.name, observedUpstream(c, m)]));
  const out: TopologyRow[] = [];
  const seen = new Set<string>();
  const add = (r: ListRow, depth: number) => {
    if (seen.has(r.member)) return;
    seen.add(r.member);
    const m = byName.get(r.member);
    out.push({ ...r, depth, upstream: parent.get(r.member) ?? null, configured_upstream: m?.upstream ?? null, receiving_from: m?.receivingFrom ?? null });
    for (const child of rows.filter((x) => parent.get(x.member) === r.member)) add(child, depth + 1);
  };
  const base = sourceOf(c) === null ? 0 : 1;
  // The leader's tree first, then whatever streams from nobody known (or in a loop), at the root.
  for (const r of rows.filter((x) => x.role === 'Leader')) add(r, base);
  for (const r of rows.filter((x) => parent.get(x.member) === null || !byName.has(parent.get(x.member) ?? ''))) add(r, base);
  for (const r of rows) add(r, base);
  return { scope, standby_cluster: sourceOf(c), members: out };
}

const HEAD = ['Member', 'Host', 'Role', 'State', 'TL', 'Lag in MB', 'Tags'];
const indent = (name: string, depth: number) => (depth === 0 ? name : `${'  '.repeat(depth - 1)}+ ${name}`);
const lagText = (mb: number | null) => (mb === null ? '' : String(Math.round(mb * 100) / 100));

export function renderTopology(t: Topology, format: Format, color: boolean): string {
  if (format === 'json') return `${JSON.stringify(t, null, 2)}\n`;
  if (format === 'yaml') return stringify(t);
  if (format === 'tsv') {
    return renderTsv(['Member', 'Depth', 'Upstream', 'Host', 'Role', 'State', 'TL', 'Lag in MB', 'Tags'],
      t.members.map((r) => [r.member, r.depth, r.upstream, r.host, r.role, r.state, r.tl, r.lag_mb, r.tags]));
  }
  const table = new Table({ head: HEAD, style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] } });
  const s = t.standby_cluster;
  if (s !== null) table.push([`${s.host ?? '?'}:${s.port ?? '?'}`, '', 'Source', 'standby_cluster', '', '', '']);
  for (const r of t.members) table.push([indent(r.member, r.depth), r.host, r.role, r.state, r.tl ?? '', lagText(r.lag_mb), r.tags]);
  return `+ Cluster: ${t.scope}\n${table.toString()}\n`;
}
