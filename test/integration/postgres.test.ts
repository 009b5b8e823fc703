// PostgresControl against real PostgreSQL 15 run as the postgres OS user: bootstrap a primary,
// clone a standby, move it between upstreams without a restart, promote it, rewind the old
// primary onto the new timeline, and the edges (immediate stop, empty or stopped data, slots,
// pg_hba). Ports from allocatePorts(); everything lives under one temp dir removed in afterAll.
import { statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresControl, Upstream } from '../../src/postgres/types.ts';
import { createPostgresControl } from '../../src/postgres/instance.ts';
import { pidFromFile } from '../../src/postgres/datadir.ts';
import {
  PG_PASSWORDS, destroyTempDir, makeTempDataDir, nodeConfigFor, postgresOsUser, queryAt, silentLogger, testDynamicConfig,
} from '../support/postgres.ts';
import { waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';

// alpha, beta, a reserved port nothing listens on, then the two API ports nodeConfigFor() needs
// (no agent runs: nothing listens there either).
const ALPHA_PORT = allocatePorts(5);
const BETA_PORT = ALPHA_PORT + 1;
const NOBODY_PORT = ALPHA_PORT + 2; // nothing listens here
const ALPHA: Upstream = { name: 'alpha', conn: `127.0.0.1:${ALPHA_PORT}` };
const BETA: Upstream = { name: 'beta', conn: `127.0.0.1:${BETA_PORT}` };

let dir = '';
let alpha: PostgresControl;
let beta: PostgresControl;
let alphaData = '';
let betaData = '';

function control(name: string, port: number, dataDir: string, pgpass?: string): PostgresControl {
  const config = nodeConfigFor({ name, pgPort: port, apiPort: port + 3, dataDir, socketDir: dir, ...(pgpass === undefined ? {} : { pgpass }) });
  const dynamic = testDynamicConfig();
  return createPostgresControl({ config, dynamic: () => dynamic, logger: silentLogger(), runAs: postgresOsUser() });
}

const rows = async (port: number) => (await queryAt<{ v: string }>(port, 'select v from t order by v')).map((r) => r.v);
const slots = async (port: number) => (await queryAt<{ slot_name: string }>(port, 'select slot_name from pg_replication_slots order by 1')).map((r) => r.slot_name);

beforeAll(() => {
  dir = makeTempDataDir();
  alphaData = join(dir, 'alpha');
  // A space in one data directory and a quote in one passfile path exercise every quoting layer:
  // pg_ctl/pg_basebackup/pg_rewind arguments, and passfile= inside primary_conninfo.
  betaData = join(dir, 'beta data');
  alpha = control('alpha', ALPHA_PORT, alphaData, join(dir, "alpha's pass file"));
  beta = control('beta', BETA_PORT, betaData);
});

afterAll(async () => {
  await alpha?.close();
  await beta?.close();
  if (dir !== '') await destroyTempDir(dir);
});

describe('PostgresControl on PostgreSQL 15', () => {
  it('observes a missing data directory without throwing', async () => {
    const o = await alpha.observe();
    expect(o).toMatchObject({ dataDir: 'empty', running: false, accepting: false, role: null, systemId: null });
  });

  it('bootstraps a primary: initdb, start, roles', async () => {
    await alpha.initdb();
    const stopped = await alpha.observe();
    expect(stopped).toMatchObject({ dataDir: 'initialized', running: false, controlState: 'primary-clean', timeline: 1 });
    expect(stopped.systemId).toMatch(/^\d+$/);
    expect(statSync(alphaData).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "alpha's pass file")).mode & 0o777).toBe(0o600);

    await alpha.start('primary', null);
    await alpha.createRoles();
    const o = await alpha.observe();
    expect(o).toMatchObject({ running: true, accepting: true, role: 'primary', timeline: 1, streaming: false, upstream: null, pendingRestart: false });
    expect(o.lsn).toBeGreaterThan(0);
    await queryAt(ALPHA_PORT, 'create table t (v text primary key)');
    await queryAt(ALPHA_PORT, "insert into t values ('1 before clone')");
  });

  it('stores passwords as SCRAM verifiers and grants the rewind role what pg_rewind needs', async () => {
    const auth = await queryAt<{ rolname: string; rolpassword: string }>(ALPHA_PORT, "select rolname, rolpassword from pg_authid where rolname in ('postgres', 'replicator', 'rewinder', 'app')");
    expect(auth).toHaveLength(4);
    for (const r of auth) expect(r.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    const [g] = await queryAt<{ ckpt: boolean; read: boolean }>(ALPHA_PORT,
      "select pg_has_role('rewinder', 'pg_checkpoint', 'member') as ckpt, has_function_privilege('rewinder', 'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', 'execute') as read");
    expect(g).toEqual({ ckpt: true, read: true });
  });

  it('lets only pgha roles in with the default pg_hba', async () => {
    const codeOf = (p: Promise<unknown>) => p.then(() => 'connected', (e: { code?: string }) => e.code);
    expect(await codeOf(queryAt(ALPHA_PORT, 'select 1', [], 'mallory', 'x'))).toMatch(/^28(000|P01)$/);
    expect(await codeOf(queryAt(ALPHA_PORT, 'select 1', [], 'app', PG_PASSWORDS.app))).toBe('28000'); // exists, not listed
    expect(await codeOf(queryAt(ALPHA_PORT, 'select 1', [], 'rewinder', PG_PASSWORDS.rewind))).toBe('connected');
  });

  it('clones a standby that streams from the primary through its slot', async () => {
    await alpha.ensureSlots(['beta'], false);
    await beta.clone(ALPHA);
    expect(statSync(betaData).mode & 0o777).toBe(0o700);
    expect((await beta.observe()).controlState).toBe('standby');
    await beta.start('standby', ALPHA);
    await queryAt(ALPHA_PORT, "insert into t values ('2 after clone')");
    await waitFor('the row on beta', async () => (await rows(BETA_PORT)).includes('2 after clone'), 10_000);
    const o = await waitFor('beta streaming', async () => { const s = await beta.observe(); return s.streaming && s; }, 10_000);
    expect(o).toMatchObject({ role: 'standby', upstream: 'alpha', timeline: 1, accepting: true });
    expect(o.lsn).toBeGreaterThan(0);
    const [sender] = await queryAt<{ application_name: string; state: string }>(ALPHA_PORT, 'select application_name, state from pg_stat_replication');
    expect(sender).toEqual({ application_name: 'beta', state: 'streaming' });
  });

  it('follows nobody, then the primary again, without a restart', async () => {
    const pid = pidFromFile(betaData);
    await beta.follow(null);
    await waitFor('beta detached', async () => { const s = await beta.observe(); return !s.streaming && s.upstream === null; }, 10_000);
    await beta.follow(ALPHA);
    await waitFor('beta streaming again', async () => { const s = await beta.observe(); return s.streaming && s.upstream === 'alpha'; }, 10_000);
    expect(pidFromFile(betaData)).toBe(pid);
  });

  it('creates missing slots and drops inactive unlisted ones, never an active one', async () => {
    await alpha.ensureSlots(['beta', 'keep_me'], true);
    expect(await slots(ALPHA_PORT)).toEqual(['beta', 'keep_me']);
    await queryAt(ALPHA_PORT, "select pg_create_physical_replication_slot('stale')");
    await alpha.ensureSlots([], true); // beta's slot is active: kept
    expect(await slots(ALPHA_PORT)).toEqual(['beta']);
    await expect(alpha.ensureSlots(['Bad-Name'], false)).rejects.toThrow(/slot name/);
  });

  it('refuses to wipe a running server', async () => {
    await expect(alpha.wipe()).rejects.toThrow(/running/);
  });

  it('promotes the standby onto timeline 2', async () => {
    const r = await beta.promote();
    expect(r.timeline).toBe(2);
    expect(r.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const o = await beta.observe();
    expect(o).toMatchObject({ role: 'primary', timeline: 2, upstream: null, streaming: false });
    await queryAt(BETA_PORT, "insert into t values ('3 after promotion')");
  });

  it('stops a running primary immediately and sees it crashed', async () => {
    await queryAt(ALPHA_PORT, "insert into t values ('x diverged on alpha')"); // split brain, on purpose
    const t0 = performance.now();
    await alpha.stop('immediate');
    expect(performance.now() - t0).toBeLessThan(5000);
    const o = await alpha.observe();
    expect(o).toMatchObject({ dataDir: 'initialized', running: false, accepting: false, role: null, controlState: 'primary-crashed' });
    await alpha.stop('fast'); // not running: fine
  });

  it('rewinds the old primary from the new one and streams on timeline 2', async () => {
    await beta.ensureSlots(['alpha'], false);
    await alpha.rewind(BETA);
    await alpha.start('standby', BETA);
    await queryAt(BETA_PORT, "insert into t values ('4 after rewind')");
    await waitFor('alpha caught up', async () => (await rows(ALPHA_PORT)).includes('4 after rewind'), 15_000);
    expect(await rows(ALPHA_PORT)).toEqual(['1 before clone', '2 after clone', '3 after promotion', '4 after rewind']);
    const o = await waitFor('alpha streaming', async () => { const s = await alpha.observe(); return s.streaming && s; }, 10_000);
    expect(o).toMatchObject({ role: 'standby', upstream: 'beta', timeline: 2 });
  });

  it('reports a stopped standby as standby data, and an unreachable rewind source as retryable', async () => {
    await alpha.stop('fast');
    expect(await alpha.observe()).toMatchObject({ running: false, controlState: 'standby', upstream: 'beta' });
    expect(await alpha.checkpointLsn()).toBeGreaterThan(0);
    const err = await alpha.rewind({ name: 'nobody', conn: `127.0.0.1:${NOBODY_PORT}` }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PGHA_PG_COMMAND', retryable: true });
  });

  it('wipes a stopped data directory, and empties it again after a failed clone', async () => {
    await alpha.wipe();
    expect(readdirSync(alphaData)).toEqual([]);
    expect(statSync(alphaData).mode & 0o777).toBe(0o700);
    expect(await alpha.observe()).toMatchObject({ dataDir: 'empty', running: false });
    await expect(alpha.clone({ name: 'nobody', conn: `127.0.0.1:${NOBODY_PORT}` })).rejects.toMatchObject({ code: 'PGHA_PG_COMMAND' });
    expect(readdirSync(alphaData)).toEqual([]);
  });
});
