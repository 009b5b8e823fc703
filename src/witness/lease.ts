// The lease witness's rule and its input (pure). The agent tells the witness, one JSON line per
// change on its stdin, what the lease allows:
//   {"lease":"deadline","at":<ms on CLOCK_MONOTONIC>}  the leader's fence deadline (send time of
//                                                      the last acknowledged keepalive + ttl - fence_margin)
//   {"lease":"open"}                                   the cluster is paused: no deadline, confirm
//   {"lease":"closed"}                                 no lease: confirm nothing
// The witness confirms WAL (a standby status update with a new flush position) only when
// mayConfirm() holds for the clock read immediately before the write. Its first line is the
// connection (WitnessStart), which carries the replication password: never logged.

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

// The two lines come from the agent over a pipe, not from outside; they are checked by hand
// rather than with zod, which would add about 20 MB to this small process.

/** One lease line; null for anything else (a garbled line changes nothing). */
export function parseLease(line: string): Lease | null {
  const r = parseObject(line);
  if (r === null) return null;
  const keys = Object.keys(r).sort().join(',');
  if ((r.lease === 'closed' || r.lease === 'open') && keys === 'lease') return { mode: r.lease };
  if (r.lease === 'deadline' && keys === 'at,lease' && typeof r.at === 'number' && Number.isFinite(r.at)) return { mode: 'deadline', at: r.at };
  return null;
}

/** The line the agent writes for `l`. */
export function formatLease(l: Lease): string {
  return `${JSON.stringify(l.mode === 'deadline' ? { lease: 'deadline', at: l.at } : { lease: l.mode })}\n`;
}

export interface WitnessStart {
  host: string;
  port: number;
  user: string;
  password: string;
  /** application_name: what synchronous_standby_names lists. */
  applicationName: string;
  /** Ask for TLS first (postgresql.ssl is set: pg_hba may allow replication only over hostssl). */
  ssl: boolean;
  /**
   * The replication role's TLS keys (postgresql.authentication.replication), as libpq reads them:
   * a client certificate and key (pg_hba clientcert=, cert), and the server check (sslmode
   * verify-ca / verify-full against sslrootcert). Paths; the witness reads the files.
   */
  tls: { sslmode?: string; sslrootcert?: string; sslcert?: string; sslkey?: string };
}

const START_KEYS = 'applicationName,host,password,port,ssl,tls,user';
const TLS_KEYS = new Set(['sslmode', 'sslrootcert', 'sslcert', 'sslkey']);

/** The first line: the connection. Throws (naming fields, never echoing values: the line holds the password). */
export function parseStart(line: string): WitnessStart {
  const r = parseObject(line);
  if (r === null) throw new Error('the first line is not a JSON object');
  const bad = [
    Object.keys(r).sort().join(',') !== START_KEYS ? 'keys' : '',
    typeof r.host !== 'string' || r.host === '' ? 'host' : '',
    typeof r.port !== 'number' || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535 ? 'port' : '',
    typeof r.user !== 'string' || r.user === '' ? 'user' : '',
    typeof r.password !== 'string' ? 'password' : '',
    typeof r.applicationName !== 'string' || r.applicationName === '' || r.applicationName.length > 63 ? 'applicationName' : '',
    typeof r.ssl !== 'boolean' ? 'ssl' : '',
    !isTls(r.tls) ? 'tls' : '',
  ].filter((x) => x !== '');
  if (bad.length > 0) throw new Error(`the first line is not a witness start: ${bad.join(', ')}`);
  return r as unknown as WitnessStart;
}

function isTls(t: unknown): boolean {
  return typeof t === 'object' && t !== null && !Array.isArray(t)
    && Object.entries(t).every(([k, v]) => TLS_KEYS.has(k) && typeof v === 'string');
}

function parseObject(line: string): Record<string, unknown> | null {
  let raw: unknown;
  try { raw = JSON.parse(line); } catch { return null; }
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw as Record<string, unknown> : null;
}
