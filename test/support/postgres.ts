// Helpers for tests that drive a real PostgreSQL 15 through src/postgres as the postgres OS user:
// temporary directories it owns, valid node configurations, TCP clients, and a cleanup that
// stops every postmaster found under a directory before removing it.
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { dynamicConfigSchema, nodeConfigSchema, type DynamicConfig, type NodeConfig } from '../../src/config/schema.ts';
import type { Logger } from '../../src/log/logger.ts';
import { isLivePostgres, pidFromFile, waitForExit } from '../../src/postgres/datadir.ts';
import { lookupOsUser, type RunAs } from '../../src/postgres/exec.ts';

export const PG_PASSWORDS = { superuser: "su p@ss:'w\\ord", replication: 'repl-secret-pw', rewind: 'rewind-secret-pw', app: 'app-pw' };

export function postgresOsUser(): RunAs {
  return lookupOsUser('postgres');
}

/** A fresh directory under the system tmpdir, owned by the postgres OS user (mode 0700). */
export function makeTempDataDir(prefix = 'pgha-pg-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const u = postgresOsUser();
  chownSync(dir, u.uid, u.gid);
  return dir;
}

export interface NodeConfigForOptions {
  name: string;
  pgPort: number;
  apiPort: number;
  dataDir: string;
  socketDir: string;
  pgpass?: string;
  /** Merged into the node configuration before parsing. */
  extra?: Record<string, unknown>;
}

/** A valid NodeConfig (through nodeConfigSchema.parse) for a member on loopback. */
export function nodeConfigFor(o: NodeConfigForOptions): NodeConfig {
  return nodeConfigSchema.parse({
    scope: 'pgtest',
    name: o.name,
    restapi: { listen: `127.0.0.1:${o.apiPort}` },
    bootstrap: {
      // --no-sync: a test cluster need not survive a power cut, and initdb is seconds faster.
      initdb: [{ encoding: 'UTF8' }, 'data-checksums', 'no-sync'],
      users: { app: { password: PG_PASSWORDS.app, options: ['createdb'] } },
    },
    postgresql: {
      listen: `127.0.0.1:${o.pgPort}`,
      data_dir: o.dataDir,
      socket_dir: o.socketDir,
      ...(o.pgpass === undefined ? {} : { pgpass: o.pgpass }),
      authentication: {
        superuser: { username: 'postgres', password: PG_PASSWORDS.superuser },
        replication: { username: 'replicator', password: PG_PASSWORDS.replication },
        rewind: { username: 'rewinder', password: PG_PASSWORDS.rewind },
      },
      parameters: { shared_buffers: '16MB', max_connections: 20 },
      pg_ctl_timeout: 30,
    },
    ...o.extra,
  });
}

/** Dynamic configuration for tests: the defaults, fsync off (throwaway data), small servers. */
export function testDynamicConfig(extra: Record<string, unknown> = {}): DynamicConfig {
  return dynamicConfigSchema.parse({ postgresql: { parameters: { fsync: 'off' } }, ...extra });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A superuser-by-default client over TCP with a password; always has an 'error' listener. */
export function pgClient(port: number, user = 'postgres', password = PG_PASSWORDS.superuser): pg.Client {
  const c = new pg.Client({
    host: '127.0.0.1', port, user, password, database: 'postgres',
    // Loopback test servers answer in milliseconds; these only stop a broken test from hanging.
    connectionTimeoutMillis: 3000, statement_timeout: 5000, query_timeout: 6000,
  });
  c.on('error', () => undefined);
  return c;
}

/** Run one statement on a fresh connection. */
export async function queryAt<T extends pg.QueryResultRow>(port: number, sql: string, params: unknown[] = [], user?: string, password?: string): Promise<T[]> {
  const c = pgClient(port, user, password);
  try {
    await c.connect();
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Stop the postmaster of `dataDir`, if one runs: SIGQUIT, then SIGKILL after 5 s. */
export async function stopPostmasterIn(dataDir: string): Promise<void> {
  const pid = pidFromFile(dataDir);
  if (pid === null || !isLivePostgres(pid)) return;
  try { process.kill(pid, 'SIGQUIT'); } catch { return; }
  // An immediate shutdown takes milliseconds; PostgreSQL itself SIGKILLs stragglers after 5 s.
  if (await waitForExit(pid, 6000)) return;
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

/** Data directories (holding postmaster.pid or PG_VERSION) up to three levels under `dir`. */
function dataDirsUnder(dir: string, depth = 3): string[] {
  if (depth < 0 || !existsSync(dir)) return [];
  const here = existsSync(join(dir, 'postmaster.pid')) || existsSync(join(dir, 'PG_VERSION')) ? [dir] : [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch { /* unreadable: nothing below */ }
  return [...here, ...entries.flatMap((d) => dataDirsUnder(d, depth - 1))];
}

/** Stop every postmaster under `dir`, then remove it (kept with PGHA_KEEP_TEST_DIRS=1). */
export async function destroyTempDir(dir: string): Promise<void> {
  for (const d of dataDirsUnder(dir)) await stopPostmasterIn(d);
  if (process.env.PGHA_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
}
