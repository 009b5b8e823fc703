// Making this member a standby of another: a fresh copy (pg_basebackup) or a rewind of diverged
// data (pg_rewind). Both authenticate through the passfile (PGPASSFILE), never with a password on
// a command line or in the environment, and end by configuring the data as the source's standby.
// Every connection here goes through libpq with the role's TLS settings (sslmode, sslrootcert,
// channel_binding ...): the same client, and the same checks, as the standby's primary_conninfo.
import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PgHaError } from '../errors.ts';
import { peerConninfo, type PeerTls } from './conf.ts';
import { ensureDataDir, wipeContents } from './datadir.ts';
import { upstreamTarget } from './source.ts';
import { CURRENT_TIMELINE_SQL } from './lsn.ts';
import { run, type RunAs } from './exec.ts';
import type { Upstream } from './types.ts';

export interface ReplicationContext {
  dataDir: string;
  binDir: string;
  runAs: RunAs | undefined;
  /** This member's name: the application_name the source sees. */
  name: string;
  passfile: string;
  replication: PeerTls & { username: string };
  /** pg_rewind's role: the rewind role, else the superuser. */
  rewinder: PeerTls & { username: string };
  /** Passwords to keep out of error messages. */
  secrets: string[];
  /** Passwords for `peer` only: the replication role's, and the rewind role's when `rewind`. */
  writePassfile: (peer: Upstream, rewind: boolean) => Promise<void>;
  /** Render pgha.conf as a standby of `from` and write standby.signal. */
  configureStandby: (from: Upstream) => Promise<void>;
}

/** A base backup copies the whole cluster: an hour before calling it stuck (about 30 MB/s for 100 GB). */
const BASEBACKUP_TIMEOUT_MS = 3_600_000;
/** pg_rewind copies only changed blocks, but may first replay WAL in single-user mode: same bound. */
const REWIND_TIMEOUT_MS = 3_600_000;
/** A CHECKPOINT flushes every dirty buffer of the source: a minute covers gigabytes of shared_buffers. */
const CHECKPOINT_TIMEOUT_MS = 60_000;

function env(ctx: ReplicationContext): Record<string, string> {
  // PGCONNECT_TIMEOUT: an unreachable source fails in 5 s instead of the TCP default (minutes).
  return { PGPASSFILE: ctx.passfile, PGAPPNAME: ctx.name, PGCONNECT_TIMEOUT: '5' };
}

/** pg_basebackup from `from` into the empty data directory; on failure the directory is emptied again. */
export async function cloneFrom(ctx: ReplicationContext, from: Upstream): Promise<void> {
  const { host, port, extra } = upstreamTarget(from);
  await ensureDataDir(ctx.dataDir, ctx.runAs);
  if ((await readdir(ctx.dataDir)).length > 0) throw new PgHaError('PGHA_PG_COMMAND', `cannot clone into the non-empty ${ctx.dataDir}`);
  await ctx.writePassfile(from, false);
  const source = peerConninfo(host, port, ctx.replication.username, ctx.replication, extra);
  const args = ['-D', ctx.dataDir, '-d', source, '-X', 'stream', '--checkpoint=fast', '--no-password'];
  try {
    await run(join(ctx.binDir, 'pg_basebackup'), args, { timeoutMs: BASEBACKUP_TIMEOUT_MS, runAs: ctx.runAs, env: env(ctx), secrets: ctx.secrets });
    await chmod(ctx.dataDir, 0o700);
    await ctx.configureStandby(from);
  } catch (err) {
    await wipeContents(ctx.dataDir, ctx.runAs);
    throw err;
  }
}

/**
 * pg_rewind the stopped data directory from `from`, then configure it as its standby. pg_rewind
 * runs crash recovery itself (single-user mode, PostgreSQL 13+) when the target was not shut down
 * cleanly, and exits 0 when nothing diverged. A source that cannot be reached throws a retryable
 * PGHA_PG_COMMAND (the data is fine, try again); only pg_rewind's own failure throws
 * PGHA_PG_REWIND_FAILED (the caller may then wipe and clone).
 */
export async function rewindFrom(ctx: ReplicationContext, from: Upstream): Promise<void> {
  const { host, port, extra } = upstreamTarget(from);
  await ctx.writePassfile(from, true);
  try {
    await checkpointIfPromotedRecently(ctx, host, port, extra);
  } catch (err) {
    throw new PgHaError('PGHA_PG_COMMAND', `rewind source ${from.name} unreachable: ${(err as Error).message}`, { cause: err, retryable: true });
  }
  const source = peerConninfo(host, port, ctx.rewinder.username, ctx.rewinder, [['dbname', 'postgres'], ...extra]);
  try {
    await run(join(ctx.binDir, 'pg_rewind'), ['-D', ctx.dataDir, `--source-server=${source}`], {
      timeoutMs: REWIND_TIMEOUT_MS, runAs: ctx.runAs, env: env(ctx), secrets: ctx.secrets,
    });
  } catch (err) {
    throw new PgHaError('PGHA_PG_REWIND_FAILED', (err as Error).message, { cause: err });
  }
  await ctx.configureStandby(from);
}

/**
 * pg_rewind reads the source's timeline from its last checkpoint. Right after a promotion that
 * is still the old timeline, pg_rewind finds nothing to do and the server then cannot start
 * ("requested timeline is not a child of this server's history"); a CHECKPOINT on the source
 * first makes it current. The rewind role may run it through pg_checkpoint (granted at bootstrap).
 */
async function checkpointIfPromotedRecently(ctx: ReplicationContext, host: string, port: number | string, extra: Array<[string, string]>): Promise<void> {
  const stale = await psql(ctx, host, port, `select case when pg_is_in_recovery() then false
    else ${CURRENT_TIMELINE_SQL} <> (select timeline_id from pg_control_checkpoint()) end`, extra);
  if (stale === 't') await psql(ctx, host, port, 'checkpoint', extra);
}

/** One statement on the rewind source through psql (libpq: the passfile and the TLS settings); its single value. */
export async function psql(ctx: ReplicationContext, host: string, port: number | string, sql: string, extra: Array<[string, string]> = []): Promise<string> {
  const info = peerConninfo(host, port, ctx.rewinder.username, ctx.rewinder, [
    ['dbname', 'postgres'], ['options', `-c statement_timeout=${CHECKPOINT_TIMEOUT_MS}`], ...extra,
  ]);
  // -X: no psqlrc; -A -t: the bare value; ON_ERROR_STOP: a failed statement is a non-zero exit.
  const r = await run(join(ctx.binDir, 'psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', info, '-c', sql], {
    // The server cancels the statement at CHECKPOINT_TIMEOUT_MS; 5 s more for the connect and the cancel's answer.
    timeoutMs: CHECKPOINT_TIMEOUT_MS + 5000, runAs: ctx.runAs, env: env(ctx), secrets: ctx.secrets,
  });
  return r.stdout.trim();
}
