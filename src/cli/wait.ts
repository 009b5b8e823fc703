// Waiting for the outcome of an operator command, as patronictl does: observe the real effect
// (the leader key in etcd and the new leader's /primary answering 200; a member's own API
// reporting it back in service), never a fixed sleep. The verdicts are pure (unit-tested); the
// polling around them reads etcd and the agents' REST APIs.
import { apiRequest, jsonOf } from '../api/client.ts';
import type { ClientTls } from '../api/tls.ts';
import type { DynamicConfig } from '../config/schema.ts';
import { REQUEST_TTL_MS } from '../ha/decide.ts';
import type { MemberInfo } from '../ha/types.ts';
import { PgHaError } from '../errors.ts';
import type { Ctx } from './context.ts';
import { leaderMember } from '../ha/view.ts';

/** Poll pace: a handover takes about a second, so 100 ms keeps the measured time honest. */
const POLL_MS = 100;
/** One probe of an agent's API: it answers from memory in milliseconds; 1 s allows a loaded host. */
const PROBE_MS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What one poll saw of the leadership. */
export interface LeadershipSeen {
  /** Holder of the leader key, or null. */
  leader: string | null;
  /** That holder's GET /primary answered 200. */
  primaryOk: boolean;
  /** The /failover request is still in etcd. */
  pending: boolean;
}

export type Verdict = { done: true; leader: string } | { done: false; failed: string } | null;

/**
 * A switchover or failover from `from` (null: none) to `to` (null: any other member) is done
 * when a member it allows holds the key and answers /primary 200. It failed when the request
 * is gone (carried out, refused or dropped by the agents) while someone else leads. null: wait.
 */
export function judgeHandover(from: string | null, to: string | null, seen: LeadershipSeen): Verdict {
  if (seen.leader === null || !seen.primaryOk) return null;
  if (to !== null ? seen.leader === to : seen.leader !== from) return { done: true, leader: seen.leader };
  if (seen.pending) return null;
  return seen.leader === from
    ? { done: false, failed: `the request is gone and ${from} still leads (its agent's log says why, in its "plan" lines)` }
    : { done: false, failed: `${seen.leader} took over instead of ${to ?? 'a standby'}` };
}

/**
 * How long a switchover or failover may take before pghactl reports it did not happen. What it
 * waits for: the leader acts on the request on its next loop (loop_wait), stops PostgreSQL
 * cleanly and the candidate promotes, about a second in all. When that fails, the request goes
 * stale (REQUEST_TTL_MS, 30 s) and the key settles on some member within a ttl; a loaded host
 * may need another 30 s for pg_ctl to stop and start PostgreSQL.
 */
export function handoverTimeoutMs(cfg: DynamicConfig): number {
  return REQUEST_TTL_MS + 2 * (cfg.ttl + cfg.loop_wait) * 1000 + 30_000;
}

/** The HTTP status of a GET to an agent (verifying its certificate with the ctl TLS settings); null when it does not answer. */
export async function answers(url: string, tls: ClientTls | undefined): Promise<number | null> {
  try {
    return (await apiRequest(url, { tls, timeoutMs: PROBE_MS })).status;
  } catch {
    return null;
  }
}

export interface HandoverResult { leader: string; previous: string | null; seconds: number }

/** Poll etcd and the leader's /primary until judgeHandover decides; `startedAt` is performance.now() before the request. */
export async function waitForHandover(ctx: Ctx, kind: string, from: string | null, to: string | null, startedAt: number): Promise<HandoverResult> {
  const first = await ctx.dcs.readCluster(ctx.fallback);
  const timeoutMs = handoverTimeoutMs(first.config);
  let last: LeadershipSeen = { leader: null, primaryOk: false, pending: true };
  while (performance.now() - startedAt < timeoutMs) {
    // An etcd call that fails now and then does not decide the outcome: poll again until the deadline.
    const view = await ctx.dcs.readCluster(ctx.fallback).catch(() => null);
    if (view === null) { await sleep(POLL_MS); continue; }
    const holder = leaderMember(view);
    last = { leader: view.leader?.name ?? null, primaryOk: holder !== undefined && (await answers(`${holder.apiUrl}/primary`, ctx.tls)) === 200, pending: view.failover !== null };
    const v = judgeHandover(from, to, last);
    if (v !== null && v.done) return { leader: v.leader, previous: from, seconds: (performance.now() - startedAt) / 1000 };
    if (v !== null) throw new PgHaError('PGHA_CLI_NOT_DONE', `${kind} did not happen: ${v.failed}`);
    await sleep(POLL_MS);
  }
  throw new PgHaError('PGHA_CLI_NOT_DONE', `${kind} did not complete within ${Math.round(timeoutMs / 1000)} s: leader ${last.leader ?? 'none'}${last.leader !== null && !last.primaryOk ? ' (its /primary does not answer 200)' : ''}${last.pending ? ', request still pending' : ''}; see pghactl list`);
}

/** What a member's GET /status says, as far as waiting needs it. */
interface Status { role?: string; state?: string; age_ms?: number | null }

/**
 * A member is back in service after an operation that returned at `since` (performance.now()):
 * its agent's snapshot was taken after that moment, and it runs as the role it should (a
 * primary holding the key, or a streaming standby).
 */
export function backInService(s: Status | null, msSince: number, asLeader: boolean): boolean {
  if (s === null || typeof s.age_ms !== 'number' || s.age_ms >= msSince) return false;
  return asLeader ? s.role === 'primary' && s.state === 'running' : s.role === 'replica' && s.state === 'streaming';
}

async function status(m: MemberInfo, tls: ClientTls | undefined): Promise<Status | null> {
  try {
    const r = await apiRequest(`${m.apiUrl}/status`, { tls, timeoutMs: PROBE_MS });
    return r.status === 200 ? (jsonOf(r) as Status) : null;
  } catch {
    return null;
  }
}

/** Poll a member's /status until backInService, or fail after timeoutMs (the caller says why that long). */
export async function waitForMember(m: MemberInfo, asLeader: boolean, since: number, timeoutMs: number, what: string, tls?: ClientTls): Promise<number> {
  let last: Status | null = null;
  while (performance.now() - since < timeoutMs) {
    last = await status(m, tls);
    const primaryOk = !asLeader || (await answers(`${m.apiUrl}/primary`, tls)) === 200;
    if (primaryOk && backInService(last, performance.now() - since, asLeader)) return (performance.now() - since) / 1000;
    await sleep(POLL_MS);
  }
  const seen = last === null ? 'its API does not answer' : `it reports ${last.role ?? '?'}, ${last.state ?? '?'}`;
  throw new PgHaError('PGHA_CLI_NOT_DONE', `${m.name}: ${what} not back in service within ${Math.round(timeoutMs / 1000)} s (${seen}); see pghactl list`);
}
