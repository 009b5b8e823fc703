// A switchover a Patroni leader ran, seen by a pgha candidate (a mixed cluster during a migration).
// pgha's own leader records its shutdown checkpoint in /failover's `shutdown_lsn` before it
// releases the key; a Patroni 3.0.2 leader does not. What it does instead (ha.py demote('graceful')
// and dcs/__init__.py delete_leader): it stops PostgreSQL cleanly, writes the shutdown checkpoint's
// location to /status (`optime`), deletes the leader key, and rewrites its member value with role
// `demoted` (later `replica` once it follows the new leader). From then on it writes /status no
// more (only a leader does). So once the key is free and the requested switchover's old leader is
// a Patroni member that no longer calls itself the primary, /status holds its final WAL position:
// the named candidate may take over once it has WAL beyond it, as after pgha's own handover.
// (Patroni's own candidate takes over without any such check: ha.py manual_failover_process_no_leader.)
import type { ClusterView, FailoverRequest, Lsn } from './types.ts';
import { memberByName } from './view.ts';

const PRIMARY_ROLES = new Set(['master', 'primary', 'standby_leader']);

/**
 * The released Patroni leader's final WAL position for `req`, or null when this does not apply
 * (not a switchover from a Patroni leader, pgha's shutdown_lsn present, the key still held, the
 * old leader not yet stepped down, or no /status position known).
 */
export function patroniReleasedLsn(req: FailoverRequest, cluster: ClusterView | null): Lsn | null {
  if (cluster === null || req.kind !== 'switchover' || req.leader === null || req.shutdownLsn !== null) return null;
  if (cluster.leader !== null) return null;
  const old = memberByName(cluster, req.leader);
  if (old === undefined || old.agent !== 'patroni') return null;
  if (old.patroniRole === undefined || PRIMARY_ROLES.has(old.patroniRole)) return null;
  return cluster.lastLeaderLsn;
}
