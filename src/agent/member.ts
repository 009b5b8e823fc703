// What this agent publishes about itself: built from the local observation (pure).
import type { NodeConfig } from '../config/schema.ts';
import { pgConnectAddress, restApiUrl } from '../config/schema.ts';
import type { LocalPostgres, MemberInfo, MemberState } from '../ha/types.ts';

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
    pendingRestart: local.pendingRestart,
  };
}

/** Standby lag behind the last position the leader published; null when unknown. */
export function lagBytes(local: LocalPostgres, lastLeaderLsn: number | null): number | null {
  if (local.role !== 'standby' || local.lsn === null || lastLeaderLsn === null) return null;
  return Math.max(0, lastLeaderLsn - local.lsn);
}
