// The REST API over HTTP semantics (fastify inject): status codes per endpoint, methods, bodies,
// validation, 404, basic auth, and what reaches the log. The rules themselves: health.test.ts.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { CHECK_PATHS, clusterBody, statusBody, type Check } from '../../src/api/health.ts';
import { buildApi, requireAuth } from '../../src/api/server.ts';
import { UI_CSP } from '../../src/api/ui.ts';
import { parseBasicAuth, type Credentials } from '../../src/api/basic-auth.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import type { MemberInfo } from '../../src/ha/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { clusterView, agentSnapshot, member } from '../support/observations.ts';

const NOW = 100_000;
const STALE_AFTER = 3000;

const snap = (over: Partial<AgentSnapshot> = {}, m: Partial<MemberInfo> = {}): AgentSnapshot => agentSnapshot(NOW - 100, { systemId: '1', ...over }, m);
const primary = snap({ isLeader: true, lagBytes: null }, { role: 'primary', state: 'running', upstream: null });
const replica = snap();
const stale = snap({ observedAt: NOW - STALE_AFTER - 1 });

const ADMIN: Credentials = { username: 'admin', password: 'pw:with:colons' };
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** An API over a fixed snapshot, with test routes; `creds: null` configures no credentials. */
function app(s: AgentSnapshot | null, lines?: string[], creds: Credentials | null = ADMIN, extra?: (a: FastifyInstance) => void): FastifyInstance {
  const dest = new Writable({ write(chunk: Buffer, _e, cb) { lines?.push(chunk.toString()); cb(); } });
  return buildApi({
    logger: createLogger({ level: 'info', destination: dest }), scope: 'demo',
    snapshot: () => s, now: () => NOW, staleAfterMs: () => STALE_AFTER,
    routes: (a) => {
      a.post('/private', { preHandler: requireAuth(creds ?? undefined) }, async () => ({ ok: true }));
      a.post('/typed', { schema: { body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } } }, async () => ({ ok: true }));
      a.get('/boom', async () => { throw new Error('kaput'); });
      extra?.(a);
    },
  });
}

// Expected status per check on a fresh leader primary and a fresh streaming replica.
const EXPECTED: Record<Check, [primary: number, replica: number]> = {
  primary: [200, 503], replica: [503, 200], 'read-only': [200, 200], health: [200, 200], liveness: [200, 200],
  readiness: [200, 200], sync: [503, 503], async: [503, 200], 'read-only-sync': [200, 503],
  quorum: [503, 503], 'read-only-quorum': [200, 503], 'standby-leader': [503, 503],
};
const endpoints = Object.entries(CHECK_PATHS).map(([path, check]) => [path, check, ...EXPECTED[check]] as const);

