// Synchronous replication, the leader's part (pure). The /sync record lists the standbys that hold
// every acknowledged commit; it is narrowed before synchronous_standby_names drops a member and
// widened only with members PostgreSQL already reports synchronous, so it is never optimistic.
// Quorum mode (ANY n) is in quorum.ts.
import type { DynamicConfig } from '../config/schema.ts';
import { eligibleMembers, namesEveryCommit, planQuorum } from './quorum.ts';
import type { Action, ClusterView, Observation } from './types.ts';

/** The actions that bring synchronous_standby_names and /sync to the desired state, in order. */
export function planSync(o: Observation, cfg: DynamicConfig, cluster: ClusterView): Action[] {
  const me = o.self.name;
  if (cfg.synchronous_mode === 'off') return [{ kind: 'set_sync_names', names: null, count: 0 }];
  if (cfg.synchronous_mode === 'quorum') return planQuorum(o, cfg, cluster);
  // A quorum-mode record (acks below its size) does not say every member holds every commit.
  const own = cluster.sync !== null && cluster.sync.leader === me && namesEveryCommit(cluster.sync);
  const record = own ? (cluster.sync?.members ?? []) : [];
  const eligible = eligibleMembers(me, cluster.members, o.local.replicas.map((r) => r.name))
    .sort((a, b) => Number(record.includes(b.name)) - Number(record.includes(a.name)) || (b.lsn ?? 0) - (a.lsn ?? 0) || (a.name < b.name ? -1 : 1));
  const desired = eligible.slice(0, cfg.synchronous_node_count).map((m) => m.name);
  const narrowed = record.filter((n) => desired.includes(n));
  const widened = [...narrowed, ...desired.filter((n) => o.local.syncStandbys.includes(n) && !narrowed.includes(n))];
  const actions: Action[] = [];
  const stale = !own || cluster.sync?.acks !== undefined;
  // 1. Narrow the record first: a member leaving synchronous_standby_names may miss later commits.
  if (stale || narrowed.length !== record.length) actions.push({ kind: 'write_sync', members: narrowed });
  // 2. The setting: FIRST n of the desired members; none left: block commits (strict) or go asynchronous.
  const names = desired.length > 0 ? desired : cfg.synchronous_mode_strict ? [] : null;
  actions.push({ kind: 'set_sync_names', names, count: cfg.synchronous_node_count, method: 'first' });
  // 3. Widen only with members PostgreSQL reports synchronous.
  if (widened.length !== narrowed.length) actions.push({ kind: 'write_sync', members: widened });
  return actions;
}
