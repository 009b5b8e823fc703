// The backup endpoints against bad requests, without pgBackRest: auth before anything, the body
// validated, a member without a backup: section refused with PGHA_BACKUP_NOT_CONFIGURED, a
// backup refused on a non-leader (or, with standby, on the leader or a non-streaming standby).
// Nothing here may start pgbackrest: a refusal must come first. The real runs:
// test/integration/backup.test.ts.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { registerBackupRoutes } from '../../src/api/backup-routes.ts';
import { buildApi } from '../../src/api/server.ts';
import { BackupAgent } from '../../src/backup/agent.ts';
import type { BackupNodeConfig } from '../../src/backup/exec.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import type { ClusterView } from '../../src/ha/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { clusterView } from '../support/observations.ts';

const logger = createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) });
const base = {
  scope: 'demo', name: 'n2', restapi: { listen: '127.0.0.1:8008', authentication: { username: 'admin', password: 'pw' } },
  postgresql: { data_dir: '/var/lib/pgha/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
};
const AUTH = `Basic ${Buffer.from('admin:pw').toString('base64')}`;

function api(o: { backup: boolean; leader: boolean; view?: ClusterView; peers?: boolean }) {
  const config = nodeConfigSchema.parse({
    ...base,
    ...(o.backup ? { backup: { repositories: [{ path: '/nonexistent/repo' }], bin: '/nonexistent/pgbackrest', ...(o.peers ? { peers: { n1: { path: '/var/lib/pgha/n1' } } } : {}) } } : {}),
  });
  const backup = o.backup ? new BackupAgent({ config: config as BackupNodeConfig, logger }) : null;
  const app = buildApi({
    logger, scope: 'demo', snapshot: () => null, now: () => 0, staleAfterMs: () => 3000,
    routes: (a) => registerBackupRoutes(a, { config, backup, isLeader: () => o.leader, view: () => o.view ?? clusterView(), logger }),
  });
  return { app, backup };
}
const post = (url: string, body: unknown, auth: string | null = AUTH) => ({
  method: 'POST' as const, url, payload: JSON.stringify(body),
  headers: { 'content-type': 'application/json', 'x-pgha-member': 'n2', ...(auth === null ? {} : { authorization: auth }) },
});

describe('POST /backup', () => {
  it('asks for credentials before anything else', async () => {
    const { app } = api({ backup: true, leader: true });
    const r = await app.inject(post('/backup', { type: 'full' }, null));
    expect(r.statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/backup/info' })).statusCode).toBe(401);
  });

  it('refuses a member without a backup: section', async () => {
    const { app } = api({ backup: false, leader: true });
    const r = await app.inject(post('/backup', {}));
    expect(r.statusCode).toBe(412);
    expect(r.json()).toMatchObject({ error: 'PGHA_BACKUP_NOT_CONFIGURED' });
    expect((await app.inject({ method: 'GET', url: '/backup', headers: { authorization: AUTH } })).json()).toMatchObject({ error: 'PGHA_BACKUP_NOT_CONFIGURED' });
  });

  it('validates the body', async () => {
    const { app } = api({ backup: true, leader: true });
    const r = await app.inject(post('/backup', { type: 'huge' }));
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/^type: /);
    expect((await app.inject(post('/backup', { type: 'full', extra: 1 }))).statusCode).toBe(400);
  });

  it('refuses a backup on a member that is not the leader, and a standby backup on the leader', async () => {
    const standby = api({ backup: true, leader: false });
    const r = await standby.app.inject(post('/backup', { type: 'full' }));
    expect(r.statusCode).toBe(412);
    expect(r.json().message).toMatch(/n2 is not the leader/);
    const leader = api({ backup: true, leader: true, peers: true });
    expect((await leader.app.inject(post('/backup', { standby: true }))).json().message).toMatch(/n2 is the leader/);
    expect(standby.backup?.jobs.current()).toBeNull();
  });

  it('refuses a standby backup without peers or on a standby that does not stream', async () => {
    const view = clusterView();
    const streaming: ClusterView = { ...view, members: view.members.map((m) => (m.name === 'n2' ? { ...m, state: 'streaming' as const } : m)) };
    const noPeers = api({ backup: true, leader: false, view: streaming });
    expect((await noPeers.app.inject(post('/backup', { standby: true }))).json().message).toMatch(/backup.peers is empty/);
    const stopped: ClusterView = { ...view, members: view.members.map((m) => (m.name === 'n2' ? { ...m, state: 'stopped' as const } : m)) };
    const notStreaming = api({ backup: true, leader: false, view: stopped, peers: true });
    expect((await notStreaming.app.inject(post('/backup', { standby: true }))).json().message).toMatch(/not streaming/);
  });

  it('expire is for the leader only', async () => {
    const { app } = api({ backup: true, leader: false });
    const r = await app.inject(post('/backup/expire', {}));
    expect(r.statusCode).toBe(412);
  });
});
