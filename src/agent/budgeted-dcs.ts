// The etcd access a leader's actions and its member-key publish go through: every call is bounded
// by the time left before a failsafe round is due (src/ha/lease.ts etcdBudget), not only the
// keepalive, the read and the renewal. Without it a put after a renewal that etcd acknowledged
// (the member key, /sync, /status, /failsafe) could hang on an etcd that just lost its quorum or
// its leader for two call deadlines (etcd3 retries once: 2 x retry_timeout = 1.5 s at the
// defaults), the loop sat in it past the fence deadline, and the round that would have carried the
// primary through came too late (chaos run of 2026-11-30, seed 1, etcd-quorum-loss: a fence and a
// failover). A call abandoned this way makes the next iteration start at once with the round.
import type { Dcs } from '../dcs/types.ts';
import { PgHaError } from '../errors.ts';
import { withinBudget } from './failsafe.ts';

/**
 * Calls left unbounded: a subscription (watchLeader), the local cache, and the calls of a clean
 * shutdown or handover (release, delete, close), which come after PostgreSQL stopped.
 */
const UNBOUNDED = new Set<string | symbol>(['watchLeader', 'cachedHistory', 'releaseLeader', 'deleteMember', 'close']);

export interface EtcdBudgetSource {
  /** ms left for etcd before the round is due (<= 0: none), or null when no round could follow. */
  budget(): number | null;
  /** A call was abandoned for the budget: the next iteration asks the members first. */
  spent(): void;
}

/** `dcs`, with every promise-returning call but UNBOUNDED's raced against `src.budget()`. */
export function budgetedDcs(dcs: Dcs, src: EtcdBudgetSource): Dcs {
  return new Proxy(dcs, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || UNBOUNDED.has(prop)) return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const budget = src.budget();
        if (budget === null) return fn.apply(target, args);
        const what = String(prop);
        if (budget <= 0) {
          src.spent();
          return Promise.reject(new PgHaError('PGHA_DCS_TIMEOUT', `${what}: no time left for etcd before the fence deadline`, { retryable: true }));
        }
        const p = fn.apply(target, args);
        if (!(p instanceof Promise)) return p;
        return withinBudget(p, budget, what, () => src.spent());
      };
    },
  });
}
