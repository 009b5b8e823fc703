// GET /metrics: Prometheus text format (version 0.0.4), rendered from the HA loop's snapshot and
// the agent's counters. Pure: no PostgreSQL query, no etcd read per scrape.
// Patroni's metric names, labels ({scope, name}) and meanings where Patroni has the metric (its
// api.py do_GET_metrics), so its dashboards and alerts work unchanged; pgha's own are pgha_*.
// docs/monitoring.md lists them all.
import type { StatsView, Histogram } from '../agent/stats.ts';
import { DURATION_BUCKETS } from '../agent/stats.ts';
import type { MemberState, PromoteReason } from '../ha/types.ts';
import { statusBody } from './health.ts';
import type { AgentSnapshot } from './types.ts';
import { parseLsn } from '../postgres/lsn.ts';
import type { LogicalSlotStatus } from '../slots/types.ts';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsInput {
  scope: string;
  /** This member's name (the config's: the snapshot may not exist yet). */
  name: string;
  version: string;
  snapshot: AgentSnapshot | null;
  /** Monotonic ms, the clock of snapshot.observedAt and leaseDeadline. */
  now: number;
  staleAfterMs: number;
  /** Monotonic ms of the fence deadline; null: this member holds no lease deadline. */
  leaseDeadline: number | null;
  stats: StatsView;
  /** Epoch seconds now (archive age); default Date.now(). */
  wallNow?: number;
}

type Labels = ReadonlyArray<readonly [string, string]>;
interface Sample { suffix?: string; labels?: Labels; value: number }
type MetricType = 'gauge' | 'counter' | 'histogram' | 'summary';

/** Label values: backslash, double quote and line feed escaped (exposition format). */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed escaped. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const labelText = (labels: Labels) =>
  labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;

class Writer {
  readonly lines: string[] = [];
  readonly base: Labels;
  constructor(base: Labels) {
    this.base = base;
  }

  family(name: string, type: MetricType, help: string, samples: Sample[], comment?: string): void {
    if (samples.length === 0) return;
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`);
    if (comment !== undefined) this.lines.push(`# ${comment}`);
    this.lines.push(`# TYPE ${name} ${type}`);
    for (const s of samples) this.lines.push(`${name}${s.suffix ?? ''}${labelText([...this.base, ...(s.labels ?? [])])} ${formatValue(s.value)}`);
  }

  /** One unlabelled sample. */
  one(name: string, type: MetricType, help: string, value: number, comment?: string): void {
    this.family(name, type, help, [{ value }], comment);
  }

  histogram(name: string, help: string, series: Array<[Labels, Histogram]>): void {
    const samples = series.flatMap(([labels, h]) => [
      ...DURATION_BUCKETS.map((le, i) => ({ suffix: '_bucket', labels: [...labels, ['le', String(le)] as const], value: h.buckets[i] ?? 0 })),
      { suffix: '_bucket', labels: [...labels, ['le', '+Inf'] as const], value: h.count },
      { suffix: '_sum', labels, value: h.sum },
      { suffix: '_count', labels, value: h.count },
    ]);
    this.family(name, 'histogram', help, samples);
  }
}

/** Patroni's PostgresqlState indexes (they never change); pgha's member states mapped onto them. */
export const PATRONI_STATES = [
  'initdb', 'initdb_failed', 'custom_bootstrap', 'custom_bootstrap_failed', 'creating_replica', 'running', 'starting',
  'bootstrap_starting', 'start_failed', 'restarting', 'restart_failed', 'stopping', 'stopped', 'stop_failed', 'crashed',
] as const;
const STATE_INDEX: Readonly<Record<MemberState, number>> = {
  bootstrapping: 0, cloning: 4, running: 5, streaming: 5, starting: 6, stopped: 12, rewinding: 12, fenced: 12, crashed: 14,
};

const b = (x: boolean) => (x ? 1 : 0);

/** 0.1.0 -> 000100 (Patroni's padded semver), as a number. */
export function paddedVersion(v: string): number {
  const n = Number(v.split('-', 1)[0]!.split('.').map((x) => x.padStart(2, '0')).join(''));
  return Number.isFinite(n) ? n : 0;
}

