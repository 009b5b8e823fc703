// The executor's data-directory steps: bootstrap, adopt, clone, re-clone, rewind. Each is one
// action of the plan (src/agent/act.ts dispatches them); the order of the effects inside each is
// written down where it is coded. What follows a step (its `start`, a re-clone after unusable
// data) is decided by decide() from the Memory, never here.
import { PgHaError, describeError } from '../errors.ts';
import { leaseDeadline } from '../ha/lease.ts';
import type { LocalPostgres } from '../ha/types.ts';
import type { Upstream } from '../postgres/types.ts';
import type { ActorDeps } from './act.ts';

/**
 * Bootstrap steps, in order: (1) claim /initialize (bound to our lease, so a crash frees it);
 * (2) initdb; (3) start as primary; (4) create roles; (5) take the leader key; (6) write the
 * dynamic config; (7) replace the claim by the system id; (8) drop the `<data_dir>.unfinished`
 * marker initdb (or the restore) wrote. A failure before (7) stops PostgreSQL, wipes the data and
 * gives up the claim, so another member can try. An agent killed before (8) finds the marker on
 * its next start: wipeUnfinished() below, unless (7) was done.
 */
export async function bootstrap(d: ActorDeps): Promise<void> {
  const { dcs, pg, logger, config } = d;
  if (!(await dcs.claimInitialize())) throw new PgHaError('PGHA_DCS_CONFLICT', 'another member is bootstrapping');
  logger.info({ event: 'bootstrap' }, 'bootstrapping a new cluster');
  await d.setActivity('bootstrapping');
  try {
    await pg.initdb();
    await pg.start('primary', null);
    await pg.createRoles();
    if (!(await dcs.acquireLeader())) throw new PgHaError('PGHA_BOOTSTRAP', 'leader key taken during bootstrap');
    // Arm from a keepalive sent now: the loop's last one was sent before initdb, which can take
    // longer than ttl - fence_margin (the heartbeat kept the lease alive meanwhile, but its
    // keepalives are not the loop's), and a deadline from it would fence the new primary at once.
    const ka = await dcs.renewLeader();
    d.fence.arm(leaseDeadline(ka.sentAt, ka.ttl, d.dynamic()));
    await dcs.writeConfigIfAbsent(config.bootstrap.dcs);
    const local = await pg.observe();
    if (local.systemId === null) throw new PgHaError('PGHA_BOOTSTRAP', 'no system identifier after initdb');
    await dcs.setInitialize(local.systemId);
    // Complete now: a restart from here on keeps this data (decide(): /initialize holds its id).
    // Never a reason to undo the bootstrap below: a marker left behind is dropped by the next loop.
    await pg.settle().catch((err: unknown) => logger.warn({ event: 'marker not removed', err: describeError(err) }, 'could not remove <data_dir>.unfinished; the next loop retries'));
    logger.info({ event: 'promoted', timeline: 1, systemId: local.systemId }, 'bootstrapped; running as primary');
    d.bootstrapped?.();
  } catch (err) {
    logger.error({ event: 'bootstrap failed', err: describeError(err) }, 'bootstrap failed; cleaning up');
    await pg.stop('immediate').catch(() => undefined);
    await dcs.releaseLeader().catch(() => undefined);
    d.fence.disarm();
    await pg.wipe().catch(() => undefined);
    await dcs.abandonInitialize().catch(() => undefined);
    throw err;
  } finally {
    await d.setActivity(null);
  }
}

/**
 * The data directory holds a bootstrap, clone or wipe of ours that never finished (the agent was
 * killed in it; decide() rule U): (1) stop a PostgreSQL that runs on it (an unfinished bootstrap
 * may have started one, and a postmaster outlives its agent); (2) empty the directory, which the
 * marker allows even without PG_VERSION; the marker goes last. The next loop bootstraps or clones.
 */
export async function wipeUnfinished(d: ActorDeps, step: string, local: LocalPostgres): Promise<void> {
  d.logger.warn({ event: 'unfinished data dir', step, systemId: local.systemId, dataDir: local.dataDir },
    `the data directory holds our unfinished ${step} (the agent died in it): emptying it to start over`);
  await d.pg.stop('immediate');
  await d.pg.wipe();
}

/**
 * The first member of a standby cluster (standby_cluster set, nobody initialised it): (1) claim
 * /initialize; (2) pg_basebackup from the source cluster; (3) start as its standby; (4) take the
 * leader key (the standby leader); (5) write the dynamic config; (6) record the system id, the
 * source's. A failure before (6) stops PostgreSQL, wipes the copy and gives up the claim.
 */
