// Schemas of every value read from etcd: nothing another process wrote is trusted unchecked.
import { z } from 'zod';
import { dynamicConfigSchema, isPeerAddress, isPeerHost } from '../config/schema.ts';
import type { HistoryEntry } from './types.ts';
import type { FailoverRequest, MemberInfo, SyncRecord } from '../ha/types.ts';
import { fromPatroniConfig } from './patroni-config.ts';
import { failoverFromValue, failsafeFromValue, historyListSchema, memberFromPatroni, patroniMemberSchema, statusValueSchema, syncValueSchema } from './patroni.ts';

const tags = z.object({
  nofailover: z.boolean(), noloadbalance: z.boolean(), clonefrom: z.boolean(), nosync: z.boolean(),
  failover_priority: z.number().int().min(0),
  nostream: z.boolean().default(false),
  replicatefrom: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional(),
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
  // Only shown by pghactl topology, never connected to.
  receivingFrom: z.string().max(300).optional(),
  pendingRestart: z.boolean(),
  agent: z.enum(['patroni', 'pgha']).optional(),
  patroniRole: z.string().max(64).optional(),
});

/** A member's REST address: scheme, peer host and port, no credentials, path, query or fragment. */
export function isApiUrl(s: string): boolean {
  const m = /^https?:\/\/([^/:@?#\s]+):(\d{1,5})$/.exec(s);
  return m !== null && isPeerHost(m[1] ?? '') && Number(m[2]) > 0 && Number(m[2]) < 65536;
}

/**
 * A members/<name> value: Patroni's format (as Patroni or pgha writes it; the name is the key's)
 * or pgha's earlier camelCase format. Either way it must pass memberInfoSchema's address checks.
 */
export function memberValueSchema(name: string): z.ZodType<MemberInfo, unknown> {
  return z.union([
    patroniMemberSchema.transform((v) => memberFromPatroni(name, v)).pipe(memberInfoSchema),
    memberInfoSchema.refine((m) => m.name === name, 'the value names another member than its key'),
  ]);
}

/** /history: Patroni's list of [timeline, lsn, reason, timestamp, new_leader] (or pgha's earlier objects). */
export const historySchema: z.ZodType<HistoryEntry[], unknown> = historyListSchema;

/** /failover (Patroni's or pgha's earlier format); null: no request (Patroni's leftover `{}`). */
export function decodeFailover(text: string, seenAt: number): { ok: true; value: FailoverRequest | null } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  return failoverFromValue(raw, seenAt);
}

/** /sync: Patroni's sync_standby list or pgha's earlier members array. */
export const syncSchema: z.ZodType<SyncRecord, unknown> = syncValueSchema;

const failsafeRecord = z.object({
  leader: z.string().min(1),
  members: z.record(z.string().min(1), z.url({ protocol: /^https?$/ })),
});

/** /failsafe: Patroni's {name: api_url} (the writer, the leader, is `leader`) or pgha's earlier {leader, members}. */
export function decodeFailsafe(text: string, leader: string | null): { ok: true; value: z.infer<typeof failsafeRecord> | null } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  const rec = failsafeFromValue(raw, leader);
  // Patroni's value names no writer: with nobody holding the leader key it is nobody's record.
  if (rec === null && leader === null && typeof raw === 'object' && raw !== null && !('leader' in raw)) return { ok: true, value: null };
  const r = failsafeRecord.safeParse(rec);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}

export const restartSchema = z.object({ at: z.number().int(), requestedAt: z.number().int() });

/** /unsafe/<member>: what pghactl verify found (epoch ms, and a short human summary). */
export const unsafeSchema = z.object({ at: z.number().int(), reason: z.string().max(2000) });

/** /status: Patroni's {"optime": bytes, "slots": ...} or pgha's earlier {"lsn": bytes}. */
export const statusSchema = statusValueSchema;

/** /config as stored (Patroni's format, or pgha's): read through fromPatroniConfig. */
export const storedConfigSchema = z.preprocess(fromPatroniConfig, dynamicConfigSchema);

export { dynamicConfigSchema };

/** Parse JSON text against a schema: the value, or the reason it does not fit (bad JSON or fields). */
export function decode<T>(schema: z.ZodType<T, unknown>, text: string): { ok: true; value: T } | { ok: false; error: string } {
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
