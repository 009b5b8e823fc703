// Where an upstream is reached: a member (one host:port), or the source cluster of a standby
// cluster (standby_cluster: one host, or a libpq multi-host list). With several hosts every
// connection carries target_session_attrs=read-write, so libpq picks the source's primary: the
// standby leader streams from it and, after the source's own failover, from its new primary
// (recovery_target_timeline = 'latest' follows the timeline switch). One host is used as given
// (the source's HAProxy read-write port, which routes to its primary, or a host the operator chose).
import { sourceHosts, splitHostPort } from '../config/schema.ts';
import type { SourceState } from '../ha/types.ts';
import { CURRENT_TIMELINE_SQL, parseLsn } from './lsn.ts';
import type { Upstream } from './types.ts';

export interface UpstreamTarget {
  /** libpq's host: one, or a comma list. */
  host: string;
  /** libpq's port: one, or a comma list (one per host). */
  port: number | string;
  /** target_session_attrs with several hosts. */
  extra: Array<[string, string]>;
  /** Every host:port, for the passfile. */
  peers: Array<{ host: string; port: number }>;
}

export function upstreamTarget(up: Upstream): UpstreamTarget {
  if (up.source === undefined) {
    const hp = splitHostPort(up.conn);
    return { host: hp.host, port: hp.port, extra: [], peers: [hp] };
  }
  const peers = sourceHosts(up.source);
  const many = peers.length > 1;
  const ports = [...new Set(peers.map((p) => p.port))];
  return {
    host: peers.map((p) => p.host).join(','),
    port: ports.length === 1 ? (ports[0] ?? 5432) : peers.map((p) => p.port).join(','),
    extra: many ? [['target_session_attrs', 'read-write']] : [],
    peers,
  };
}

/** The recovery settings a standby leader takes from standby_cluster (Patroni's keys). */
export function sourceRecovery(sc: NonNullable<Upstream['source']>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (sc.restore_command != null) out['restore_command'] = sc.restore_command;
  if (sc.archive_cleanup_command != null) out['archive_cleanup_command'] = sc.archive_cleanup_command;
  if (sc.recovery_min_apply_delay != null) out['recovery_min_apply_delay'] = sc.recovery_min_apply_delay;
  return out;
}

/**
 * One row about the source cluster: system identifier, in recovery, timeline, WAL position
 * (primary: current; standby: the furthest received or replayed), '|'-separated.
 */
export const SOURCE_STATE_SQL = `select (select system_identifier from pg_control_system())::text || '|' || pg_is_in_recovery()::text || '|' ||
  (case when pg_is_in_recovery() then coalesce((select received_tli from pg_stat_wal_receiver), (select timeline_id from pg_control_checkpoint()))
   else ${CURRENT_TIMELINE_SQL} end)::text || '|' ||
  coalesce((case when pg_is_in_recovery() then greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) else pg_current_wal_lsn() end)::text, '') || '|' ||
  extract(epoch from pg_postmaster_start_time())::float8::text`;

/** Parse SOURCE_STATE_SQL's row (pure). */
export function parseSourceState(row: string): SourceState {
  const [sysid = '', rec = '', tli = '', lsn = '', started = ''] = row.trim().split('|');
  if (!/^\d+$/.test(sysid)) throw new Error(`unexpected answer from the source: ${JSON.stringify(row.slice(0, 80))}`);
  return {
    reachable: true, error: null, systemId: sysid, writable: rec === 'false' || rec === 'f',
    timeline: /^\d+$/.test(tli) ? Number(tli) : null, lsn: lsn === '' ? null : parseLsn(lsn),
    ...(started !== '' && Number.isFinite(Number(started)) ? { startedAt: Number(started) } : {}),
  };
}
