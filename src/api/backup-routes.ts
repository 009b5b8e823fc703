// Backup endpoints (docs/rest-api.md#backups), all behind basic auth (onRequest, before any body
// is read): POST /backup starts a pgBackRest backup on this member and answers 202 at once;
// GET /backup reports the running or last backup; GET /backup/info lists the repository's
// backups; POST /backup/expire applies the retention. A member without a backup: section
// answers 412 PGHA_BACKUP_NOT_CONFIGURED.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { BackupAgent } from '../backup/agent.ts';
import { restorePointName } from '../backup/config.ts';
import type { NodeConfig } from '../config/schema.ts';
import { PgHaError, isPgHaError } from '../errors.ts';
import type { ClusterView } from '../ha/types.ts';
import type { Logger } from '../log/logger.ts';
import { Lockout } from './lockout.ts';
import { badRequest, replyFailure, requireAuth } from './server.ts';
import { requireTargetMember } from './target-member.ts';
import { memberByName } from '../ha/view.ts';

export interface BackupRouteDeps {
  config: NodeConfig;
  backup: BackupAgent | null;
  isLeader: () => boolean;
  view: () => ClusterView | null;
  logger: Logger;
}

const restorePointBody = z.strictObject({ name: restorePointName });
const backupBody = z.strictObject({ type: z.enum(['full', 'diff', 'incr']).default('full'), standby: z.boolean().default(false) });

const STATUS: Partial<Record<string, number>> = { PGHA_BACKUP_NOT_CONFIGURED: 412, PGHA_CLI_REFUSED: 412, PGHA_BACKUP_BUSY: 409 };

const fail = (reply: FastifyReply, err: unknown) => replyFailure(reply, err, STATUS, 'PGHA_BACKUP_COMMAND');

export function registerBackupRoutes(app: FastifyInstance, d: BackupRouteDeps): void {
  const authenticated = requireAuth(() => d.config.restapi.authentication, new Lockout());
  const memberAuth = { onRequest: authenticated, preHandler: requireTargetMember(d.config.name, true) };
  const need = (): BackupAgent => {
    if (d.backup === null) throw new PgHaError('PGHA_BACKUP_NOT_CONFIGURED', `${d.config.name} has no backup: section in its configuration`);
    return d.backup;
  };

  app.post('/backup', memberAuth, async (req, reply) => {
    const r = backupBody.safeParse(req.body ?? {});
    if (!r.success) return badRequest(reply, r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    try {
      const b = need();
      const leader = d.isLeader();
      if (!r.data.standby && !leader) throw new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is not the leader: a backup runs on the leader (or, with standby: true, on a streaming standby)`);
      if (r.data.standby) {
        if (leader) throw new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is the leader: a standby backup runs on a streaming standby`);
        const me = memberByName(d.view(), d.config.name);
        if (me?.state !== 'streaming') throw new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is not streaming from the leader (${me?.state ?? 'unknown'}): a standby backup needs a healthy standby`);
        if (Object.keys(b.config.backup.peers).filter((n) => n !== d.config.name).length === 0) {
          throw new PgHaError('PGHA_CLI_REFUSED', `backup.peers is empty on ${d.config.name}: pgBackRest cannot reach the primary for a standby backup`);
        }
      }
      return reply.code(202).send({ member: d.config.name, job: b.jobs.start(r.data.type, r.data.standby) });
    } catch (err) { return fail(reply, err); }
  });

  app.get('/backup', { onRequest: authenticated }, async (_req, reply) => {
    try { return reply.send({ member: d.config.name, job: need().jobs.current() }); } catch (err) { return fail(reply, err); }
  });

  app.get('/backup/info', { onRequest: authenticated }, async (_req, reply) => {
    try { return reply.send({ member: d.config.name, stanzas: await need().jobs.info() }); } catch (err) { return fail(reply, err); }
  });

  app.post('/backup/restore-point', memberAuth, async (req, reply) => {
    const r = restorePointBody.safeParse(req.body ?? {});
    if (!r.success) return badRequest(reply, r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    try {
      const b = need();
      if (!d.isLeader()) throw new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is not the leader: a restore point is written on the primary`);
      return reply.send({ member: d.config.name, ...(await b.createRestorePoint(r.data.name)) });
    } catch (err) {
      if (err instanceof Error && !isPgHaError(err)) return fail(reply, new PgHaError('PGHA_PG_QUERY', `pg_create_restore_point: ${err.message}`));
      return fail(reply, err);
    }
  });

  app.post('/backup/expire', memberAuth, async (_req, reply) => {
    try {
      const b = need();
      if (!d.isLeader()) throw new PgHaError('PGHA_CLI_REFUSED', `${d.config.name} is not the leader: expire runs on the leader`);
      return reply.send({ member: d.config.name, ...(await b.jobs.expire()) });
    } catch (err) { return fail(reply, err); }
  });
}