describe('health endpoints', () => {
  const onPrimary = app(primary);
  const onReplica = app(replica);
  const onStale = app(stale);
  const beforeFirstLoop = app(null);

  it.each(endpoints)('GET %s (%s): %i on the primary, %i on a replica, 503 when stale or before the first loop', async (path, _c, p, r) => {
    expect((await onPrimary.inject({ url: path })).statusCode).toBe(p);
    expect((await onReplica.inject({ url: path })).statusCode).toBe(r);
    expect((await onStale.inject({ url: path })).statusCode).toBe(503);
    expect((await beforeFirstLoop.inject({ url: path })).statusCode).toBe(503);
  });

  it('answers /standby-leader with 503 and the status JSON, not 404 (no standby cluster, as Patroni)', async () => {
    for (const url of ['/standby-leader', '/standby_leader']) {
      const r = await onPrimary.inject({ url });
      expect(r.statusCode, url).toBe(503);
      expect(r.json(), url).toMatchObject({ name: 'n2', role: 'primary' });
    }
  });

  it.each(['HEAD', 'OPTIONS'] as const)('%s answers the same status with no body', async (method) => {
    for (const [path, url, want] of [['/primary', '/primary', 200], ['/replica', '/replica', 503], ['/', '/', 200], ['/read-only', '/read-only?lag=1MB', 200]] as const) {
      const r = await onPrimary.inject({ method, url });
      expect(r.statusCode, path).toBe(want);
      expect(r.body, path).toBe('');
    }
    expect((await onStale.inject({ method, url: '/health' })).statusCode).toBe(503);
  });

  it('GET answers the full /status JSON, on 200 and on 503 (no field lost to the response schema)', async () => {
    const ok = await onReplica.inject({ url: '/replica' });
    const down = await onReplica.inject({ url: '/primary' });
    const want = JSON.parse(JSON.stringify(statusBody(replica, NOW, STALE_AFTER, 'demo')));
    expect([ok.statusCode, down.statusCode]).toEqual([200, 503]);
    expect(ok.json()).toEqual(want);
    expect(down.json()).toEqual(want);
    expect(ok.headers['content-type']).toMatch(/^application\/json/);
  });

  it('applies ?lag, ?replication_state and ?tag_ over HTTP', async () => {
    const lagging = app(snap({ lagBytes: 50 * 1024 ** 2 }));
    expect((await lagging.inject({ url: '/replica?lag=10MB' })).statusCode).toBe(503);
    expect((await lagging.inject({ url: '/replica?lag=100mb' })).statusCode).toBe(200);
    expect((await onReplica.inject({ url: '/replica?replication_state=streaming' })).statusCode).toBe(200);
    expect((await onReplica.inject({ url: '/replica?replication_state=in%20archive%20recovery' })).statusCode).toBe(503);
    expect((await onReplica.inject({ url: '/replica?tag_nofailover=false' })).statusCode).toBe(200);
    expect((await onReplica.inject({ url: '/replica?tag_dc=east' })).statusCode).toBe(503);
  });

  it.each([
    ['/replica?lag=xyz', 'lag: "xyz"'],
    ['/replica?lag=10XB', 'lag: "10XB"'],
    ['/replica?lag=1MB&lag=2MB', 'lag'],
    ['/replica?replication_state=catchup', 'replication_state'],
    ['/readiness?mode=replay', 'mode'],
    ['/replica?tag_dc=a&tag_dc=b', 'tag_dc'],
  ])('%s answers 400 PGHA_API_BAD_REQUEST naming the parameter', async (url, named) => {
    for (const method of ['GET', 'OPTIONS'] as const) {
      const r = await onReplica.inject({ method, url });
      expect(r.statusCode, method).toBe(400);
      if (method === 'GET') {
        expect(r.json()).toEqual({ error: 'PGHA_API_BAD_REQUEST', message: expect.stringContaining(named) });
      }
    }
  });
});

