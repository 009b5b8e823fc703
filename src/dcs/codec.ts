// Schemas of every value read from etcd: nothing another process wrote is trusted unchecked.
import { z } from 'zod';
import { dynamicConfigSchema, isPeerAddress, isPeerHost } from '../config/schema.ts';
import type { HistoryEntry } from './types.ts';
import type { FailoverRequest, MemberInfo } from '../ha/types.ts';

const tags = z.object({
  nofailover: z.boolean(), noloadbalance: z.boolean(), clonefrom: z.boolean(), nosync: z.boolean(),
  failover_priority: z.number().int().min(0),
});

export const memberInfoSchema: z.ZodType<MemberInfo> = z.object({
  // As nodeConfigSchema's name: it becomes an application_name and a slot name.
  name: z.string().min(1).regex(/^[A-Za-z0-9_.-]+$/),
  role: z.enum(['primary', 'standby', 'unknown']),
  state: z.enum(['running', 'streaming', 'starting', 'stopped', 'crashed', 'rewinding', 'cloning', 'bootstrapping', 'fenced']),
  timeline: z.number().int().nullable(),
  lsn: z.number().nullable(),
  apiUrl: z.string().refine(isApiUrl, 'expected http(s)://host:port with an IPv4 address or a DNS name, nothing else'),
  // Other members connect here with the replication and rewind passwords: host and port only.
  conn: z.string().refine(isPeerAddress, 'expected host:port with an IPv4 address or a DNS name'),
  tags,
  upstream: z.string().nullable(),
  pendingRestart: z.boolean(),
});

/** A member's REST address: scheme, peer host and port, no credentials, path, query or fragment. */
export function isApiUrl(s: string): boolean {
  const m = /^https?:\/\/([^/:@?#\s]+):(\d{1,5})$/.exec(s);
  return m !== null && isPeerHost(m[1] ?? '') && Number(m[2]) > 0 && Number(m[2]) < 65536;
}

export const historySchema: z.ZodType<HistoryEntry[]> = z.array(z.object({
  timeline: z.number().int(), lsn: z.string(), reason: z.string(), time: z.string(), leader: z.string(),
}));

export const failoverSchema: z.ZodType<FailoverRequest> = z.object({
  kind: z.enum(['switchover', 'failover']),
  leader: z.string().nullable(),
  candidate: z.string().nullable(),
  scheduledAt: z.number().nullable(),
  requestedAt: z.number(),
  shutdownLsn: z.number().nullable(),
});

export const syncSchema = z.object({ leader: z.string(), members: z.array(z.string()), acks: z.number().int().min(0).optional() });

export const failsafeSchema = z.object({
  leader: z.string().min(1),
  members: z.record(z.string().min(1), z.url({ protocol: /^https?$/ })),
});

export const restartSchema = z.object({ at: z.number().int(), requestedAt: z.number().int() });

// slots: the leader's logical slots and the position each consumer confirmed (Patroni's /status
// carries the same); absent when logical replication was never managed.
export const statusSchema = z.object({ lsn: z.number(), timeline: z.number().int().optional(), slots: z.record(z.string().regex(/^[a-z0-9_]{1,63}$/), z.number().min(0)).optional() });

export { dynamicConfigSchema };

/** Parse JSON text against a schema: the value, or the reason it does not fit (bad JSON or fields). */
export function decode<T>(schema: z.ZodType<T>, text: string): { ok: true; value: T } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  const r = schema.safeParse(raw);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * `decode`, remembered per etcd key and mod_revision: etcd gives every modification of a key a new
 * revision, so the same key at the same revision holds the same text, and the loop (which reads
 * the whole cluster prefix every loop_wait) validates each value once instead of every loop. The
 * values handed out are frozen (deeply), since later reads share them; a failure is remembered
 * too, so the caller warns about it as before.
 */
export class DecodeCache {
  readonly #entries = new Map<string, { revision: string; schema: unknown; result: Decoded<unknown> }>();
  readonly #seen = new Set<string>();

  decode<T>(schema: z.ZodType<T>, key: string, revision: string, text: string): Decoded<T> {
    this.#seen.add(key);
    const hit = this.#entries.get(key);
    if (hit !== undefined && hit.revision === revision && hit.schema === schema) return hit.result as Decoded<T>;
    const result = decode(schema, text);
    if (result.ok) deepFreeze(result.value);
    this.#entries.set(key, { revision, schema, result });
    return result;
  }

  /** Forget the keys not decoded since the last sweep (deleted ones): call after each whole read. */
  sweep(): void {
    for (const key of this.#entries.keys()) if (!this.#seen.has(key)) this.#entries.delete(key);
    this.#seen.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

function deepFreeze(v: unknown): void {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v)) deepFreeze(x);
}
