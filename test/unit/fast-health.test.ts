// The fast path of the health checks (fast-health.ts) on a real listening server: it answers
// exactly what fastify's route answers (compared with the same path plus an empty query string,
// which fastify's pipeline serves), and it takes only plain GET/HEAD of a check path.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastHealth } from '../../src/api/fast-health.ts';
import { CHECK_PATHS } from '../../src/api/health.ts';
import { buildApi } from '../../src/api/server.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import type { MemberInfo } from '../../src/ha/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { clusterView, agentSnapshot, member } from '../support/observations.ts';

const NOW = 100_000;
const STALE_AFTER = 3000;

const snap = (over: Partial<AgentSnapshot> = {}, m: Partial<MemberInfo> = {}): AgentSnapshot => agentSnapshot(NOW - 100, { systemId: '1', ...over }, m);
const SNAPSHOTS: Record<string, AgentSnapshot | null> = {
  'before the first loop': null,
  primary: snap({ isLeader: true, lagBytes: null }, { role: 'primary', state: 'running', upstream: null }),
  replica: snap(),
  stale: snap({ observedAt: NOW - STALE_AFTER - 1 }),
  'with logical slots': snap({
    logical: {
      role: 'standby', checkedAt: 1,
      slots: [{ name: 's1', plugin: 'pgoutput', database: 'app', active: false, confirmed_flush_lsn: '0/10', restart_lsn: '0/8', lag_bytes: 16, leader_confirmed_flush_lsn: '0/20' }],
    },
  }),
};

interface Answer { status: number; headers: Record<string, unknown>; body: string }

function get(port: number, method: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        const { date: _d, connection: _c, 'keep-alive': _k, ...headers } = res.headers;
        resolve({ status: res.statusCode ?? 0, headers, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('health checks answered before fastify', () => {
  let current: AgentSnapshot | null = null;
  const api = buildApi({
    logger: createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) }), scope: 'demo',
    snapshot: () => current, now: () => NOW, staleAfterMs: () => STALE_AFTER,
  });
  let port = 0;
  beforeAll(async () => {
    await api.listen({ host: '127.0.0.1', port: 0 });
    port = (api.server.address() as AddressInfo).port;
  });
  afterAll(() => api.close());

  for (const [what, s] of Object.entries(SNAPSHOTS)) {
    it(`answers as fastify's route does: ${what}`, async () => {
      current = s;
      for (const path of Object.keys(CHECK_PATHS)) {
        for (const method of ['GET', 'HEAD']) {
          const fast = await get(port, method, path);
          const routed = await get(port, method, `${path}?`);
          expect(fast, `${method} ${path}`).toEqual(routed);
        }
      }
    });
  }
});

describe('fastHealth', () => {
  let closing = false;
  const fast = fastHealth(() => ({ snapshot: SNAPSHOTS['primary'] ?? null, now: NOW, staleAfterMs: STALE_AFTER, scope: 'demo' }), () => closing);
  // What the fast path does not answer, this server answers 599.
  const server: Server = createServer((req, res) => {
    if (!fast(req, res)) {
      res.statusCode = 599;
      res.end();
    }
  });
  let port = 0;
  beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => {
    port = (server.address() as AddressInfo).port;
    resolve();
  })));
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('takes plain GET and HEAD of every check path', async () => {
    for (const path of Object.keys(CHECK_PATHS)) {
      expect((await get(port, 'GET', path)).status).not.toBe(599);
      expect((await get(port, 'HEAD', path)).status).not.toBe(599);
    }
    const r = await get(port, 'GET', '/primary');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ role: 'primary', scope: 'demo' });
  });

  it('leaves queries, other methods, other paths and a closing server to fastify', async () => {
    for (const [method, path] of [['GET', '/primary?lag=1MB'], ['GET', '/primary?'], ['OPTIONS', '/primary'], ['POST', '/primary'],
      ['GET', '/status'], ['GET', '/constructor'], ['GET', '/__proto__'], ['GET', '/primary/']] as const) {
      expect((await get(port, method, path)).status, `${method} ${path}`).toBe(599);
    }
    closing = true;
    expect((await get(port, 'GET', '/primary')).status).toBe(599);
    closing = false;
  });
});
