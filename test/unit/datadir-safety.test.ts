// Finding 1: a data_dir holding other files (a mount point with lost+found, a leftover
// directory) is refused before initdb or pg_basebackup, and pgha only ever deletes what it made.
// A real directory with a marker file; the refused bootstrap runs the Actor's real error path.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import { PgHaError } from '../../src/errors.ts';
import type { Logger } from '../../src/log/logger.ts';
import { createPostgresControl } from '../../src/postgres/instance.ts';

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;
const CONFIG_PATH = '/etc/pgha/pgha.yml';

describe('a data_dir with files pgha did not make', () => {
  let dir: string;
  let data: string;
  let marker: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgha-datadir-'));
    data = join(dir, 'mnt');
    mkdirSync(join(data, 'lost+found'), { recursive: true });
    marker = join(data, 'lost+found', 'precious');
    writeFileSync(marker, 'keep me');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const control = () => {
    const config = nodeConfigSchema.parse({
      scope: 's', name: 'n1', restapi: { listen: '127.0.0.1:8009' },
      postgresql: { data_dir: data, listen: '127.0.0.1:5899', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
    });
    return { config, pg: createPostgresControl({ config, configPath: CONFIG_PATH, dynamic: () => config.bootstrap.dcs, logger }) };
  };

  it('is observed as foreign, not empty', async () => {
    const { pg } = control();
    expect((await pg.observe()).dataDir).toBe('foreign');
  });

  it('refuses initdb, pg_basebackup and wipe with PGHA_DATA_DIR_UNSAFE naming data_dir and the config file', async () => {
    const { pg } = control();
    const err = await pg.initdb().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgHaError);
    expect((err as PgHaError).code).toBe('PGHA_DATA_DIR_UNSAFE');
    expect((err as PgHaError).message).toContain(`${data} (postgresql.data_dir in ${CONFIG_PATH}) is not empty (lost+found)`);
    await expect(pg.clone({ name: 'n2', conn: '127.0.0.1:1' })).rejects.toMatchObject({ code: 'PGHA_DATA_DIR_UNSAFE' });
    await expect(pg.wipe()).rejects.toMatchObject({ code: 'PGHA_DATA_DIR_UNSAFE', message: expect.stringContaining('refusing to delete files pgha did not create') });
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(`${data}.initpw`)).toBe(false);
  });

  it('a refused bootstrap keeps every file and gives the /initialize claim up', async () => {
    const { config, pg } = control();
    const calls: string[] = [];
    const dcs = {
      claimInitialize: async () => { calls.push('claim'); return true; },
      releaseLeader: async () => { calls.push('release'); },
      abandonInitialize: async () => { calls.push('abandon'); },
    } as unknown as Dcs;
    const fence = new FenceTimer({ now: () => performance.now(), paused: () => false, fence: async () => undefined });
    const actor = new Actor({
      config, dcs, pg, logger, fence, now: () => performance.now(), failsafeHold: () => null,
      dynamic: () => config.bootstrap.dcs, setActivity: async () => undefined, setLeadership: () => undefined,
    } satisfies ActorDeps);
    await expect(actor.bootstrap()).rejects.toMatchObject({ code: 'PGHA_DATA_DIR_UNSAFE' });
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(join(data, 'lost+found'))).toBe(true);
    expect(calls).toEqual(['claim', 'release', 'abandon']);
  });

  it('an empty directory (or a missing one) is pgha\'s: wipe may empty it again after a failed step', async () => {
    rmSync(data, { recursive: true });
    const { pg } = control();
    expect((await pg.observe()).dataDir).toBe('empty');
    // clone claims the missing directory, then pg_basebackup fails (nothing listens on port 1)
    await expect(pg.clone({ name: 'n2', conn: '127.0.0.1:1' })).rejects.toBeInstanceOf(Error);
    writeFileSync(join(data, 'partial'), 'left by a failed step');
    await pg.wipe();
    expect(existsSync(join(data, 'partial'))).toBe(false);
  });

  it('a step killed halfway leaves <data_dir>.unfinished: the next agent process may empty what it left, then drops the marker', async () => {
    rmSync(data, { recursive: true });
    const first = control().pg;
    // clone writes the marker once it found the directory empty; pg_basebackup then fails
    // (nothing listens on port 1), as a kill would stop it, and the marker stays.
    await expect(first.clone({ name: 'n2', conn: '127.0.0.1:1' })).rejects.toBeInstanceOf(Error);
    expect(readFileSync(`${data}.unfinished`, 'utf8')).toBe('clone\n');
    // What a killed pg_basebackup leaves: files, but no PG_VERSION yet.
    mkdirSync(join(data, 'base', '1'), { recursive: true });
    writeFileSync(join(data, 'base', '1', '1259'), 'half a relation');
    const next = control().pg; // a new agent process: it did not fill the directory itself
    expect(await next.observe()).toMatchObject({ dataDir: 'foreign', unfinished: 'clone' });
    await next.wipe();
    expect(existsSync(join(data, 'base'))).toBe(false);
    expect(existsSync(`${data}.unfinished`)).toBe(false);
    expect((await next.observe()).unfinished ?? null).toBeNull();
  });

  it('a marker that is not one of pgha\'s steps does not make foreign files deletable', async () => {
    writeFileSync(`${data}.unfinished`, 'something else\n');
    const { pg } = control();
    expect(await pg.observe()).toMatchObject({ dataDir: 'foreign' });
    expect((await pg.observe()).unfinished ?? null).toBeNull();
    await expect(pg.wipe()).rejects.toMatchObject({ code: 'PGHA_DATA_DIR_UNSAFE' });
    expect(existsSync(marker)).toBe(true);
  });
});