describe('views', () => {
  it('/status and /patroni answer 200 with the member JSON, even when stale', async () => {
    for (const url of ['/status', '/patroni']) {
      const fresh = await app(replica).inject({ url });
      expect(fresh.statusCode).toBe(200);
      const body = JSON.parse(JSON.stringify(statusBody(replica, NOW, STALE_AFTER, 'demo')));
      // /patroni speaks Patroni's state words: a streaming standby is "running" there.
      expect(fresh.json()).toEqual(url === '/status' ? body : { ...body, state: body.state === 'streaming' ? 'running' : body.state });
      const old = await app(stale).inject({ url });
      expect(old.statusCode).toBe(200);
      expect(old.json()).toMatchObject({ stale: true, age_ms: STALE_AFTER + 1, role: 'replica' });
    }
    const none = await app(null).inject({ url: '/status' });
    expect([none.statusCode, none.json().stale, none.json().state]).toEqual([200, true, 'unknown']);
  });

  it('/cluster answers every member (no field lost to the response schema)', async () => {
    const r = await app(replica).inject({ url: '/cluster' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual(JSON.parse(JSON.stringify(clusterBody(replica, NOW, STALE_AFTER, 'demo'))));
    expect(r.json().members.map((m: { name: string; role: string }) => `${m.name}:${m.role}`)).toEqual(['n1:leader', 'n2:replica', 'n3:replica']);
    expect((await app(null).inject({ url: '/cluster' })).json()).toMatchObject({ scope: 'demo', members: [], stale: true });
    const failover = { kind: 'switchover', leader: 'n1', candidate: null, scheduledAt: Date.UTC(2030, 0, 1), requestedAt: 0, shutdownLsn: null } as const;
    const pending = snap({ cluster: clusterView({ failover }) });
    expect((await app(pending).inject({ url: '/cluster' })).json()).toEqual(JSON.parse(JSON.stringify(clusterBody(pending, NOW, STALE_AFTER, 'demo'))));
  });

  it('answers unknown routes and methods with 404 JSON', async () => {
    for (const [method, url] of [['GET', '/nope?x=1'], ['POST', '/primary'], ['DELETE', '/status']] as const) {
      const r = await app(primary).inject({ method, url });
      expect(r.statusCode).toBe(404);
      expect(r.json()).toEqual({ error: 'not found', message: `no route ${method} ${url.split('?')[0]}` });
    }
  });

  it('answers a bad body with PGHA_API_BAD_REQUEST and other errors with fastify\'s 500', async () => {
    const a = app(primary);
    const typed = await a.inject({ method: 'POST', url: '/typed', payload: { n: 'x' } });
    expect(typed.statusCode).toBe(400);
    expect(typed.json()).toMatchObject({ error: 'PGHA_API_BAD_REQUEST', message: expect.stringContaining('n') });
    const unparsable = await a.inject({ method: 'POST', url: '/typed', headers: { 'content-type': 'application/json' }, payload: '{' });
    expect(unparsable.json()).toMatchObject({ error: 'PGHA_API_BAD_REQUEST' });
    expect((await a.inject({ url: '/boom' })).statusCode).toBe(500);
  });

  it('answers 503 to a request that arrives while it closes (HAProxy drops the member during shutdown)', async () => {
    let release = () => {};
    let started = () => {};
    const inFlight = new Promise<void>((r) => { started = r; });
    const a = app(primary, undefined, ADMIN, (x) => x.get('/slow', () => new Promise((r) => { started(); release = () => r({ ok: true }); })));
    await a.listen({ host: '127.0.0.1', port: 0 });
    const { port } = a.server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 }); // the probe queues behind /slow on one connection
    const get = (path: string) => new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, agent }, (r) => { r.resume(); r.on('end', () => resolve(r.statusCode ?? 0)); }).on('error', reject).end();
    });
    try {
      const slow = get('/slow');
      await inFlight;
      const probe = get('/primary');
      const closing = a.close();
      await new Promise((r) => setTimeout(r, 50));
      release();
      expect([await slow, await probe]).toEqual([200, 503]);
      await closing;
    } finally {
      agent.destroy();
    }
  });
});

describe('basic auth (requireAuth)', () => {
  const a = app(primary);
  const post = (authorization?: string) =>
    a.inject({ method: 'POST', url: '/private', headers: authorization === undefined ? {} : { authorization } });

  it.each([
    ['no header', undefined],
    ['wrong password', basic('admin', 'nope')],
    ['wrong user', basic('root', ADMIN.password)],
    ['password prefix', basic('admin', 'pw')],
    ['another scheme', `Bearer ${Buffer.from('admin:pw:with:colons').toString('base64')}`],
    ['not base64', 'Basic !!!'],
    ['no colon', `Basic ${Buffer.from('admin').toString('base64')}`],
  ])('refuses %s with 401 and a Basic challenge', async (_, header) => {
    const r = await post(header);
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Basic realm="pgha"');
    expect(r.json()).toMatchObject({ error: 'PGHA_API_UNAUTHORIZED' });
  });

  it('accepts the configured user and password (scheme in any case, password with colons)', async () => {
    expect((await post(basic('admin', ADMIN.password))).statusCode).toBe(200);
    expect((await post(basic('admin', ADMIN.password).replace('Basic', 'basic'))).statusCode).toBe(200);
  });

  it('refuses everything when no credentials are configured', async () => {
    const open = app(primary, undefined, null);
    const r = await open.inject({ method: 'POST', url: '/private', headers: { authorization: basic('admin', ADMIN.password) } });
    expect(r.statusCode).toBe(401);
    expect(r.json().message).toMatch(/not configured/);
  });

  it.each([
    [basic('u', 'p'), { username: 'u', password: 'p' }],
    [basic('u', ''), { username: 'u', password: '' }],
    [basic('', 'p'), { username: '', password: 'p' }],
    [basic('u', 'a:b'), { username: 'u', password: 'a:b' }],
    [undefined, null],
    ['Basic', null],
    ['Digest abc', null],
  ])('parseBasicAuth(%j)', (header, want) => {
    expect(parseBasicAuth(header)).toEqual(want);
  });
});

