// Failsafe mode, the agent's part. As leader with etcd unreachable: POST /failsafe to every other
// member listed in the last /failsafe record and report who confirmed (decide() weighs the round,
// src/ha/failsafe.ts). As member: answer such calls and keep the promise they create.
import { apiRequest } from '../api/client.ts';
import { patroniFailsafeFields } from '../api/failsafe-body.ts';
import type { ClientTls } from '../api/tls.ts';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import { answerFailsafeCall, liveHold, type FailsafeAnswer } from '../ha/failsafe.ts';
import type { FailsafeHold, FailsafeRecord, FailsafeRound, LocalPostgres } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import { PgHaError } from '../errors.ts';

export interface FailsafeCallOptions {
  self: string;
  record: FailsafeRecord;
  /** The leader authenticates with its own restapi.authentication: members must share it. */
  auth: NodeConfig['restapi']['authentication'];
  /** Verify the members' certificates (and present ours) when their API is https://. */
  tls?: ClientTls | undefined;
  /** Deadline of each call, ms. */
  timeoutMs: number;
  /** Our ttl (seconds), sent along: a member whose own ttl is shorter refuses to confirm. */
  ttl: number;
  /** Our PostgreSQL host:port, sent in Patroni's fields so that a Patroni member can confirm us. */
  conn?: string | undefined;
  /** Monotonic clock, ms. */
  now(): number;
}

/** Why a member did not confirm: its HTTP answer, or the network/TLS/timeout error. */
async function confirms(member: string, url: string, o: FailsafeCallOptions): Promise<string | null> {
  try {
    // Patroni's fields beside pgha's: a Patroni 3.0.2 member reads name/conn_url/api_url (mixed clusters).
    const patroni = o.conn === undefined ? {} : patroniFailsafeFields(o.self, o.conn, o.record.members[o.self] ?? '');
    const r = await apiRequest(new URL('/failsafe', url), { body: { leader: o.self, ttl: o.ttl, ...patroni }, auth: o.auth, member, tls: o.tls, timeoutMs: o.timeoutMs });
    return r.status === 200 ? null : `HTTP ${r.status}`;
  } catch (err) {
    return (err as Error).message; // unreachable, refused, TLS failure, timed out: not a confirmation
  }
}

/** One round: every member but ourselves, in parallel. `sentAt` is taken before the first call. */
export async function failsafeRound(o: FailsafeCallOptions): Promise<FailsafeRound & { why: Record<string, string> }> {
  const asked = Object.keys(o.record.members).filter((n) => n !== o.self).sort();
  const sentAt = o.now();
  const answers = await Promise.all(asked.map((n) => confirms(n, o.record.members[n] ?? '', o)));
  const why: Record<string, string> = {};
  asked.forEach((n, i) => { if (answers[i] !== null) why[n] = answers[i] ?? ''; });
  return { sentAt, asked, confirmed: asked.filter((_, i) => answers[i] === null), why };
}

/**
 * `p`, or PGHA_DCS_TIMEOUT once `budgetMs` has passed (null: no bound but p's own). The abandoned
 * call runs on and its result is dropped: a keepalive etcd acknowledges late only lengthens the
 * lease, and nothing is armed from it.
 */
export async function withinBudget<T>(p: Promise<T>, budgetMs: number | null, what: string, expired?: () => void): Promise<T> {
  if (budgetMs === null) return p;
  p.catch(() => undefined); // abandoned on timeout: its failure is nobody's
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    // The time left before a failsafe round is due (src/ha/lease.ts etcdBudget).
    timer = setTimeout(() => {
      expired?.();
      reject(new PgHaError('PGHA_DCS_TIMEOUT', `${what}: no answer from etcd before the failsafe round was due`, { retryable: true }));
    }, Math.max(0, budgetMs));
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FailsafeAgentDeps {
  config: NodeConfig;
  /** TLS of the calls to members (loadClientTls), read at start. */
  tls?: ClientTls | undefined;
  logger: Logger;
  now(): number;
}

/** What this member knows when a POST /failsafe arrives (the loop's latest state). */
export interface FailsafeState {
  /** Dynamic config as last read from etcd. */
  dyn: DynamicConfig;
  /** /failsafe at the last successful etcd read. */
  record: FailsafeRecord | null;
  /** Leader key holder at the last successful etcd read. */
  lastLeader: string | null;
  /** Running as primary, holding the key, or acquiring it right now. */
  actsAsLeader: boolean;
}

export class FailsafeAgent {
  readonly #d: FailsafeAgentDeps;
  /**
   * The last promise this member gave (see answerFailsafeCall). Set by POST /failsafe, which
   * arrives outside the loop; the loop reads it into each observation.
   */
  hold: FailsafeHold | null = null;

  constructor(deps: FailsafeAgentDeps) {
    this.#d = deps;
  }

  activeHold(): FailsafeHold | null {
    return liveHold(this.hold, this.#d.now());
  }

  /**
   * A round, when this member runs as primary with failsafe_mode, a live fence `deadline` and
   * its own record (the /failsafe of the last etcd read).
   */
  async round(local: LocalPostgres, record: FailsafeRecord | null, deadline: number | null, dyn: DynamicConfig): Promise<FailsafeRound | null> {
    const { config, now } = this.#d;
    if (!dyn.failsafe_mode || record === null || record.leader !== config.name) return null;
    if (!local.running || local.role !== 'primary' || deadline === null || now() >= deadline) return null;
    const round = await failsafeRound({
      self: config.name, record, auth: config.restapi.authentication, tls: this.#d.tls, now, ttl: dyn.ttl,
      conn: config.postgresql.connect_address ?? config.postgresql.listen,
      // Each member gets as long as one etcd call (retry_timeout): it answers from memory in
      // milliseconds on a LAN, and the round must end well inside what is left of the deadline.
      timeoutMs: dyn.retry_timeout * 1000,
    });
    const missing = round.asked.filter((n) => !round.confirmed.includes(n));
    if (missing.length > 0) this.#d.logger.warn({ event: 'failsafe', missing, why: round.why }, `failsafe: not confirmed by ${missing.join(', ')}`);
    const { why: _, ...plain } = round;
    return plain;
  }

  /**
   * POST /failsafe from `caller`: confirm it (and promise not to race for our ttl) or refuse. A
   * caller asking for longer than our ttl is refused (answerFailsafeCall).
   */
  answer(caller: string, callerTtl: number | undefined, state: FailsafeState): FailsafeAnswer {
    const { config, now, logger } = this.#d;
    const { dyn } = state;
    const answer = answerFailsafeCall({
      caller, self: config.name, failsafeMode: dyn.failsafe_mode, actsAsLeader: state.actsAsLeader,
      lastLeader: state.lastLeader, hold: this.hold, now: now(), ttlMs: dyn.ttl * 1000,
      callerTtlMs: callerTtl === undefined ? undefined : callerTtl * 1000, recordLeader: state.record?.leader ?? null,
    });
    if (!answer.ok) {
      logger.warn({ event: 'failsafe refused', leader: caller, reason: answer.reason }, `failsafe: refused ${caller}: ${answer.reason}`);
      return answer;
    }
    if (this.activeHold()?.leader !== caller) {
      logger.warn({ event: 'failsafe', leader: caller }, `failsafe: confirmed ${caller} as leader; not racing for one TTL after each call`);
    }
    this.hold = answer.hold;
    return answer;
  }
}
