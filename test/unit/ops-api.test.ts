// The operations endpoints against unsafe input (issue 10): auth before any body, the lockout,
// PUT /config needing the whole document, parameter validation before anything is stored, GET
// /config and /history from the loop's snapshot, and bounded, cancellable restart schedules.
// etcd is a recording stub here; the real one: test/integration/api-fuzz.test.ts.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MAX_RESTART_AHEAD_MS, registerOpsRoutes, type OpsDeps } from '../../src/api/ops-routes.ts';
import { FAILURES_PER_LOCK } from '../../src/api/lockout.ts';
import { buildApi } from '../../src/api/server.ts';
import { nodeConfigSchema, type DynamicConfig } from '../../src/config/schema.ts';
import type { HistoryEntry } from '../../src/dcs/types.ts';
import { toPatroniConfig } from '../../src/dcs/patroni-config.ts';
import { encodeFailover } from '../../src/dcs/patroni.ts';
import { PgHaError } from '../../src/errors.ts';
import type { ClusterView, FailoverRequest } from '../../src/ha/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { clusterView, dyn, member } from '../support/observations.ts';

const config = nodeConfigSchema.parse({
  scope: 'demo', name: 'n2', restapi: { listen: '127.0.0.1:8008', authentication: { username: 'admin', password: 'pw' } },
  postgresql: { data_dir: '/var/lib/pgha/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const AUTH = `Basic ${Buffer.from('admin:pw').toString('base64')}`;
const WRONG = `Basic ${Buffer.from('admin:nope').toString('base64')}`;

/** A stub of the etcd calls the routes make; every call is recorded, none may be made unless expected. */
function stubDcs(stored: Record<string, unknown> | undefined, members = 3) {
  const calls: string[] = [];
  const puts: unknown[] = [];
  const dcs = {
    readCluster: async () => { calls.push('readCluster'); return clusterView({ members: clusterView().members.slice(0, members) }); },
    readStoredConfig: async () => { calls.push('getJson'); return { value: stored, revision: stored === undefined ? '0' : '5' }; },
    writeStoredConfig: async (v: unknown) => { calls.push('put'); puts.push(v); return '6'; },
    writeFailover: async (r: FailoverRequest) => { calls.push('put'); puts.push(encodeFailover(r)); return '6'; },
    readHistory: async () => { calls.push('readHistory'); return []; },
    scheduleRestart: async (_m: string, at: number) => { calls.push(`schedule ${at}`); return true; },
    cancelRestart: async () => { calls.push('cancel'); return true; },
  };
  return { dcs: dcs as unknown as OpsDeps['dcs'], calls, puts };
}

function api(o: { stored?: Record<string, unknown>; view?: ClusterView | null; history?: HistoryEntry[] | null; members?: number } = {}) {
  const stub = stubDcs(o.stored, o.members);
  const ran: string[] = [];
  const deps: OpsDeps = {
    config, dcs: stub.dcs, view: () => (o.view === undefined ? clusterView() : o.view), history: () => (o.history === undefined ? [] : o.history),
    fallback: () => dyn(), isLeader: () => false,
    restart: async () => { ran.push('restart'); }, reload: async () => { ran.push('reload'); },
    reinitialize: async () => { ran.push('reinit'); }, drill: async () => { ran.push('drill'); },
    failsafe: () => ({ ok: false, reason: 'no' }),
  };
  const app = buildApi({
    logger: createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) }), scope: 'demo',
    snapshot: () => null, now: () => 0, staleAfterMs: () => 3000, routes: (a) => registerOpsRoutes(a, deps),
  });
  return { app, ...stub, ran };
}

const json = (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body: unknown, auth: string | null = AUTH, remoteAddress = '10.0.0.1') => ({
  method, url, remoteAddress, payload: typeof body === 'string' ? body : JSON.stringify(body),
  headers: { 'content-type': 'application/json', 'x-pgha-member': 'n2', ...(auth === null ? {} : { authorization: auth }) },
});

