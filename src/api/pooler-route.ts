// GET /poolers: what this agent last did to the PgBouncer poolers (pgbouncer.poolers): the PAUSE
// before a switchover it stepped down for, the RECONNECT and RESUME after a handover, each
// pooler's outcome and time. From memory; pghactl switchover prints the old leader's answer.
// Read-only and without secrets (pooler names, commands, error messages), like GET /status.
import type { FastifyInstance } from 'fastify';
import type { Poolers } from '../pooler/poolers.ts';

export function registerPoolerRoute(app: FastifyInstance, d: { member: string; poolers: Poolers }): void {
  app.get('/poolers', async () => ({ member: d.member, configured: d.poolers.configured, reports: d.poolers.reports }));
}
