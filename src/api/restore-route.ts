// Restore endpoints (docs/rest-api.md#restore), driven by `pghactl restore`, all behind basic auth
// (onRequest, before any body is read) and the target-member check. Each acts only while the
// cluster is paused and /restore in etcd holds the restore id the request names, so no stray or
// replayed call can stop or overwrite a member outside a restore the operator started:
//   POST /restore/stop   stop this member's PostgreSQL (fast), through the HA loop's queue;
//   POST /restore        on the member /restore names (the leader): start the restore job
//                        (src/backup/restore-job.ts), 202 at once; again with the same id: the job;
//   GET  /restore        the running or last restore job on this member.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { BackupAgent } from '../backup/agent.ts';
import type { RestoreJobs } from '../backup/restore-job.ts';
import { restoreRecordSchema, type RestoreRecord } from '../backup/restore-plan.ts';
import type { NodeConfig } from '../config/schema.ts';
import type { Dcs } from '../dcs/types.ts';
import { PgHaError } from '../errors.ts';
import { Lockout } from './lockout.ts';
import { badRequest, replyFailure, requireAuth } from './server.ts';
import { requireTargetMember } from './target-member.ts';

export interface RestoreRouteDeps {
  config: NodeConfig;
  dcs: Dcs;
  backup: BackupAgent | null;
  jobs: RestoreJobs | null;
  isLeader: () => boolean;
  /** The cluster is paused, as of the HA loop's last etcd read. */
  paused: () => boolean;
  /** Stop this member's PostgreSQL (fast) inside the HA loop. */
  stopPostgres: () => Promise<void>;
}

const body = z.strictObject({ id: z.string().min(8).max(64) });
const STATUS: Partial<Record<string, number>> = { PGHA_BACKUP_NOT_CONFIGURED: 412, PGHA_RESTORE_STATE: 409 };

const fail = (reply: FastifyReply, err: unknown) => replyFailure(reply, err, STATUS, 'PGHA_RESTORE_FAILED');

export function registerRestoreRoute(app: FastifyInstance, d: RestoreRouteDeps): void {
  const authenticated = requireAuth(() => d.config.restapi.authentication, new Lockout());
  const memberAuth = { onRequest: authenticated, preHandler: requireTargetMember(d.config.name, true) };

  /** The /restore record for `id`, while the cluster is paused; else PGHA_RESTORE_STATE. */
  const record = async (id: string): Promise<RestoreRecord> => {
    if (d.jobs === null || d.backup === null) throw new PgHaError('PGHA_BACKUP_NOT_CONFIGURED', `${d.config.name} has no backup: section in its configuration`);
    if (!d.paused()) throw new PgHaError('PGHA_RESTORE_STATE', `the cluster is not paused (as ${d.config.name} last read it): a restore step runs only in a paused cluster`);
    const cur = await d.dcs.readRestoreRecord();
    const r = restoreRecordSchema.safeParse(cur.value);
    if (!r.success) throw new PgHaError('PGHA_RESTORE_STATE', 'no restore is recorded in etcd (/restore): start one with pghactl restore');
    if (r.data.id !== id) throw new PgHaError('PGHA_RESTORE_STATE', `/restore holds restore ${r.data.id}, not ${id}`);
    return r.data;
  };

  app.post('/restore/stop', memberAuth, async (req, reply) => {
    const b = body.safeParse(req.body ?? {});
    if (!b.success) return badRequest(reply, b.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    try {
      await record(b.data.id);
      await d.stopPostgres();
      return reply.send({ member: d.config.name, stopped: true });
    } catch (err) { return fail(reply, err); }
  });

  app.post('/restore', memberAuth, async (req, reply) => {
    const b = body.safeParse(req.body ?? {});
    if (!b.success) return badRequest(reply, b.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    try {
      const r = await record(b.data.id);
      if (r.member !== d.config.name) throw new PgHaError('PGHA_RESTORE_STATE', `restore ${r.id} restores ${r.member}, not ${d.config.name}`);
      if (!d.isLeader()) throw new PgHaError('PGHA_RESTORE_STATE', `${d.config.name} does not hold the leader key: the restored member must (it is promoted as the leader)`);
      return reply.code(202).send({ member: d.config.name, job: d.jobs!.start(r) });
    } catch (err) { return fail(reply, err); }
  });

  app.get('/restore', { onRequest: authenticated }, async (_req, reply) => reply.send({ member: d.config.name, job: d.jobs?.current() ?? null }));
}