describe('authentication comes before the body (finding 11)', () => {
  it.each([
    ['a 1 MiB body', 'x'.repeat(1 << 20)],
    ['a malformed JSON body', '{"leader": '],
    ['a body of the wrong type', '[1,2,3]'],
  ])('answers %s without credentials with 401, not 400 or 413', async (_, body) => {
    const { app, calls } = api();
    for (const url of ['/switchover', '/failover', '/restart', '/reinitialize', '/failsafe', '/drill']) {
      const r = await app.inject(json('POST', url, body, WRONG, `10.1.0.${url.length}`));
      expect(r.statusCode, url).toBe(401);
      expect(r.json().error).toBe('PGHA_API_UNAUTHORIZED');
    }
    expect((await app.inject(json('PATCH', '/config', body, null))).statusCode).toBe(401);
    expect(calls).toEqual([]);
  });

  it('still validates the body once authenticated', async () => {
    const { app } = api();
    expect((await app.inject(json('POST', '/failover', '{"candidate": ', AUTH))).statusCode).toBe(400);
  });

  it(`locks an address out with 429 after ${FAILURES_PER_LOCK} failures, even with the right password, not other addresses`, async () => {
    const { app } = api();
    for (let i = 0; i < FAILURES_PER_LOCK; i++) expect((await app.inject(json('POST', '/reload', {}, WRONG, '10.9.9.9'))).statusCode).toBe(401);
    const locked = await app.inject(json('POST', '/reload', {}, AUTH, '10.9.9.9'));
    expect(locked.statusCode).toBe(429);
    expect(locked.json().error).toBe('PGHA_API_LOCKED');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await app.inject(json('POST', '/reload', {}, AUTH, '10.8.8.8'))).statusCode).toBe(200);
    // Requests without credentials guess nothing and do not count.
    for (let i = 0; i < 3 * FAILURES_PER_LOCK; i++) expect((await app.inject(json('POST', '/reload', {}, null, '10.7.7.7'))).statusCode).toBe(401);
    expect((await app.inject(json('POST', '/reload', {}, AUTH, '10.7.7.7'))).statusCode).toBe(200);
  });
});

describe('PUT /config needs the whole document (finding 5)', () => {
  it('refuses {"ttl": 3} with 400 naming what is missing, and writes nothing', async () => {
    const { app, calls } = api({ stored: { ...dyn({ pause: true, synchronous_mode: 'on' }) } });
    const r = await app.inject(json('PUT', '/config', { ttl: 3 }));
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/missing: loop_wait, .*pause.*synchronous_mode.*postgresql/);
    expect(calls).toEqual([]);
  });

  it('refuses a postgresql section without all its keys', async () => {
    const { app, calls } = api();
    const doc = { ...dyn(), postgresql: { parameters: {} } };
    const r = await app.inject(json('PUT', '/config', doc));
    expect(r.json().message).toMatch(/postgresql\.use_pg_rewind, postgresql\.use_slots/);
    expect(calls).toEqual([]);
  });

  it('stores a whole document, and may replace an invalid stored one', async () => {
    const { app, puts } = api({ stored: { ttl: 'garbage' } });
    const doc: DynamicConfig = dyn({ ttl: 3, retry_timeout: 1, fence_margin: 0.75, pause: true });
    const r = await app.inject(json('PUT', '/config', doc));
    expect(r.statusCode, r.body).toBe(200);
    // Stored in Patroni's format (synchronous_mode a boolean, pause only while paused).
    expect(puts).toEqual([toPatroniConfig(doc, { ttl: 'garbage' })]);
    expect(puts).toEqual([{ ...doc, synchronous_mode: false }]);
  });
});

