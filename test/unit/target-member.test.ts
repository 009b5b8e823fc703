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

const config = nodeConfigSchema.parse({
  scope: 'demo', name: 'node1', restapi: { listen: '127.0.0.1:8008', authentication: { username: 'admin', password: 'pw' } },
  postgresql: { data_dir: '/x/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const auth = { username: 'admin', password: 'pw' };

function api() {
  const done: string[] = [];
  const op = (name: string) => async () => { done.push(name); };
  const deps = {
    config, dcs: {} as OpsDeps['dcs'], view: () => null, history: () => null, fallback: () => config.bootstrap.dcs, isLeader: () => true,
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
});