describe('logging', () => {
  it('logs no line for health probes, status polls and the status page\'s polls, in any method, with any query', async () => {
    const lines: string[] = [];
    const a = app(primary, lines);
    for (const path of Object.keys(CHECK_PATHS)) {
      for (const method of ['GET', 'HEAD', 'OPTIONS'] as const) await a.inject({ method, url: path });
    }
    await a.inject({ url: '/replica?lag=1MB&replication_state=streaming' });
    await a.inject({ url: '/replica?lag=bad' });
    await a.inject({ url: '/status' });
    await a.inject({ url: '/patroni' });
    await a.inject({ url: '/cluster' }); // the status page polls it once a second
    expect(lines).toEqual([]);
    await a.inject({ url: '/ui' });
    expect(lines.join('')).toContain('/ui');
  });

  it('never logs an Authorization header, accepted or refused', async () => {
    const lines: string[] = [];
    const a = app(primary, lines);
    const good = basic('admin', ADMIN.password);
    const bad = basic('admin', 'guess');
    await a.inject({ method: 'POST', url: '/private', headers: { authorization: good } });
    await a.inject({ method: 'POST', url: '/private', headers: { authorization: bad } });
    const all = lines.join('');
    expect(all).toContain('/private');
    expect(all).toMatch(/"statusCode":401/);
    for (const secret of [good.slice(6), bad.slice(6), ADMIN.password, 'guess', 'authorization']) {
      expect(all.toLowerCase()).not.toContain(secret.toLowerCase());
    }
  });

  it('redacts passwords in logged objects', () => {
    const lines: string[] = [];
    const dest = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
    createLogger({ destination: dest }).info({ config: { postgresql: { authentication: { superuser: { password: 'hunter2' } } } }, password: 'x1', conninfo: 'host=a password=b' }, 'test');
    expect(lines.join('')).not.toMatch(/hunter2|x1|password=b/);
  });
});

describe('status page (GET /ui)', () => {
  const a = app(primary);
  const read = (f: string) => readFileSync(new URL(`../../src/api/ui/${f}`, import.meta.url), 'utf8');

  it.each([
    ['/ui', 'text/html', '<title>pgha status</title>'],
    ['/ui/app.js', 'text/javascript', 'getJson(\'/cluster\')'],
    ['/ui/style.css', 'text/css', '#lag-chart'],
  ])('serves %s as %s without authentication, under a strict Content-Security-Policy', async (url, type, content) => {
    const r = await a.inject({ url });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain(type);
    expect(r.headers['content-security-policy']).toBe(UI_CSP);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body).toContain(content);
  });

  it('allows nothing inline and nothing from elsewhere', () => {
    expect(UI_CSP).toContain("default-src 'none'");
    expect(UI_CSP).toContain("script-src 'self'");
    expect(UI_CSP).not.toMatch(/unsafe|https?:|\*/);
  });

  it('has no inline script or style, and the script never inserts markup', () => {
    const html = read('index.html');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect(read('app.js')).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  });

  it('finds every element the script looks up by id in the page', () => {
    const html = read('index.html');
    const ids = [...read('app.js').matchAll(/\$\('([a-z-]+)'\)/g)].map((m) => m[1]!);
    expect(ids.length).toBeGreaterThan(10);
    for (const id of new Set(ids)) expect(html, id).toContain(`id="${id}"`);
  });
});
