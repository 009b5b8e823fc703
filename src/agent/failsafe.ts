// Failsafe mode, the leader's calls: with etcd unreachable, POST /failsafe to every other member
// listed in the last /failsafe record and report who confirmed. The decision to stay primary is
// made by decide() from this round (src/ha/failsafe.ts).
import type { NodeConfig } from '../config/schema.ts';
import type { FailsafeRecord, FailsafeRound } from '../ha/types.ts';

export interface FailsafeCallOptions {
  self: string;
  record: FailsafeRecord;
  /** The leader authenticates with its own restapi.authentication: members must share it. */
  auth: NodeConfig['restapi']['authentication'];
  /** Deadline of each call, ms. */
  timeoutMs: number;
  /** Monotonic clock, ms. */
  now(): number;
}

async function confirms(url: string, o: FailsafeCallOptions): Promise<boolean> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.auth !== undefined) headers.authorization = `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`).toString('base64')}`;
  try {
    const r = await fetch(new URL('/failsafe', url), {
      method: 'POST', headers, body: JSON.stringify({ leader: o.self }), signal: AbortSignal.timeout(o.timeoutMs),
    });
    await r.arrayBuffer().catch(() => undefined);
    return r.status === 200;
  } catch {
    return false; // unreachable, refused, timed out: not a confirmation
  }
}

/** One round: every member but ourselves, in parallel. `sentAt` is taken before the first call. */
export async function failsafeRound(o: FailsafeCallOptions): Promise<FailsafeRound> {
  const asked = Object.keys(o.record.members).filter((n) => n !== o.self).sort();
  const sentAt = o.now();
  const answers = await Promise.all(asked.map((n) => confirms(o.record.members[n] ?? '', o)));
  return { sentAt, asked, confirmed: asked.filter((_, i) => answers[i] === true) };
}