describe('parameters are validated before anything is stored (finding 4)', () => {
  it.each([
    ['bad name', { 'bad name': 1 }, /not a parameter name/],
    ['include_dir', { include_dir: '/etc' }, /include directives are refused/],
    ['include', { include: '/tmp/x.conf' }, /include directives are refused/],
    ['Include_If_Exists', { Include_If_Exists: '/tmp/x.conf' }, /include directives are refused/],
    ['wal_level minimal', { wal_level: 'minimal' }, /wal_level.*replica or logical/],
    ['WAL_LEVEL minimal', { WAL_LEVEL: 'minimal' }, /replica or logical/],
    ['max_wal_senders 0', { max_wal_senders: 0 }, /max_wal_senders.*at least 3/],
    ['max_replication_slots 1', { max_replication_slots: '1' }, /at least 4/],
    ['hot_standby off', { hot_standby: 'off' }, /hot_standby.*on/],
    ['two spellings', { work_mem: '4MB', WORK_MEM: '8MB' }, /the same parameter/],
    ['max_wal_senders below members + 1', { max_wal_senders: 3 }, /too small for 3 members/],
  ])('PATCH with %s: 400, nothing written', async (_, parameters, why) => {
    const { app, calls } = api({ stored: { ...dyn() } });
    const r = await app.inject(json('PATCH', '/config', { postgresql: { parameters } }));
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(why);
    expect(calls).not.toContain('put');
  });

  it('accepts sound values, in any spelling PostgreSQL takes', async () => {
    const { app, puts } = api({ stored: { ...dyn() } });
    const parameters = { wal_level: 'logical', hot_standby: true, max_wal_senders: '12', max_replication_slots: 12, 'auto_explain.log_min_duration': '1s', TimeZone: 'UTC' };
    const r = await app.inject(json('PATCH', '/config', { postgresql: { parameters } }));
    expect(r.statusCode, r.body).toBe(200);
    expect((puts[0] as DynamicConfig).postgresql.parameters).toEqual(parameters);
  });
});

