// Counters and timings the agent keeps for GET /metrics: HA loop duration, etcd call latency,
// fence events, watchdog pets, promotions with the outage this member measured. Plain numbers in
// memory, updated where the work happens; GET /metrics reads them (src/api/metrics.ts renders).
import type { Dcs } from '../dcs/types.ts';
import { isPgHaError } from '../errors.ts';

/** Upper bounds (seconds) of the histogram buckets: a loop or etcd call from 1 ms to 10 s. */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export interface Histogram {
  /** Cumulative counts, one per DURATION_BUCKETS bound (le), then +Inf = count. */
  buckets: number[];
  sum: number;
  count: number;
}

export const emptyHistogram = (): Histogram => ({ buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 });

export function observe(h: Histogram, seconds: number): void {
  DURATION_BUCKETS.forEach((le, i) => { if (seconds <= le) h.buckets[i] = (h.buckets[i] ?? 0) + 1; });
  h.sum += seconds;
  h.count += 1;
}

export interface PromotionStats {
  count: number;
  /** Outages measured (promotions after a leader was seen): sum and count, seconds. */
  outageSum: number;
  outageCount: number;
  /** The last measured outage, seconds; null: none measured yet. */
  lastOutage: number | null;
}

export type WatchdogKind = 'systemd' | 'device';

export interface StatsView {
  loop: Histogram;
  /** Per etcd operation (Dcs method name). */
  etcd: ReadonlyMap<string, Histogram>;
  etcdErrors: ReadonlyMap<string, number>;
  fences: number;
  watchdogPets: Readonly<Record<WatchdogKind, number>>;
  /** Per promotion reason (failover, switchover, manual failover). */
  promotions: ReadonlyMap<string, PromotionStats>;
}

export class AgentStats implements StatsView {
  readonly loop = emptyHistogram();
  readonly etcd = new Map<string, Histogram>();
  readonly etcdErrors = new Map<string, number>();
  fences = 0;
  readonly watchdogPets: Record<WatchdogKind, number> = { systemd: 0, device: 0 };
  readonly promotions = new Map<string, PromotionStats>();

  loopDone(seconds: number): void {
    observe(this.loop, seconds);
  }

  etcdCall(op: string, seconds: number, ok: boolean): void {
    let h = this.etcd.get(op);
    if (h === undefined) this.etcd.set(op, (h = emptyHistogram()));
    observe(h, seconds);
    if (!ok) this.etcdErrors.set(op, (this.etcdErrors.get(op) ?? 0) + 1);
  }

  fenced(): void {
    this.fences += 1;
  }

  pet(kind: WatchdogKind): void {
    this.watchdogPets[kind] += 1;
  }

  /** A promotion finished; `outageSeconds` null when no previous leader was seen (bootstrap, agent start). */
  promoted(reason: string, outageSeconds: number | null): void {
    const p = this.promotions.get(reason) ?? { count: 0, outageSum: 0, outageCount: 0, lastOutage: null };
    p.count += 1;
    if (outageSeconds !== null) {
      p.outageSum += outageSeconds;
      p.outageCount += 1;
      p.lastOutage = outageSeconds;
    }
    this.promotions.set(reason, p);
  }
}

/** Not timed: the watch lives as long as the agent, close ends it. */
const UNTIMED: ReadonlySet<string> = new Set(['watchLeader', 'close']);

/**
 * The same Dcs, with every call's duration and failure recorded under its method name. A lost
 * compare-and-set (PGHA_DCS_CONFLICT) is an answer from etcd, not a failed call.
 */
export function instrumentDcs<T extends Dcs>(dcs: T, stats: AgentStats, now: () => number): T {
  return new Proxy(dcs, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop); // target, not the proxy: getters may read private fields
      if (typeof v !== 'function' || typeof prop !== 'string' || UNTIMED.has(prop)) return typeof v === 'function' ? v.bind(target) : v;
      const fn = v as (...a: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const t0 = now();
        const done = (ok: boolean) => stats.etcdCall(prop, (now() - t0) / 1000, ok);
        const r = fn.apply(target, args);
        if (!(r instanceof Promise)) return r;
        return r.then((x: unknown) => { done(true); return x; }, (err: unknown) => { done(isPgHaError(err, 'PGHA_DCS_CONFLICT')); throw err; });
      };
    },
  });
}
