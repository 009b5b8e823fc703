// Operator requests shared by pghactl and the REST API: validated against the current cluster
// view (pure), then written to etcd by compare-and-set. A refusal says why, and writes nothing.
import { asCandidate, bestCandidate, lagBehind, markedUnsafe, mayEverPromote, type Candidate } from '../ha/candidates.ts';
import type { ClusterView, FailoverRequest } from '../ha/types.ts';
import { PgHaError } from '../errors.ts';
import { bytes } from '../human.ts';
import { leaderMember, memberByName } from '../ha/view.ts';

export interface HandoverInput {
  kind: 'switchover' | 'failover';
  leader?: string | undefined;
  candidate?: string | undefined;
  /** Epoch ms; switchover only. */
  scheduledAt?: number | undefined;
  /** failover only: allowed although a healthy leader exists. */
  force?: boolean | undefined;
}

const refuse = (msg: string): never => {
  throw new PgHaError('PGHA_CLI_REFUSED', msg);
};

function healthyLeader(view: ClusterView): string | null {
  const m = leaderMember(view);
  return m !== undefined && m.role === 'primary' && m.state === 'running' ? m.name : null;
}

/** Why `name` cannot take over, or null when it can. */
export function candidateProblem(view: ClusterView, name: string, checkLag: boolean): string | null {
  const m = memberByName(view, name);
  if (m === undefined) return `${name} is not a member of this cluster`;
  if (m.name === view.leader?.name) return `${name} is already the leader`;
  if (!mayEverPromote(m.tags)) return `${name} is tagged nofailover (or failover_priority 0)`;
  if (markedUnsafe(view, name)) return `${name} is marked unsafe: pghactl verify found its data different from the leader's (pghactl verify --repair, or reinit it)`;
  if (m.role !== 'standby' || (m.state !== 'running' && m.state !== 'streaming') || m.lsn === null) return `${name} is not a running standby (state ${m.state})`;
  if (checkLag && asCandidate(m, view.lastLeaderLsn, view.config) === null) {
    return `${name} is ${bytes(lagBehind(m.lsn, view.lastLeaderLsn))} behind the leader (maximum_lag_on_failover ${bytes(view.config.maximum_lag_on_failover)})`;
  }
  return null;
}

/** Validate a switchover or failover against the view; the request to store, or a refusal. */
export function planHandover(view: ClusterView, input: HandoverInput, wallNow: number): FailoverRequest {
  if (view.config.pause) refuse('the cluster is paused (maintenance mode): resume it first');
  if (view.failover !== null) refuse(`a ${view.failover.kind} is already pending; cancel it first (pghactl flush --scheduled)`);
  const leader = healthyLeader(view);
  if (input.kind === 'switchover') {
    if (leader === null) refuse('there is no healthy leader to switch over from; use failover');
    if (input.leader !== undefined && input.leader !== leader) refuse(`${input.leader} is not the leader (${leader} is)`);
    if (input.scheduledAt !== undefined && input.scheduledAt <= wallNow) refuse('the scheduled time is in the past');
    let candidate = input.candidate ?? null;
    if (candidate !== null) {
      const p = candidateProblem(view, candidate, true);
      if (p !== null) refuse(p);
    } else if (input.scheduledAt === undefined) {
      // Name the most advanced eligible standby now: a named candidate takes over at once,
      // while an unnamed race would compare positions published up to a loop ago.
      const eligible = view.members.filter((m) => m.name !== leader && !markedUnsafe(view, m.name)).map((m) => asCandidate(m, view.lastLeaderLsn, view.config)).filter((c): c is Candidate => c !== null);
      candidate = bestCandidate(eligible)?.name ?? refuse('no healthy standby is eligible (running, within maximum_lag_on_failover, not nofailover)');
    } else if (!view.members.some((m) => m.name !== leader && candidateProblem(view, m.name, true) === null)) {
      refuse('no healthy standby is eligible (running, within maximum_lag_on_failover, not nofailover)');
    }
    return { kind: 'switchover', leader, candidate, scheduledAt: input.scheduledAt ?? null, requestedAt: wallNow, shutdownLsn: null };
  }
  if (input.candidate === undefined) refuse('failover needs --candidate');
  const candidate = input.candidate as string;
  if (leader !== null && !input.force) refuse(`${leader} is a healthy leader: use switchover, or failover --force (acknowledged writes not yet on ${candidate} would be lost)`);
  const p = candidateProblem(view, candidate, false);
  if (p !== null) refuse(p);
  if (view.config.synchronous_mode !== 'off' && view.syncUnreadable === true) refuse('/sync in etcd is unreadable: it cannot tell who holds every acknowledged commit (the leader rewrites it)');
  if (view.config.synchronous_mode !== 'off' && view.sync !== null && view.sync.members.length > 0 && !view.sync.members.includes(candidate)) {
    refuse(`${candidate} is not a synchronous standby (${view.sync.members.join(', ')}): it may miss acknowledged commits`);
  }
  return { kind: 'failover', leader, candidate, scheduledAt: null, requestedAt: wallNow, shutdownLsn: null };
}
