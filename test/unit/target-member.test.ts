// Finding 2: a mutating request names the member it is for (X-Pgha-Member), and an agent refuses
// one meant for another member: a member that published a wrong address (0.0.0.0, loopback)
// sends `pghactl reinit node2` to whichever agent answers there, which must not wipe itself.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { jsonPostHeaders } from '../../src/api/basic-auth.ts';
import { registerOpsRoutes, type OpsDeps } from '../../src/api/ops-routes.ts';
import { buildApi } from '../../src/api/server.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/log/logger.ts';
import type { ClusterView } from '../../src/ha/types.ts';
import { clusterView, member } from '../support/observations.ts';

const config = nodeConfigSchema.parse({
  scope: 'demo', name: 'node1', restapi: { listen: '127.0.0.1:8008', authentication: { username: 'admin', password: 'pw' } },
  postgresql: { data_dir: '/x/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const auth = { username: 'admin', password: 'pw' };

function api(view: ClusterView | null = null) {
  const done: string[] = [];
  const op = (name: string) => async () => { done.push(name); };
  const deps = {
    config, dcs: {} as OpsDeps['dcs'], view: () => view, history: () => null, fallback: () => config.bootstrap.dcs, isLeader: () => true,
    restart: op('restart'), reload: op('reload'), reinitialize: op('reinitialize'), drill: async (k) => { done.push(`drill ${k}`); },
    failsafe: (leader: string) => { done.push(`failsafe ${leader}`); return { ok: true, hold: { leader, until: 1 } }; },
  } satisfies OpsDeps;
  const app = buildApi({
    logger: createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) }), scope: 'demo',
    snapshot: () => null, now: () => 0, staleAfterMs: () => 3000, routes: (a) => registerOpsRoutes(a, { ...deps, isLeader: () => false }),
  });
  return { app, done };
}

const post = (url: string, member: string | undefined, body: unknown = {}) => ({
  method: 'POST' as const, url, payload: JSON.stringify(body), headers: jsonPostHeaders(auth, member),
});

describe('X-Pgha-Member', () => {
  it.each(['/reinitialize', '/restart', '/reload'])('%s for another member is refused with 421 and nothing is done', async (url) => {
    const { app, done } = api();
    const r = await app.inject(post(url, 'node2'));
    expect(r.statusCode).toBe(421);
    expect(r.json()).toEqual({ error: 'PGHA_API_WRONG_MEMBER', message: expect.stringContaining('this agent is node1, not node2: nothing done') });
    expect(done).toEqual([]);
  });

  it.each(['/reinitialize', '/restart', '/reload'])('%s without the header is refused with 400', async (url) => {
    const { app, done } = api();
    const r = await app.inject(post(url, undefined));
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toBe('PGHA_API_BAD_REQUEST');
    expect(done).toEqual([]);
  });

  it.each(['/reinitialize', '/restart', '/reload'])('%s for this member runs', async (url) => {
    const { app, done } = api();
    const r = await app.inject(post(url, 'node1'));
    expect(r.statusCode).toBe(200);
    expect(done).toEqual([url.slice(1)]);
  });

  it('checks credentials before the member: a caller without them learns nothing', async () => {
    const { app } = api();
    const r = await app.inject({ ...post('/reinitialize', 'node2'), headers: { 'content-type': 'application/json', 'x-pgha-member': 'node2' } });
    expect(r.statusCode).toBe(401);
  });

  it('POST /failsafe: checked when named, accepted without (older leaders)', async () => {
    const { app, done } = api();
    expect((await app.inject(post('/failsafe', 'node3', { leader: 'n1' }))).statusCode).toBe(421);
    expect((await app.inject(post('/failsafe', undefined, { leader: 'n1' }))).statusCode).toBe(200);
    expect((await app.inject(post('/failsafe', 'node1', { leader: 'n1' }))).statusCode).toBe(200);
    expect(done).toEqual(['failsafe n1', 'failsafe n1']);
  });

  // patronictl restart/reinit (issue 20): no header, but Host is the address the member published.
  const published = (node2Api: string) => clusterView({ members: [member('node1', { apiUrl: 'http://127.0.0.1:8008' }), member('node2', { apiUrl: node2Api })] });
  const patronictl = (url: string, host: string) => ({ method: 'POST' as const, url, payload: '{}', headers: { ...jsonPostHeaders(auth, undefined), host } });

  it.each(['/reinitialize', '/restart'])('%s without the header runs when Host is our own published address, no other member\'s', async (url) => {
    const { app, done } = api(published('http://127.0.0.1:8009'));
    expect((await app.inject(patronictl(url, '127.0.0.1:8008'))).statusCode).toBe(200);
    expect(done).toEqual([url.slice(1)]);
  });

  it.each(['/reinitialize', '/restart'])('%s without the header is refused when another member publishes our address too, or Host is not ours', async (url) => {
    const dup = api(published('http://127.0.0.1:8008'));
    expect((await dup.app.inject(patronictl(url, '127.0.0.1:8008'))).statusCode).toBe(400);
    const other = api(published('http://127.0.0.1:8009'));
    expect((await other.app.inject(patronictl(url, '127.0.0.1:8009'))).statusCode).toBe(400);
    const noView = api(null);
    expect((await noView.app.inject(patronictl(url, '127.0.0.1:8008'))).statusCode).toBe(400);
    expect([...dup.done, ...other.done, ...noView.done]).toEqual([]);
  });
});
