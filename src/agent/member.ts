// What this agent publishes about itself: built from the local observation (pure).
import type { NodeConfig } from '../config/schema.ts';
import { pgConnectAddress, restApiUrl } from '../config/schema.ts';
import type { LocalPostgres, MemberInfo, MemberState } from '../ha/types.ts';
import { bytesBehind } from '../ha/view.ts';

/** Long-running work that overrides the state read from PostgreSQL while it lasts. */
export type Activity = 'cloning' | 'rewinding' | 'bootstrapping' | 'fenced' | null;

export function memberState(local: LocalPostgres, activity: Activity): MemberState {
  if (activity !== null) return activity;
  if (!local.running) return local.dataDir === 'empty' ? 'stopped' : local.controlState === 'primary-crashed' ? 'crashed' : 'stopped';
  if (!local.accepting) return 'starting';
  if (local.role === 'standby' && local.streaming) return 'streaming';
  return 'running';
}

export function buildMemberInfo(config: NodeConfig, local: LocalPostgres, activity: Activity): MemberInfo {
  return {
    name: config.name,
    role: local.running && local.role !== null ? local.role : 'unknown',
    state: memberState(local, activity),
    timeline: local.timeline,
    lsn: local.lsn,
    apiUrl: restApiUrl(config),
    conn: pgConnectAddress(config),
    tags: config.tags,
    upstream: local.role === 'standby' ? local.upstream : null,
    ...(local.role === 'standby' && local.receivingFrom != null ? { receivingFrom: local.receivingFrom } : {}),
    pendingRestart: local.pendingRestart,
  };
}

/**
 * This agent's own lag, for GET /replica?lag= and /metrics (see src/ha/view.ts for the other uses
 * of the lag rule): a standby's bytes behind the position the leader published in /status, as
 * Patroni measures it; null when not a standby or unknown.
 */
export function lagBytes(local: LocalPostgres, lastLeaderLsn: number | null): number | null {
  return local.role === 'standby' ? bytesBehind(local.lsn, lastLeaderLsn) : null;
}
