// pghactl promote-cluster / demote-cluster and their REST routes (src/api/standby-routes.ts):
// checked against one read of the cluster and a fresh read of the source, then written to
// /config through the config-edit path (compare-and-set, re-applied on a lost race). The agents
// do the rest (rule S of decide(): the standby leader promotes once standby_cluster is gone; a
// leader with standby_cluster set stops its primary and is rewound from the new source).
import { sourceHosts, standbyClusterSchema, type DynamicConfig, type StandbyClusterConfig } from '../config/schema.ts';
import type { Dcs } from '../dcs/types.ts';
import { PgHaError } from '../errors.ts';
import { describeSource } from '../ha/standby.ts';
import type { ClusterView, SourceState } from '../ha/types.ts';
import { leaderMember } from '../ha/view.ts';
import { formatLsn } from '../postgres/lsn.ts';
import { editConfig } from './store.ts';

export interface StandbyOpsDeps {
  dcs: Dcs;
  fallback(): DynamicConfig;
  /** The HA loop's last read of the cluster. */
  view(): ClusterView | null;
  /** One query on a source cluster through the agent's libpq settings (never throws). */
  readSource(sc: StandbyClusterConfig): Promise<SourceState>;
  /** The local PostgreSQL's postmaster start (epoch s) and system identifier: tells "the same server". */
  local(): { startedAt: number | null; systemId: string | null };
}

export interface PromoteReport {
  standby_leader: string;
  source: string;
  source_reachable: boolean;
  source_writable: boolean | null;
  source_lsn: string | null;
  /** The standby leader's last received/replayed position as it last published it. */
  standby_leader_lsn: string | null;
  /** Bytes the standby leader was behind the source (null: the source could not be read). */
  behind_bytes: number | null;
  /** What may be lost: a sentence for the operator. */
  loss: string;
}

function viewOf(d: StandbyOpsDeps): ClusterView {
  const v = d.view();
  if (v === null) throw new PgHaError('PGHA_DCS_UNAVAILABLE', 'the cluster has not been read from etcd yet');
  return v;
}

const lsnText = (n: number | null | undefined): string | null => (n == null ? null : formatLsn(n));

/**
 * Make a standby cluster a normal one: refuse while the source is reachable and writable (two
 * writable sites) unless forced; remove standby_cluster from /config; report how far behind the
 * source the standby leader was.
 */
export async function promoteCluster(d: StandbyOpsDeps, force: boolean): Promise<PromoteReport> {
  const view = viewOf(d);
  const sc = view.config.standby_cluster;
  if (sc == null) throw new PgHaError('PGHA_STANDBY_STATE', 'this cluster is not a standby cluster (no standby_cluster in its configuration)');
  const leader = leaderMember(view);
  if (leader === undefined) throw new PgHaError('PGHA_STANDBY_STATE', 'no standby leader holds the key: wait for one (pghactl list), then promote');
  const src = await d.readSource(sc);
  const behind = src.reachable && src.lsn !== null && leader.lsn !== null ? Math.max(0, src.lsn - leader.lsn) : null;
  const loss = !src.reachable
    ? `the source ${describeSource(sc)} cannot be reached (${src.error ?? 'no answer'}): whatever it committed after ${lsnText(leader.lsn) ?? 'the standby leader\'s last position'} is not on this site`
    : src.writable === true
      ? `the source is still writable: its writes after the promotion (and the ${behind ?? '?'} bytes not received yet) are not on this site, and the two sites diverge`
      : `the source is not writable; ${behind ?? '?'} bytes it holds are not on this site`;
  if (src.reachable && src.writable === true && !force) {
    throw new PgHaError('PGHA_STANDBY_SOURCE_WRITABLE', `the source cluster ${describeSource(sc)} is reachable and writable: promoting would make two writable sites. ` +
      `Demote or stop the source first (pghactl demote-cluster there), or --force: ${loss}`);
  }
  await editConfig(d.dcs, (c) => {
    const next = { ...c };
    delete next['standby_cluster'];
    return next;
  }, d.fallback(), 'promote-cluster');
  return {
    standby_leader: leader.name, source: describeSource(sc), source_reachable: src.reachable, source_writable: src.writable,
    source_lsn: lsnText(src.lsn), standby_leader_lsn: lsnText(leader.lsn), behind_bytes: behind, loss,
  };
}

export interface DemoteInput { host: string; port?: number | string | undefined; force?: boolean | undefined }

export interface DemoteReport { leader: string; source: string; source_writable: boolean | null; source_timeline: number | null }

/**
 * Make a normal cluster a standby cluster of another: the target must answer with our system
 * identifier, be writable (or --force: a standby of a standby), and not be this cluster.
 */
export async function demoteCluster(d: StandbyOpsDeps, input: DemoteInput): Promise<DemoteReport> {
  const view = viewOf(d);
  if (view.config.standby_cluster != null) throw new PgHaError('PGHA_STANDBY_STATE', `this cluster already is a standby cluster of ${describeSource(view.config.standby_cluster)}`);
  const leader = leaderMember(view);
  if (leader === undefined || leader.role !== 'primary') throw new PgHaError('PGHA_STANDBY_STATE', 'no running leader: demote-cluster needs one');
  const parsed = standbyClusterSchema.safeParse({ host: input.host, ...(input.port === undefined ? {} : { port: input.port }) });
  if (!parsed.success) throw new PgHaError('PGHA_CONFIG_INVALID', `--host/--port: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  const sc = parsed.data;
  const ours = sourceHosts(sc).find((h) => view.members.some((m) => m.conn === `${h.host}:${h.port}`));
  if (ours !== undefined) throw new PgHaError('PGHA_STANDBY_SOURCE_INVALID', `${ours.host}:${ours.port} is a member of this cluster: a cluster cannot follow itself`);
  const src = await d.readSource(sc);
  if (!src.reachable) {
    if (!input.force) throw new PgHaError('PGHA_STANDBY_SOURCE_UNREACHABLE', `the target ${describeSource(sc)} cannot be reached (${src.error ?? 'no answer'}); --force sets it anyway: the leader stops taking writes and waits for it`);
  } else {
    const local = d.local();
    if (src.startedAt !== undefined && local.startedAt !== null && Math.abs(src.startedAt - local.startedAt) < 0.001 && src.systemId === local.systemId) {
      throw new PgHaError('PGHA_STANDBY_SOURCE_INVALID', `the target ${describeSource(sc)} is this cluster's own primary (through a proxy or another address): a cluster cannot follow itself`);
    }
    if (src.systemId !== view.initialize) {
      throw new PgHaError('PGHA_STANDBY_SOURCE_INVALID', `the target has system identifier ${src.systemId}, this cluster ${view.initialize}: it is another database system; nothing was changed`);
    }
    if (src.writable !== true && !input.force) {
      throw new PgHaError('PGHA_STANDBY_SOURCE_INVALID', `the target ${describeSource(sc)} is not writable (in recovery): promote it first (pghactl promote-cluster there), or --force to follow a standby`);
    }
  }
  await editConfig(d.dcs, (c) => ({ ...c, standby_cluster: sc }), d.fallback(), 'demote-cluster');
  return { leader: leader.name, source: describeSource(sc), source_writable: src.writable, source_timeline: src.timeline };
}
