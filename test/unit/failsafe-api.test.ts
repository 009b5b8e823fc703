// POST /failsafe: basic auth like the other mutating endpoints, a zod-checked body, and the
// member's answer as 200 or 409.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { registerOpsRoutes, type OpsDeps } from '../../src/api/ops-routes.ts';
import { buildApi } from '../../src/api/server.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import type { FailsafeAnswer } from '../../src/ha/failsafe.ts';
import { createLogger } from '../../src/log/logger.ts';

const config = nodeConfigSchema.parse({
  scope: 'demo', name: 'n2', restapi: { connect_address: '127.0.0.1:8008', authentication: { username: 'admin', password: 'pw' } },
  postgresql: { data_dir: '/x/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const basic = `Basic ${Buffer.from('admin:pw').toString('base64')}`;

function api(answer: (leader: string) => FailsafeAnswer) {
  const calls: string[] = [];
  const unused = () => { throw new Error('not used by /failsafe'); };
  const deps = {
    config, dcs: {} as OpsDeps['dcs'], view: unused, history: unused, fallback: unused, isLeader: () => false, restart: unused, reload: unused, reinitialize: unused, drill: unused,
    failsafe: (leader: string, ttl?: number) => { calls.push(ttl === undefined ? leader : `${leader}/${ttl}`); return answer(leader); },
  } satisfies OpsDeps;
  const app = buildApi({
    logger: createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) }), scope: 'demo',
    snapshot: () => null, now: () => 0, staleAfterMs: () => 3000, routes: (a) => registerOpsRoutes(a, deps),
  });
  return { app, calls };
}

const post = (body: unknown, auth: string | null = basic) => ({
  method: 'POST' as const, url: '/failsafe', payload: JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...(auth === null ? {} : { authorization: auth }) },
});

describe('POST /failsafe', () => {
  it('confirms with 200 when the member accepts', async () => {
    const { app, calls } = api(() => ({ ok: true, hold: { leader: 'n1', until: 3000 } }));
    const r = await app.inject(post({ leader: 'n1' }));
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ accepted: true, member: 'n2', leader: 'n1' });
    expect(calls).toEqual(['n1']);
    expect((await app.inject(post({ leader: 'n1', ttl: 30 }))).statusCode).toBe(200);
    expect(calls).toEqual(['n1', 'n1/30']);
  });

  // Patroni 3.0.2's leader (ha.py check_failsafe_topology / call_failsafe_member) sends
  // {name, conn_url, api_url, slots} and counts a member only on 200 with the body `Accepted`.
  it('answers a Patroni leader in Patroni\'s terms', async () => {
    const patroniBody = { name: 'p1', conn_url: 'postgres://127.0.0.1:5432/postgres', api_url: 'http://127.0.0.1:8008/patroni', slots: { p1: 123 } };
    const yes = api(() => ({ ok: true, hold: { leader: 'p1', until: 3000 } }));
    const r = await yes.app.inject(post(patroniBody));
    expect([r.statusCode, r.body]).toEqual([200, 'Accepted']);
    expect(yes.calls).toEqual(['p1']);
    const no = api(() => ({ ok: false, reason: 'etcd last showed n3 holding the leader key' }));
    const r2 = await no.app.inject(post(patroniBody));
    expect([r2.statusCode, r2.body]).toEqual([500, 'etcd last showed n3 holding the leader key']);
    // pgha's own leader sends both dialects' fields: answered in pgha's JSON.
    const both = await yes.app.inject(post({ leader: 'p1', ttl: 30, name: 'p1', conn_url: 'postgres://127.0.0.1:5432/postgres', api_url: 'http://127.0.0.1:8008/patroni' }));
    expect(both.json()).toEqual({ accepted: true, member: 'n2', leader: 'p1' });
  });

  it('answers 409 with the reason when the member refuses', async () => {
    const { app } = api(() => ({ ok: false, reason: 'etcd last showed n3 holding the leader key' }));
    const r = await app.inject(post({ leader: 'n1' }));
    expect(r.statusCode).toBe(409);
    expect(r.json()).toEqual({ error: 'PGHA_FAILSAFE_REFUSED', message: 'etcd last showed n3 holding the leader key' });
  });

  it.each([
    ['no credentials', post({ leader: 'n1' }, null), 401],
    ['wrong credentials', post({ leader: 'n1' }, `Basic ${Buffer.from('admin:nope').toString('base64')}`), 401],
    ['no leader', post({}), 400],
    ['an unknown key', post({ leader: 'n1', extra: {} }), 400],
    ['a leader and a name that differ', post({ leader: 'n1', name: 'n3' }), 400],
    ['a ttl out of range', post({ leader: 'n1', ttl: 0 }), 400],
    ['a leader that is no member name', post({ leader: 'n1; rm -rf' }), 400],
  ])('refuses %s without asking the member', async (_, req, status) => {
    const { app, calls } = api(() => ({ ok: true, hold: { leader: 'n1', until: 1 } }));
    expect((await app.inject(req)).statusCode).toBe(status);
    expect(calls).toEqual([]);
  });
});
