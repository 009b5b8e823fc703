// POST /promote-cluster and POST /demote-cluster (pghactl promote-cluster / demote-cluster):
// basic auth before the body is read, the body validated with zod, the work in src/ops/standby.ts.
// Answers: 200 with the report; 400 a bad or self-pointing target, or another system; 409 the
// wrong state, an unreachable target or a writable source; 503 etcd.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { NodeConfig } from '../config/schema.ts';
import { isPgHaError } from '../errors.ts';
import { demoteCluster, promoteCluster, type StandbyOpsDeps } from '../ops/standby.ts';
import { Lockout } from './lockout.ts';
import { badRequest, requireAuth } from './server.ts';
import { requireTargetMember } from './target-member.ts';

const STATUS: Record<string, 400 | 409> = {
  PGHA_CONFIG_INVALID: 400, PGHA_STANDBY_SOURCE_INVALID: 400,
  PGHA_STANDBY_STATE: 409, PGHA_STANDBY_SOURCE_UNREACHABLE: 409, PGHA_STANDBY_SOURCE_WRITABLE: 409, PGHA_DCS_CONFLICT: 409,
};

const promoteBody = z.strictObject({ force: z.boolean().optional() }).optional();
const demoteBody = z.strictObject({
  host: z.string().min(1),
  port: z.union([z.number().int(), z.string().min(1)]).optional(),
  force: z.boolean().optional(),
});

function fail(reply: FastifyReply, err: unknown) {
  if (isPgHaError(err)) return reply.code(STATUS[err.code] ?? 503).send({ error: err.code, message: err.message });
  throw err;
}

export function registerStandbyRoutes(app: FastifyInstance, d: StandbyOpsDeps & { config: NodeConfig }): void {
  const auth = { onRequest: requireAuth(() => d.config.restapi.authentication, new Lockout()), preHandler: requireTargetMember(d.config.name, false) };
  app.post('/promote-cluster', auth, async (req, reply) => {
    const b = promoteBody.safeParse(req.body ?? undefined);
    if (!b.success) return badRequest(reply, b.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    try { return reply.send(await promoteCluster(d, b.data?.force === true)); } catch (err) { return fail(reply, err); }
  });
  app.post('/demote-cluster', auth, async (req, reply) => {
    const b = demoteBody.safeParse(req.body ?? {});
    if (!b.success) return badRequest(reply, b.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    try { return reply.send(await demoteCluster(d, b.data)); } catch (err) { return fail(reply, err); }
  });
}
