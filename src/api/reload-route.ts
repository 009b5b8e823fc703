// POST /reload-agent: the agent reads its configuration file again (as on SIGHUP) and answers
// with what it applied and what needs an agent restart. Authenticated like the other mutating
// endpoints (basic auth, and the access guard's allowlist / client certificate).
import type { FastifyInstance } from 'fastify';
import type { Credentials } from './basic-auth.ts';
import { requireAuth } from './server.ts';

export interface AgentReloadAnswer {
  ok: boolean;
  applied: string[];
  restart_needed: string[];
  error?: { code?: string; message: string };
}

export function registerReloadAgentRoute(app: FastifyInstance, d: { member: string; auth: () => Credentials | undefined; reload: () => Promise<AgentReloadAnswer> }): void {
  app.post('/reload-agent', { preHandler: requireAuth(d.auth) }, async (_req, reply) => {
    const r = await d.reload();
    if (!r.ok) {
      // The file is bad: the agent keeps its running configuration; the message names file and field.
      return reply.code(400).send({ error: r.error?.code ?? 'PGHA_CONFIG_INVALID', message: r.error?.message ?? 'reload failed', member: d.member });
    }
    return reply.send({ member: d.member, applied: r.applied, restart_needed: r.restart_needed });
  });
}