function patroniMetrics(w: Writer, i: MetricsInput): void {
  const s = i.snapshot;
  const st = statusBody(s, i.now, i.staleAfterMs, i.scope);
  const pg = s?.postgres ?? null;
  const primary = st.role === 'primary';
  const replica = st.role === 'replica';
  w.one('patroni_version', 'gauge', 'Patroni semver without periods.', paddedVersion(i.version));
  w.one('patroni_postgres_running', 'gauge', 'Value is 1 if Postgres is running, 0 otherwise.', b(st.state === 'running' || st.state === 'streaming'));
  w.one('patroni_postmaster_start_time', 'gauge', 'Epoch seconds since Postgres started.', pg?.postmasterStart ?? 0);
  w.one('patroni_primary', 'gauge', 'Value is 1 if this node is the leader, 0 otherwise.', b(primary));
  w.one('patroni_xlog_location', 'counter', 'Current location of the Postgres transaction log, 0 if this node is not the leader.', primary ? (pg?.flushLsn ?? (st.xlog !== undefined && 'location' in st.xlog ? st.xlog.location : null) ?? 0) : 0);
  w.one('patroni_standby_leader', 'gauge', 'Value is 1 if this node is the standby_leader, 0 otherwise.', b(st.role === 'standby_leader'));
  w.one('patroni_replica', 'gauge', 'Value is 1 if this node is a replica, 0 otherwise.', b(replica));
  w.one('patroni_sync_standby', 'gauge', 'Value is 1 if this node is a sync standby, 0 otherwise.', b(st.sync_standby));
  w.one('patroni_quorum_standby', 'gauge', 'Value is 1 if this node is a quorum standby, 0 otherwise.', b(st.quorum_standby));
  w.one('patroni_xlog_received_location', 'counter', 'Current location of the received Postgres transaction log, 0 if this node is not a replica.', replica ? (pg?.receivedLsn ?? 0) : 0);
  w.one('patroni_xlog_replayed_location', 'counter', 'Current location of the replayed Postgres transaction log, 0 if this node is not a replica.', replica ? (pg?.replayedLsn ?? 0) : 0);
  w.one('patroni_xlog_replayed_timestamp', 'gauge', 'Current timestamp of the replayed Postgres transaction log, 0 if null.', replica ? (pg?.replayedAt ?? 0) : 0);
  w.one('patroni_xlog_paused', 'gauge', 'Value is 1 if the Postgres xlog is paused, 0 otherwise.', b(replica && pg?.replayPaused === true));
  w.one('patroni_postgres_streaming', 'gauge', 'Value is 1 if Postgres is streaming, 0 otherwise.', b(st.replication_state === 'streaming'));
  w.one('patroni_postgres_in_archive_recovery', 'gauge', 'Value is 1 if Postgres is replicating from archive, 0 otherwise.', b(st.replication_state === 'in archive recovery'));
  w.one('patroni_postgres_server_version', 'gauge', 'Version of Postgres (if running), 0 otherwise.', st.role === 'unknown' ? 0 : (pg?.serverVersion ?? 0));
  // Patroni: 1 also when the cluster was never read from the DCS.
  w.one('patroni_cluster_unlocked', 'gauge', 'Value is 1 if the cluster is unlocked, 0 if locked.', b(s?.cluster == null || s.cluster.leader === null));
  w.one('patroni_failsafe_mode_is_active', 'gauge', 'Value is 1 if failsafe mode is active, 0 if inactive.', b(s?.failsafeActive === true));
  w.one('patroni_postgres_timeline', 'counter', 'Postgres timeline of this node (if running), 0 otherwise.', st.role === 'unknown' ? 0 : (st.timeline ?? 0));
  w.one('patroni_dcs_last_seen', 'gauge', 'Epoch timestamp when DCS was last contacted successfully by Patroni.', Math.floor((s?.dcsLastSeen ?? 0) / 1000));
  w.one('patroni_pending_restart', 'gauge', 'Value is 1 if the node needs a restart, 0 otherwise.', b(st.pending_restart));
  w.one('patroni_is_paused', 'gauge', 'Value is 1 if auto failover is disabled, 0 otherwise.', b(st.pause));
  w.one('patroni_postgres_state', 'gauge', 'Numeric representation of Postgres state.', s === null ? -1 : STATE_INDEX[s.member.state],
    `Values: ${PATRONI_STATES.map((n, k) => `${k}=${n}`).join(', ')}`);
}

