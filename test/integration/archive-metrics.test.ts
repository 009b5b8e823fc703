// GET /metrics pgha_archive_* from a real PostgreSQL 15's pg_stat_archiver: archiving that works
// counts up pgha_archive_archived_total; archive_command = 'false' makes pgha_archive_failed_total
// count and pgha_archive_failing turn 1 (what the PghaArchiveFailing alert fires on).
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AgentStats } from '../../src/agent/stats.ts';
import { renderMetrics } from '../../src/api/metrics.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import { createPostgresControl } from '../../src/postgres/instance.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import { waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';
import { member } from '../support/observations.ts';
import { destroyTempDir, makeTempDataDir, nodeConfigFor, postgresOsUser, queryAt, silentLogger, testDynamicConfig } from '../support/postgres.ts';

// PostgreSQL's port, and the API port nodeConfigFor() needs (no agent runs: nothing listens there).
const PORT = allocatePorts(2);
let dir = '';
let pg: PostgresControl;

beforeAll(async () => {
  dir = makeTempDataDir();
  const config = nodeConfigFor({ name: 'arch', pgPort: PORT, apiPort: PORT + 1, dataDir: join(dir, 'data'), socketDir: dir });
  const dynamic = testDynamicConfig({ postgresql: { parameters: { fsync: 'off', archive_mode: 'on', archive_command: '/bin/true' } } });
  pg = createPostgresControl({ config, dynamic: () => dynamic, logger: silentLogger(), runAs: postgresOsUser() });
  await pg.initdb();
  await pg.start('primary', null);
}, 60_000);

afterAll(async () => {
  await pg?.close();
  if (dir !== '') await destroyTempDir(dir);
});

async function metrics(): Promise<string> {
  const local = await pg.observe();
  const snapshot: AgentSnapshot = {
    member: member('arch'), isLeader: true, cluster: null, paused: false, lagBytes: null, observedAt: performance.now(),
    lastPlan: '', systemId: local.systemId, version: '0.1.0', postgres: local.stats ?? null,
  };
  return renderMetrics({ scope: 't', name: 'arch', version: '0.1.0', snapshot, now: performance.now(), staleAfterMs: 3000, leaseDeadline: null, stats: new AgentStats() });
}
const value = (text: string, name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
const switchWal = () => queryAt(PORT, "create table if not exists w (x int); insert into w values (1); select pg_switch_wal()");

it('pgha_archive_* follow pg_stat_archiver: archived, then failing with archive_command = false', async () => {
  await switchWal();
  const ok = await waitFor('a WAL segment archived', async () => { const t = await metrics(); return value(t, 'pgha_archive_archived_total') >= 1 ? t : null; }, 20_000, 200);
  expect(value(ok, 'pgha_archive_enabled')).toBe(1);
  expect(value(ok, 'pgha_archive_failed_total')).toBe(0);
  expect(value(ok, 'pgha_archive_failing')).toBe(0);
  expect(value(ok, 'pgha_archive_last_archived_age_seconds')).toBeLessThan(30);

  await queryAt(PORT, "alter system set archive_command = 'false'");
  await queryAt(PORT, 'select pg_reload_conf()');
  await switchWal();
  const bad = await waitFor('a failed archive attempt', async () => { const t = await metrics(); return value(t, 'pgha_archive_failed_total') >= 1 ? t : null; }, 20_000, 200);
  expect(value(bad, 'pgha_archive_failing')).toBe(1);
  expect(value(bad, 'pgha_archive_last_failed_timestamp_seconds')).toBeGreaterThan(value(bad, 'pgha_archive_last_archived_timestamp_seconds'));
}, 60_000);
