// Operations endpoints (the REST twin of pghactl). All mutating routes need basic auth, checked in
// onRequest before any body is read; bodies are validated with zod (400 with the reason);
// refusals answer 412 with the reason. GET /config and /history answer from the HA loop's last
// etcd read, so a flood of them never reaches etcd through the loop's client.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import type { Dcs, HistoryEntry } from '../dcs/types.ts';
import type { ClusterView } from '../ha/types.ts';
import { PgHaError, isPgHaError } from '../errors.ts';
import type { FailsafeAnswer } from '../ha/failsafe.ts';
import { leaderCheck } from '../slots/check.ts';
import { cancelHandover, editConfig, mergePatch, missingForPut, requestHandover } from '../ops/store.ts';
import { Lockout } from './lockout.ts';
import { badRequest, requireAuth } from './server.ts';
import { requireTargetMember, type PublishedAddresses } from './target-member.ts';
import { restConnectAddress } from '../config/schema.ts';
import { memberByName } from '../ha/view.ts';
import { failsafeBodySchema, failsafeCaller } from './failsafe-body.ts';

/**
 * The furthest ahead a restart may be scheduled (ms): 7 days covers "the next maintenance window"
 * while a forgotten schedule cannot wait for months; the loop checks it every loop_wait, no timer.
 */
export const MAX_RESTART_AHEAD_MS = 7 * 86_400_000;

export interface OpsDeps {
  config: NodeConfig;
  dcs: Dcs;
  /** The HA loop's last successful read of the cluster (null before the first). */
  view: () => ClusterView | null;
  /** /history as of that read (null: not read yet or invalid). */
  history: () => HistoryEntry[] | null;
  fallback: () => DynamicConfig;
  isLeader: () => boolean;
  restart: () => Promise<void>;
  reload: () => Promise<void>;
  reinitialize: () => Promise<void>;
  /** Drills: crash (SIGKILL) or stop (immediate) this member's PostgreSQL. */
  drill: (kind: 'kill' | 'stop') => Promise<void>;
  /** POST /failsafe from a leader that cannot reach etcd: confirm it or refuse. */
  failsafe: (leader: string, ttl?: number) => FailsafeAnswer;
}

// Patroni's bodies too (patronictl sends {"leader", "candidate", "scheduled_at"} with nulls for
// what it leaves open; Patroni's API also takes "member" for the candidate): api.py do_POST_failover.
const optName = z.string().min(1).nullable().optional();
const switchoverBody = z.strictObject({
  leader: optName,
  candidate: optName,
  member: optName,
  scheduled_at: z.iso.datetime({ offset: true }).nullable().optional(),
});
const failoverBody = z.strictObject({ leader: optName, candidate: optName, member: optName, scheduled_at: z.null().optional(), force: z.boolean().optional() })
  .refine((b) => (b.candidate ?? b.member) != null, { message: 'a failover needs a candidate', path: ['candidate'] });
const memberOpBody = z.strictObject({ force: z.boolean().optional() }).optional();
// restart_pending: Patroni's filter (patronictl restart --pending): restart only if a changed
// parameter needs it. Patroni's other filters (postgres_version, role, timeout) are refused: 400.
const restartBody = z.strictObject({ force: z.boolean().optional(), schedule: z.iso.datetime({ offset: true }).optional(), restart_pending: z.boolean().optional() }).optional();

/** Refusals answered 400 (a bad value), 409 (lost a race with another request) or 412 (not now), with the code and the reason. */
const REFUSALS: Record<string, 400 | 409 | 412> = {
  PGHA_CLI_REFUSED: 412, PGHA_DCS_CONFLICT: 409, PGHA_CONFIG_INVALID: 400, PGHA_CONFIG_UNSAFE: 400,
  PGHA_SLOT_NAME_CLASH: 400, PGHA_LOGICAL_PLUGIN_UNKNOWN: 400, PGHA_LOGICAL_DATABASE_UNKNOWN: 400, PGHA_LOGICAL_UNCHECKED: 412,
};

function fail(reply: FastifyReply, err: unknown) {
  if (isPgHaError(err) && REFUSALS[err.code] !== undefined) return reply.code(REFUSALS[err.code]!).send({ error: err.code, message: err.message });
  if (isPgHaError(err)) return reply.code(503).send({ error: err.code, message: err.message });
  throw err;
}

