// The fence deadline arithmetic (pure). A leader must not run as primary past
// `send time of the last keepalive etcd acknowledged + ttl - fence_margin`: etcd starts the TTL
// when it receives the keepalive, after we sent it, so the deadline falls before etcd can expire
// the key. The agent's FenceTimer (src/agent/fence.ts) holds the deadline and stops PostgreSQL
// when it passes; the executor arms it from these functions.
import type { DynamicConfig } from '../config/schema.ts';

/** Deadline from an acknowledged keepalive: the lease TTL etcd reported (s) and the current fence_margin. */
export function leaseDeadline(sentAt: number, ttlSeconds: number, cfg: Pick<DynamicConfig, 'fence_margin'>): number {
  return sentAt + ttlSeconds * 1000 - cfg.fence_margin * 1000;
}

/**
 * etcd unreachable and every member confirmed us in a failsafe round sent at `sentAt`: the
 * deadline moves to one ttl from then, less fence_margin. Each member that confirmed received the
 * call after we sent it and will not act for a ttl from then, so this deadline ends first. Only
 * ever later, and only while a deadline is armed (null: leave it as it is).
 */
export function failsafeDeadline(current: number | null, sentAt: number, cfg: Pick<DynamicConfig, 'ttl' | 'fence_margin'>): number | null {
  const deadline = sentAt + (cfg.ttl - cfg.fence_margin) * 1000;
  return current === null || deadline <= current ? null : deadline;
}

/**
 * Time kept free before the fence deadline for a failsafe round (ms): the members answer POST
 * /failsafe from memory, in milliseconds on a LAN; 250 ms leaves room for a loaded host. At the
 * defaults it is exactly what a keepalive sent loop_wait after the last renewal leaves anyway
 * (1.5 - 0.5 - 0.75 s), so it shortens no etcd call in the normal course.
 */
export const FAILSAFE_ROUND_RESERVE_MS = 250;

/**
 * How long a leader's etcd calls may still take before it must give up on etcd and ask the
 * members instead (ms; <= 0: ask them now), or null when no failsafe round could follow (mode off,
 * no deadline, not a running primary): then only the calls' own deadlines (retry_timeout) apply.
 * Without this bound a read that etcd3 retries after a first deadline (retry_timeout twice, as when
 * the etcd leader dies between our keepalive and our read) ends after the fence deadline, and the
 * round that could have extended it comes too late.
 */
export function etcdBudget(deadline: number | null, now: number, failsafeMode: boolean, runningPrimary: boolean): number | null {
  if (deadline === null || !failsafeMode || !runningPrimary) return null;
  return deadline - now - FAILSAFE_ROUND_RESERVE_MS;
}