export async function bootstrapStandby(d: ActorDeps, source: Upstream): Promise<void> {
  const { dcs, pg, logger, config } = d;
  if (!(await dcs.claimInitialize())) throw new PgHaError('PGHA_DCS_CONFLICT', 'another member is bootstrapping');
  logger.info({ event: 'bootstrap standby', from: source.conn }, 'bootstrapping a standby cluster from its source');
  await d.setActivity('cloning');
  try {
    await pg.clone(source);
    await pg.start('standby', source);
    if (!(await dcs.acquireLeader())) throw new PgHaError('PGHA_BOOTSTRAP', 'leader key taken during bootstrap');
    const ka = await dcs.renewLeader();
    d.fence.arm(leaseDeadline(ka.sentAt, ka.ttl, d.dynamic()));
    d.setLeadership(true);
    await dcs.writeConfigIfAbsent(config.bootstrap.dcs);
    const local = await pg.observe();
    if (local.systemId === null) throw new PgHaError('PGHA_BOOTSTRAP', 'no system identifier after the base backup');
    await dcs.setInitialize(local.systemId);
    logger.info({ event: 'standby leader', systemId: local.systemId }, 'bootstrapped a standby cluster; running as its standby leader');
  } catch (err) {
    logger.error({ event: 'bootstrap failed', err: describeError(err) }, 'standby cluster bootstrap failed; cleaning up');
    await pg.stop('immediate').catch(() => undefined);
    await dcs.releaseLeader().catch(() => undefined);
    d.fence.disarm();
    d.setLeadership(false);
    await pg.wipe().catch(() => undefined);
    await dcs.abandonInitialize().catch(() => undefined);
    throw err;
  } finally {
    await d.setActivity(null);
  }
}

/** Existing data and no /initialize key (etcd was wiped): register our system id. */
export async function adopt(d: ActorDeps, local: LocalPostgres): Promise<void> {
  if (local.systemId === null) throw new PgHaError('PGHA_BOOTSTRAP', 'cannot adopt: no system identifier');
  if (!(await d.dcs.claimInitialize())) return;
  await d.dcs.writeConfigIfAbsent(d.config.bootstrap.dcs);
  await d.dcs.setInitialize(local.systemId);
  d.logger.info({ event: 'adopted', systemId: local.systemId }, 'registered existing data as the cluster');
}

/**
 * pg_basebackup into the empty data directory (decide() follows it with a `start`). The member
 * stays "cloning" until that start is done and the loop has observed PostgreSQL again (HaLoop
 * clears the activity after each plan): in between, it would read "stopped", and `patronictl
 * reinit --wait` stops waiting at the first state that is not "creating replica".
 */
export async function clone(d: ActorDeps, from: Upstream): Promise<void> {
  d.logger.info({ event: 'clone', from: from.name }, `cloning from ${from.name}`);
  await d.setActivity('cloning');
  try {
    await d.pg.clone(from);
  } catch (err) {
    await d.setActivity(null);
    throw err;
  }
}

/** A fresh copy of the leader is what `pghactl verify` wanted: its unsafe mark goes. */
export async function clearUnsafe(d: ActorDeps): Promise<void> {
  if (await d.dcs.clearUnsafe(d.config.name)) d.logger.info({ event: 'unsafe_cleared' }, 'cloned afresh: unsafe mark (pghactl verify) removed');
}

/**
 * Rewind order: (1) stop PostgreSQL cleanly if it runs; (2) pg_rewind from the leader. decide()
 * follows it with a `start` as the leader's standby; a failed pg_rewind (other than for want of
 * the leader) or a failed start after it makes the next plan a `reclone` (remember()).
 */
export async function rewind(d: ActorDeps, from: Upstream, local: LocalPostgres): Promise<void> {
  const { pg, logger } = d;
  if (local.running) await pg.stop('fast');
  await d.setActivity('rewinding');
  try {
    logger.info({ event: 'rewind', from: from.name }, `rewinding from ${from.name}`);
    await pg.rewind(from);
  } catch (err) {
    if (!(err instanceof PgHaError && err.retryable)) logger.warn({ event: 'rewind failed', err: describeError(err) }, 'pg_rewind failed; the next loop clones afresh');
    await d.setActivity(null);
    throw err;
  }
  // On success the activity stays until the plan's `start` is done (the loop clears it).
}

/**
 * Re-clone order: (1) stop PostgreSQL (fast if it runs, then immediate: a failed start may
 * leave a postmaster behind); (2) wipe the data directory; (3) pg_basebackup from the leader.
 * decide() follows it with a `start`.
 */
export async function reclone(d: ActorDeps, from: Upstream, local: LocalPostgres): Promise<void> {
  const { pg, logger } = d;
  logger.warn({ event: 'rewind unusable', from: from.name }, `the data directory cannot be used as a standby: cloning afresh from ${from.name}`);
  if (local.running) await pg.stop('fast');
  await d.setActivity('cloning');
  try {
    await pg.stop('immediate').catch(() => undefined);
    await pg.wipe({ forReclone: true });
    await pg.clone(from);
  } catch (err) {
    await d.setActivity(null);
    throw err;
  }
  // On success the activity stays until the plan's `start` is done (the loop clears it).
}
