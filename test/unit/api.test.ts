// The REST API's health checks (Patroni's status codes) and its logging, via fastify inject.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildApi, requireAuth } from '../../src/api/server.ts';
import { checkStatus, parseLag, type Check } from '../../src/api/health.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { clusterView, member } from '../support/observations.ts';

const NOW = 100_000;
function snap(over: Partial<AgentSnapshot> = {}, m: Parameters<typeof member>[1] = {}): AgentSnapshot {
  return {
    member: member('n2', m), isLeader: false, cluster: clusterView(), paused: false, lagBytes: 0,
    observedAt: NOW - 100, lastPlan: 'following n1', systemId: '1', version: '0.1.0', ...over,
  };
}
const primary = snap({ isLeader: true }, { role: 'primary', state: 'running', upstream: null });
const replica = snap();
const lagging = snap({ lagBytes: 50 * 1024 * 1024 });
const noLb = snap({}, { tags: { nofailover: false, noloadbalance: true, clonefrom: false, nosync: false, failover_priority: 1 } });
const stale = snap({ observedAt: NOW - 10_000 });
const primaryNoKey = snap({ isLeader: false }, { role: 'primary', state: 'running' });
const stopped = snap({}, { state: 'stopped' });

const table: Array<[string, AgentSnapshot | null, Check, number | undefined, 200 | 503]> = [
  ['leader primary', primary, 'primary', undefined, 200],
  ['primary without the key', primaryNoKey, 'primary', undefined, 503],
  ['replica on /primary', replica, 'primary', undefined, 503],
  ['replica', replica, 'replica', undefined, 200],
  ['primary on /replica', primary, 'replica', undefined, 503],
  ['noloadbalance replica', noLb, 'replica', undefined, 503],
  ['lagging replica with ?lag', lagging, 'replica', 1024 * 1024, 503],
  ['lagging replica without ?lag', lagging, 'replica', undefined, 200],
  ['stopped replica', stopped, 'replica', undefined, 503],
  ['stale snapshot', stale, 'primary', undefined, 503],
  ['no snapshot', null, 'health', undefined, 503],
  ['read-only on primary', primary, 'read-only', undefined, 200],
  ['read-only on replica', replica, 'read-only', undefined, 200],
  ['health on stopped', stopped, 'health', undefined, 503],
  ['readiness replica within lag', replica, 'readiness', undefined, 200],
  ['readiness replica beyond maximum_lag_on_failover', lagging, 'readiness', undefined, 503],
  ['liveness fresh', stopped, 'liveness', undefined, 200],
  ['liveness stale', stale, 'liveness', undefined, 503],
];

describe('health checks', () => {
  it.each(table)('%s: %s -> %s', (_, s, check, maxLag, want) => {
    expect(checkStatus(check, { snapshot: s, now: NOW, staleAfterMs: 3000, maxLag })).toBe(want);
  });
  it.each([['1048576', 1048576], ['10MB', 10 * 1024 ** 2], ['1kB', 1024], ['2 gb', 2 * 1024 ** 3], ['x', null], ['10XB', null]])('parses lag %s', (t, n) => {
    expect(parseLag(t)).toBe(n);
  });
});

function app(s: AgentSnapshot | null, sink?: string[]) {
  const dest = new Writable({ write(chunk: Buffer, _e, cb) { sink?.push(chunk.toString()); cb(); } });
  const logger = createLogger({ level: 'info', destination: dest });
  return buildApi({
    logger, scope: 'demo', snapshot: () => s, now: () => NOW, staleAfterMs: () => 3000,
    routes: (a) => a.post('/private', { preHandler: requireAuth({ username: 'admin', password: 'pw' }) }, async () => ({ ok: true })),
  });
}

describe('REST API', () => {
  it('answers the health endpoints and their Patroni aliases', async () => {
    const a = app(primary);
    for (const path of ['/primary', '/leader', '/master', '/read-write', '/read-only', '/health']) {
      expect((await a.inject({ url: path })).statusCode, path).toBe(200);
    }
    expect((await a.inject({ url: '/replica' })).statusCode).toBe(503);
    expect((await a.inject({ method: 'HEAD', url: '/primary' })).statusCode).toBe(200);
    expect((await a.inject({ method: 'OPTIONS', url: '/primary' })).statusCode).toBe(200);
  });
  it('returns 400 with the reason for a bad ?lag', async () => {
    const r = await app(replica).inject({ url: '/replica?lag=lots' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ error: 'PGHA_API_BAD_REQUEST' });
    expect(r.json().message).toContain('lag');
  });
  it('serves /status and /cluster JSON', async () => {
    const a = app(replica);
    const st = (await a.inject({ url: '/status' })).json();
    expect(st).toMatchObject({ name: 'n2', role: 'replica', state: 'streaming', leader: 'n1', stale: false });
    const cl = (await a.inject({ url: '/cluster' })).json();
    expect(cl.members.map((m: { name: string; role: string }) => `${m.name}:${m.role}`)).toEqual(['n1:leader', 'n2:replica', 'n3:replica']);
  });
  it('answers 503 everywhere before the first loop finished', async () => {
    expect((await app(null).inject({ url: '/health' })).statusCode).toBe(503);
  });
  it('demands basic auth on mutating routes', async () => {
    const a = app(primary);
    expect((await a.inject({ method: 'POST', url: '/private' })).statusCode).toBe(401);
    const bad = Buffer.from('admin:nope').toString('base64');
    expect((await a.inject({ method: 'POST', url: '/private', headers: { authorization: `Basic ${bad}` } })).statusCode).toBe(401);
    const good = Buffer.from('admin:pw').toString('base64');
    expect((await a.inject({ method: 'POST', url: '/private', headers: { authorization: `Basic ${good}` } })).statusCode).toBe(200);
  });
  it('does not log health probes, and never logs an Authorization header', async () => {
    const lines: string[] = [];
    const a = app(primary, lines);
    await a.inject({ url: '/primary' });
    await a.inject({ url: '/replica?lag=1MB' });
    expect(lines.join('')).toBe('');
    await a.inject({ method: 'POST', url: '/private', headers: { authorization: `Basic ${Buffer.from('admin:pw').toString('base64')}` } });
    const all = lines.join('');
    expect(all).toContain('/private');
    expect(all).not.toContain(Buffer.from('admin:pw').toString('base64'));
  });
  it('redacts passwords in logged objects', () => {
    const lines: string[] = [];
    const dest = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
    createLogger({ destination: dest }).info({ config: { postgresql: { authentication: { superuser: { password: 'hunter2' } } } }, password: 'x1', conninfo: 'host=a password=b' }, 'test');
    expect(lines.join('')).not.toMatch(/hunter2|x1|password=b/);
  });
});