function parse<T>(schema: z.ZodType<T>, body: unknown, reply: FastifyReply): T | undefined {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  void badRequest(reply, r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return undefined;
}

export function registerOpsRoutes(app: FastifyInstance, d: OpsDeps): void {
  // onRequest: credentials are checked before the body is read, let alone parsed. After that,
  // the target member (X-Pgha-Member) is checked when named, and required on the member-scoped
  // operations (target-member.ts).
  const authenticated = requireAuth(() => d.config.restapi.authentication, new Lockout());
  const auth = { onRequest: authenticated, preHandler: requireTargetMember(d.config.name, false) };
  const published = (): PublishedAddresses | null => {
    const v = d.view();
    if (v === null) return null;
    const hostPort = (url: string) => url.replace(/^https?:\/\//, '');
    return { own: restConnectAddress(d.config), others: v.members.filter((m) => m.name !== d.config.name).map((m) => hostPort(m.apiUrl)) };
  };
  const memberAuth = { onRequest: authenticated, preHandler: requireTargetMember(d.config.name, true, published) };
  const notRead = (reply: FastifyReply, what: string) =>
    reply.code(503).send({ error: 'PGHA_DCS_UNAVAILABLE', message: `${what} has not been read from etcd yet` });

  app.post('/switchover', auth, async (req, reply) => {
    const b = parse(switchoverBody, req.body ?? {}, reply);
    if (b === undefined) return reply;
    try {
      const r = await requestHandover(d.dcs, { kind: 'switchover', leader: b.leader ?? undefined, candidate: b.candidate ?? b.member ?? undefined, scheduledAt: b.scheduled_at ? Date.parse(b.scheduled_at) : undefined }, d.fallback());
      return reply.code(202).send(r);
    } catch (err) { return fail(reply, err); }
  });
  app.delete('/switchover', auth, async (_req, reply) => {
    try { return reply.send({ cancelled: await cancelHandover(d.dcs, d.fallback()) }); } catch (err) { return fail(reply, err); }
  });
  app.post('/failover', auth, async (req, reply) => {
    const b = parse(failoverBody, req.body, reply);
    if (b === undefined) return reply;
    const candidate = (b.candidate ?? b.member) as string;
    // patronictl failover names the current leader: Patroni's leader then steps down for the
    // candidate as in a switchover, so pgha runs it as one (the leader's last WAL reaches the
    // candidate first). Without a healthy leader named, it is pgha's failover.
    const leader = d.view()?.leader?.name ?? null;
    const input = b.leader != null && b.leader === leader && !b.force
      ? { kind: 'switchover' as const, leader: b.leader, candidate }
      : { kind: 'failover' as const, candidate, force: b.force };
    try { return reply.code(202).send(await requestHandover(d.dcs, input, d.fallback())); } catch (err) { return fail(reply, err); }
  });
  app.get('/history', async (_req, reply) => {
    const h = d.history();
    return h === null ? notRead(reply, '/history (or it is invalid there)') : reply.send(h);
  });
  app.get('/config', async (_req, reply) => {
    const v = d.view();
    if (v === null) return notRead(reply, '/config');
    // An invalid /config in etcd: the value the agent runs with (the last valid one), flagged.
    if (v.configInvalid != null) void reply.header('x-pgha-config-invalid', v.configInvalid.kept ? 'kept-last-valid' : 'node-file');
    return reply.send(v.config);
  });
  for (const method of ['PATCH', 'PUT'] as const) {
    app.route({ method, url: '/config', onRequest: auth.onRequest, handler: async (req, reply) => {
      const body = req.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return badRequest(reply, 'body: expected a JSON object');
      const patch = body as Record<string, unknown>;
      // PUT replaces the whole document: a partial one would silently reset every key it leaves
      // out (pause, synchronous_mode ...) to its default. Use PATCH for a partial change.
      const missing = method === 'PUT' ? missingForPut(patch) : [];
      if (missing.length > 0) return badRequest(reply, `PUT /config replaces the whole document; missing: ${missing.join(', ')} (use PATCH for a partial change)`);
      try {
        const check = leaderCheck(d.config.postgresql.authentication.superuser);
        const { after } = await editConfig(d.dcs, (c) => (method === 'PATCH' ? mergePatch(c, patch) : patch), d.fallback(), 'request body', method === 'PUT', check);
        return reply.send(after);
      } catch (err) { return fail(reply, err); }
    } });
  }
  const memberOp = (url: string, run: () => Promise<void>, leaderOk: boolean) => {
    app.post(url, memberAuth, async (req, reply) => {
      if (parse(memberOpBody, req.body ?? undefined, reply) === undefined && reply.sent) return reply;
      if (!leaderOk && d.isLeader()) return fail(reply, new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is the leader: ${url.slice(1)} is refused on the leader`));
      try { await run(); return reply.send({ ok: true, member: d.config.name }); } catch (err) { return fail(reply, err); }
    });
  };
  app.post('/restart', memberAuth, async (req, reply) => {
    const b = parse(restartBody, req.body ?? undefined, reply);
    if (reply.sent) return reply;
    if (b?.schedule !== undefined && b.restart_pending !== undefined) return badRequest(reply, 'restart_pending applies to an immediate restart only');
    if (b?.schedule !== undefined) {
      // Kept in etcd (/restart/<member>, no lease), so it survives an agent restart; the loop
      // runs it once due (agent/loop.ts). Cancel: DELETE /restart or pghactl flush restart.
      const at = Date.parse(b.schedule);
      const now = Date.now();
      if (at <= now) return badRequest(reply, `schedule: ${b.schedule} is in the past`);
      if (at - now > MAX_RESTART_AHEAD_MS) return badRequest(reply, `schedule: ${b.schedule} is more than ${MAX_RESTART_AHEAD_MS / 86_400_000} days ahead`);
      try {
        if (!(await d.dcs.scheduleRestart(d.config.name, at, now))) {
          return fail(reply, new PgHaError('PGHA_CLI_REFUSED', `a restart of ${d.config.name} is already scheduled: cancel it first (DELETE /restart, pghactl flush restart)`));
        }
        return reply.code(202).send({ scheduled: new Date(at).toISOString(), member: d.config.name });
      } catch (err) { return fail(reply, err); }
    }
    if (b?.restart_pending === true && memberByName(d.view(), d.config.name)?.pendingRestart !== true) {
      return fail(reply, new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} has no pending restart: not restarted (restart_pending)`));
    }
    try { await d.restart(); return reply.send({ ok: true, member: d.config.name }); } catch (err) { return fail(reply, err); }
  });
  app.delete('/restart', auth, async (_req, reply) => {
    try { return reply.send({ cancelled: await d.dcs.cancelRestart(d.config.name), member: d.config.name }); } catch (err) { return fail(reply, err); }
  });
  memberOp('/reload', d.reload, true);
  const drillBody = z.strictObject({ kind: z.enum(['kill', 'stop']) });
  app.post('/drill', memberAuth, async (req, reply) => {
    const b = parse(drillBody, req.body, reply);
    if (b === undefined) return reply;
    if (!d.isLeader()) return fail(reply, new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is not the leader: drills act on the primary only`));
    try { await d.drill(b.kind); return reply.send({ ok: true, member: d.config.name, kind: b.kind }); } catch (err) { return fail(reply, err); }
  });
  memberOp('/reinitialize', d.reinitialize, false);
  // Failsafe mode: answered from memory, never waiting on etcd or PostgreSQL, so the leader's
  // short deadline on this call is met.
  // Both dialects (src/api/failsafe-body.ts): pgha's JSON answer, or Patroni's text `Accepted`
  // (200) / the reason (500), which is what a Patroni 3.0.2 leader checks.
  app.post('/failsafe', auth, async (req, reply) => {
    const b = parse(failsafeBodySchema, req.body, reply);
    if (b === undefined) return reply;
    const { leader, patroni } = failsafeCaller(b);
    const a = d.failsafe(leader, b.ttl);
    if (patroni) return a.ok ? reply.type('text/plain').send('Accepted') : reply.code(500).type('text/plain').send(a.reason);
    if (a.ok) return reply.send({ accepted: true, member: d.config.name, leader });
    return reply.code(409).send({ error: 'PGHA_FAILSAFE_REFUSED', message: a.reason });
  });
}
