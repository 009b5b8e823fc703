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