describe('GET /config and /history answer from the loop, never from etcd (finding 6)', () => {
  it('answers /config from the last read, flagged when etcd holds an invalid one', async () => {
    const { app, calls } = api({ view: clusterView({ config: dyn({ pause: true }), configInvalid: { error: 'x', kept: true } }) });
    const r = await app.inject({ url: '/config' });
    expect(r.statusCode).toBe(200);
    expect(r.json().pause).toBe(true);
    expect(r.headers['x-pgha-config-invalid']).toBe('kept-last-valid');
    const h = await app.inject({ url: '/history' });
    expect(h.json()).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('answers 503 before the first read', async () => {
    const { app, calls } = api({ view: null, history: null });
    expect((await app.inject({ url: '/config' })).statusCode).toBe(503);
    expect((await app.inject({ url: '/history' })).statusCode).toBe(503);
    expect(calls).toEqual([]);
  });
});

describe('restart schedules (finding 3)', () => {
  const at = (ms: number) => new Date(Date.now() + ms).toISOString();

  it.each([
    ['in the past', at(-60_000), /in the past/],
    ['more than 7 days ahead', at(MAX_RESTART_AHEAD_MS + 60_000), /more than 7 days ahead/],
    ['beyond setTimeout\'s 24.8 days', '2030-01-01T00:00:00Z', /more than 7 days ahead/],
  ])('refuses a schedule %s with 400, restarting nothing', async (_, schedule, why) => {
    const { app, calls, ran } = api();
    const r = await app.inject(json('POST', '/restart', { schedule }));
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(why);
    expect(ran).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('stores a schedule in etcd (202) without restarting now; DELETE /restart cancels it', async () => {
    const { app, calls, ran } = api();
    const when = at(3_600_000);
    const r = await app.inject(json('POST', '/restart', { schedule: when }));
    expect(r.statusCode).toBe(202);
    expect(r.json()).toEqual({ scheduled: when, member: 'n2' });
    expect(calls).toEqual([`schedule ${Date.parse(when)}`]);
    expect(ran).toEqual([]);
    const d = await app.inject({ method: 'DELETE', url: '/restart', headers: { authorization: AUTH } });
    expect(d.json()).toEqual({ cancelled: true, member: 'n2' });
    expect((await app.inject({ method: 'DELETE', url: '/restart' })).statusCode).toBe(401);
  });
});

describe("Patroni's request bodies (patronictl, issue 20)", () => {
  it('POST /switchover with nulls for what is left open: a switchover, stored in Patroni\'s format', async () => {
    const { app, puts } = api();
    const r = await app.inject(json('POST', '/switchover', { leader: 'n1', candidate: 'n2', scheduled_at: null }));
    expect(r.statusCode, r.body).toBe(202);
    expect(puts).toEqual([expect.objectContaining({ leader: 'n1', member: 'n2', kind: 'switchover' })]);
  });

  it('POST /failover naming the healthy leader runs as a switchover; without a leader as a failover', async () => {
    const one = api();
    expect((await one.app.inject(json('POST', '/failover', { leader: 'n1', candidate: 'n2', scheduled_at: null }))).statusCode).toBe(202);
    expect(one.puts).toEqual([expect.objectContaining({ leader: 'n1', member: 'n2', kind: 'switchover' })]);
    // No healthy leader in the view: pgha's failover to the candidate.
    const down = clusterView({ leader: null, members: [member('n1', { role: 'unknown', state: 'stopped' }), member('n2'), member('n3')] });
    const two = api({ view: down });
    (two.dcs as unknown as { readCluster: () => Promise<ClusterView> }).readCluster = async () => down;
    expect((await two.app.inject(json('POST', '/failover', { leader: null, member: 'n2' }))).statusCode).toBe(202);
    expect(two.puts).toEqual([expect.objectContaining({ member: 'n2', kind: 'failover' })]);
  });

  it('POST /switchover that loses the race with another request: 409 with the code, nothing stored', async () => {
    const { app, dcs, puts } = api();
    (dcs as unknown as { writeFailover: () => Promise<string> }).writeFailover = async () => { throw new PgHaError('PGHA_DCS_CONFLICT', '/failover changed since it was read'); };
    const r = await app.inject(json('POST', '/switchover', { leader: 'n1', candidate: 'n2' }));
    expect(r.statusCode, r.body).toBe(409);
    expect(r.json()).toMatchObject({ error: 'PGHA_DCS_CONFLICT', message: expect.stringMatching(/requested at the same moment/) });
    expect(puts).toEqual([]);
  });

  it('POST /failover without a candidate, or /restart with a filter pgha lacks: 400, nothing stored', async () => {
    const { app, puts, ran } = api();
    expect((await app.inject(json('POST', '/failover', { leader: 'n1', candidate: null }))).statusCode).toBe(400);
    expect((await app.inject(json('POST', '/restart', { postgres_version: '15.1' }))).statusCode).toBe(400);
    expect(puts).toEqual([]);
    expect(ran).toEqual([]);
  });

  it('POST /restart {"restart_pending": true} restarts only a member with a pending restart', async () => {
    const idle = api();
    expect((await idle.app.inject(json('POST', '/restart', { restart_pending: true }))).statusCode).toBe(412);
    expect(idle.ran).toEqual([]);
    const pending = api({ view: clusterView({ members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { pendingRestart: true })] }) });
    expect((await pending.app.inject(json('POST', '/restart', { restart_pending: true }))).statusCode).toBe(200);
    expect(pending.ran).toEqual(['restart']);
  });
});

describe('bodies without Content-Type (patronictl sends none)', () => {
  const bare = (url: string, body: string, extra: Record<string, string> = {}) => ({
    method: 'POST' as const, url, remoteAddress: '10.0.0.1', payload: body,
    headers: { 'x-pgha-member': 'n2', authorization: AUTH, 'content-type': undefined as unknown as string, ...extra },
  });

  it('are read as JSON from a client that sends no Origin (not a browser)', async () => {
    const { app, puts } = api();
    const r = await app.inject(bare('/switchover', '{"leader":"n1","candidate":"n2","scheduled_at":null}'));
    expect(r.statusCode, r.body).toBe(202);
    expect(puts).toHaveLength(1);
  });

  it('are refused (415) from a browser, which sends Origin: no body without a CORS preflight', async () => {
    const { app, puts } = api();
    const r = await app.inject(bare('/switchover', '{"leader":"n1","candidate":"n2"}', { origin: 'https://evil.example' }));
    expect(r.statusCode).toBe(415);
    expect(puts).toEqual([]);
  });
});