const STAGES = ['write', 'flush', 'replay'] as const;
const PROMOTION_REASONS: readonly PromoteReason[] = ['failover', 'manual failover', 'switchover'];

function standbyMetrics(w: Writer, s: AgentSnapshot): void {
  const pg = s.postgres;
  if (pg == null || s.member.role !== 'primary') return;
  const head = s.member.lsn;
  const bytes: Sample[] = [];
  const secs: Sample[] = [];
  for (const r of pg.standbys) {
    const at = { write: r.writeLsn, flush: r.flushLsn, replay: r.replayLsn };
    const lag = { write: r.writeLag, flush: r.flushLag, replay: r.replayLag };
    for (const stage of STAGES) {
      const labels = [['standby', r.name], ['stage', stage]] as const;
      const pos = at[stage];
      if (head !== null && pos !== null) bytes.push({ labels, value: Math.max(0, head - pos) });
      secs.push({ labels, value: lag[stage] ?? 0 });
    }
  }
  w.family('pgha_standby_lag_bytes', 'gauge', 'Primary only: bytes each standby (pg_stat_replication) has not yet written, flushed or replayed, behind pg_current_wal_lsn().', bytes);
  w.family('pgha_standby_lag_seconds', 'gauge', 'Primary only: write_lag, flush_lag, replay_lag of each standby in pg_stat_replication (0 when PostgreSQL shows NULL: idle).', secs);
}

/**
 * pg_stat_archiver as pgha_archive_* (Patroni exports none of it; the names follow
 * postgres_exporter's pg_stat_archiver_* in meaning). `wallNow` is epoch seconds.
 */
function archiveMetrics(w: Writer, s: AgentSnapshot, wallNow: number): void {
  const a = s.postgres?.archive;
  if (a === undefined) return;
  w.one('pgha_archive_enabled', 'gauge', 'Value is 1 if this member archives WAL (archive_mode on as primary, or always), 0 otherwise.', b(a.enabled));
  w.one('pgha_archive_archived_total', 'counter', 'WAL files archived successfully (pg_stat_archiver.archived_count).', a.archived);
  w.one('pgha_archive_failed_total', 'counter', 'Failed attempts to archive a WAL file (pg_stat_archiver.failed_count).', a.failed);
  w.one('pgha_archive_last_archived_timestamp_seconds', 'gauge', 'Epoch seconds of the last successful archive (last_archived_time), 0 if none.', a.lastArchivedAt ?? 0);
  w.one('pgha_archive_last_failed_timestamp_seconds', 'gauge', 'Epoch seconds of the last failed archive attempt (last_failed_time), 0 if none.', a.lastFailedAt ?? 0);
  if (a.lastArchivedAt !== null) {
    w.one('pgha_archive_last_archived_age_seconds', 'gauge', 'Seconds since the last successful archive.', Math.max(0, wallNow - a.lastArchivedAt));
  }
  // Failing: the last attempt failed (a failure after the last success, or failures and no success).
  const failing = a.lastFailedAt !== null && (a.lastArchivedAt === null || a.lastFailedAt > a.lastArchivedAt);
  w.one('pgha_archive_failing', 'gauge', 'Value is 1 if the last archive attempt failed (last_failed_time after last_archived_time), 0 otherwise.', b(a.enabled && failing));
}

