// When may a watchdog (systemd's WatchdogSec, or /dev/watchdog) be kept alive? Pure.
//
// A keepalive at `now` lets the watchdog fire no earlier than `now + timeout`. The leader's lease
// can expire in etcd, and another member promote, no earlier than `send time of the last
// acknowledged keepalive + ttl` = `leaseDeadline + fence_margin`. So a leader keeps the watchdog
// alive only while it would still fire `safety` before that moment; an agent that stops
// checking in (frozen, stuck, past its deadline) is then stopped by the watchdog in time.

export interface PetInput {
  now: number;
  /** The fence deadline (monotonic ms); null: this member holds no lease, nothing to guard. */
  leaseDeadline: number | null;
  timeoutMs: number;
  fenceMarginMs: number;
  safetyMs: number;
}

export function mayPet(i: PetInput): boolean {
  if (i.leaseDeadline === null) return true;
  return i.now + i.timeoutMs <= i.leaseDeadline + i.fenceMarginMs - i.safetyMs;
}

/**
 * The longest watchdog timeout a healthy leader can keep alive: right after a renewal that took
 * the whole retry_timeout, `leaseDeadline - now = ttl - fence_margin - retry_timeout`.
 */
export function longestTimeoutMs(d: { ttl: number; retry_timeout: number }, safetyMs: number): number {
  return d.ttl * 1000 - d.retry_timeout * 1000 - safetyMs;
}
