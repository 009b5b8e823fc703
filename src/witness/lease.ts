// The lease witness's rule and its input (pure). The agent tells the witness, one JSON line per
// change on its stdin, what the lease allows:
//   {"lease":"deadline","at":<ms on CLOCK_MONOTONIC>}  the leader's fence deadline (send time of
//                                                      the last acknowledged keepalive + ttl - fence_margin)
//   {"lease":"open"}                                   the cluster is paused: no deadline, confirm
//   {"lease":"closed"}                                 no lease: confirm nothing
// The witness confirms WAL (a standby status update with a new flush position) only when
// mayConfirm() holds for the clock read immediately before the write. Its first line is the
// connection (WitnessStart), which carries the replication password: never logged.
import { z } from 'zod';

export type Lease = { mode: 'closed' } | { mode: 'open' } | { mode: 'deadline'; at: number };

export const CLOSED: Lease = { mode: 'closed' };

/** True when a confirmation written at `nowMs` (CLOCK_MONOTONIC) may release commits. */
export function mayConfirm(lease: Lease, nowMs: number): boolean {
  if (lease.mode === 'open') return true;
  if (lease.mode === 'closed') return false;
  return nowMs < lease.at;
}

/**
 * The agent is gone (stdin closed): nobody renews, nobody can pause. A deadline still holds until
 * it passes (the lease is ours until then); an open lease closes.
 */
export function orphaned(lease: Lease): Lease {
  return lease.mode === 'deadline' ? lease : CLOSED;
}

const leaseLine = z.discriminatedUnion('lease', [
  z.strictObject({ lease: z.literal('closed') }),
  z.strictObject({ lease: z.literal('open') }),
  z.strictObject({ lease: z.literal('deadline'), at: z.number().finite() }),
]);

/** One lease line; null for anything else (a garbled line changes nothing). */
export function parseLease(line: string): Lease | null {
  let raw: unknown;
  try { raw = JSON.parse(line); } catch { return null; }
  const r = leaseLine.safeParse(raw);
  if (!r.success) return null;
  return r.data.lease === 'deadline' ? { mode: 'deadline', at: r.data.at } : { mode: r.data.lease };
}

/** The line the agent writes for `l`. */
export function formatLease(l: Lease): string {
  return `${JSON.stringify(l.mode === 'deadline' ? { lease: 'deadline', at: l.at } : { lease: l.mode })}\n`;
}

export const witnessStart = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  user: z.string().min(1),
  password: z.string(),
  applicationName: z.string().min(1).max(63),
  /** Ask for TLS first (postgresql.ssl is set: pg_hba may allow replication only over hostssl). */
  ssl: z.boolean(),
});
export type WitnessStart = z.infer<typeof witnessStart>;

/** The first line: the connection. Throws (without echoing the line, which holds the password). */
export function parseStart(line: string): WitnessStart {
  let raw: unknown;
  try { raw = JSON.parse(line); } catch { throw new Error('the first line is not JSON'); }
  const r = witnessStart.safeParse(raw);
  if (!r.success) throw new Error(`the first line is not a witness start: ${r.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  return r.data;
}