function agentMetrics(w: Writer, i: MetricsInput): void {
  const s = i.snapshot;
  const st = i.stats;
  w.one('pgha_leader', 'gauge', 'Value is 1 if this member holds the leader key, 0 otherwise.', b(s?.isLeader === true));
  if (i.leaseDeadline !== null) {
    w.one('pgha_lease_remaining_seconds', 'gauge', 'Leader: seconds until the fence deadline (PostgreSQL is stopped then unless the lease is renewed).', Math.max(0, i.leaseDeadline - i.now) / 1000);
  }
  w.one('pgha_snapshot_age_seconds', 'gauge', 'Seconds since the HA loop last finished an iteration (the view this agent answers from); -1 before the first.', s === null ? -1 : Math.max(0, i.now - s.observedAt) / 1000);
  if (s?.lagBytes != null) w.one('pgha_lag_bytes', 'gauge', 'Standby: bytes behind the WAL position the leader last published.', s.lagBytes);
  const maxLag = s?.cluster?.config.maximum_lag_on_failover;
  if (maxLag !== undefined) w.one('pgha_maximum_lag_on_failover_bytes', 'gauge', 'maximum_lag_on_failover from the dynamic configuration.', maxLag);
  if (s !== null) standbyMetrics(w, s);
  if (s !== null) archiveMetrics(w, s, i.wallNow ?? Date.now() / 1000);
  w.histogram('pgha_ha_loop_duration_seconds', 'Duration of HA loop iterations (observe, decide, act, publish).', [[[], st.loop]]);
  w.histogram('pgha_etcd_request_duration_seconds', 'Duration of etcd calls by operation, failed ones included.', [...st.etcd].sort(([a], [c]) => a.localeCompare(c)).map(([op, h]) => [[['op', op]], h]));
  w.family('pgha_etcd_request_errors_total', 'counter', 'etcd calls that failed, by operation.', [...st.etcd.keys()].sort().map((op) => ({ labels: [['op', op]] as const, value: st.etcdErrors.get(op) ?? 0 })));
  w.one('pgha_fence_events_total', 'counter', 'Times this agent fenced: stopped its PostgreSQL because its lease could not be kept.', st.fences);
  w.family('pgha_watchdog_pets_total', 'counter', 'Keepalives sent to systemd (WATCHDOG=1) and to the watchdog device.',
    (['systemd', 'device'] as const).map((k) => ({ labels: [['watchdog', k]] as const, value: st.watchdogPets[k] })));
  // Every reason from the start, at 0: increase() over a series that appears at 1 would miss it.
  const zero = { count: 0, outageSum: 0, outageCount: 0, lastOutage: null };
  const promos = [...new Set([...PROMOTION_REASONS, ...st.promotions.keys()])].sort().map((r) => [r, st.promotions.get(r) ?? zero] as const);
  w.family('pgha_promotions_total', 'counter', 'Promotions of this member, by reason (failover, switchover, manual failover).', promos.map(([reason, p]) => ({ labels: [['reason', reason]] as const, value: p.count })));
  w.family('pgha_promotion_outage_seconds', 'summary', 'Outage this member measured when it promoted: from its last observation of another leader to the end of pg_promote().',
    promos.flatMap(([reason, p]) => [
      { suffix: '_sum', labels: [['reason', reason]] as const, value: p.outageSum },
      { suffix: '_count', labels: [['reason', reason]] as const, value: p.outageCount },
    ]));
  w.family('pgha_last_promotion_outage_seconds', 'gauge', 'The outage measured at this member\'s last promotion, by reason.',
    promos.filter(([, p]) => p.lastOutage !== null).map(([reason, p]) => ({ labels: [['reason', reason]] as const, value: p.lastOutage ?? 0 })));
}

/** Logical slots (src/slots): the leader's consumers, the standbys' copies. */
function logicalSlotMetrics(w: Writer, s: AgentSnapshot | null): void {
  const l = s?.logical;
  if (l == null) return;
  const labels = (x: LogicalSlotStatus) => [['slot', x.name], ['plugin', x.plugin ?? ''], ['database', x.database ?? ''], ['role', l.role]] as const;
  w.family('pgha_logical_slot_lag_bytes', 'gauge', 'Logical slots. Leader: WAL bytes written since the position the consumer confirmed. Standby: bytes its copy is behind the position the leader published.',
    l.slots.filter((x) => x.lag_bytes !== null).map((x) => ({ labels: labels(x), value: x.lag_bytes ?? 0 })));
  w.family('pgha_logical_slot_confirmed_flush_lsn', 'gauge', 'Logical slots: confirmed_flush_lsn as a byte position (leader: the consumer\'s; standby: its copy\'s).',
    l.slots.filter((x) => x.confirmed_flush_lsn !== null).map((x) => ({ labels: labels(x), value: parseLsn(x.confirmed_flush_lsn ?? '0/0') })));
  w.family('pgha_logical_slot_active', 'gauge', 'Logical slots: 1 if a consumer is connected, 0 otherwise.', l.slots.map((x) => ({ labels: labels(x), value: b(x.active) })));
}

/** The whole /metrics body. */
export function renderMetrics(i: MetricsInput): string {
  const w = new Writer([['scope', i.scope], ['name', i.name]]);
  patroniMetrics(w, i);
  agentMetrics(w, i);
  logicalSlotMetrics(w, i.snapshot);
  return `${w.lines.join('\n')}\n`;
}
