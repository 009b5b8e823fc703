// Issue 10 against a real one-node cluster (etcd, PostgreSQL 15, the agent): a scheduled restart
// kept in etcd survives an agent restart and runs at its time; DELETE /restart and `pghactl flush
// restart` cancel one; a schedule years ahead is refused instead of restarting now. An invalid
// /config in etcd leaves the agent on the last valid one (still paused), flagged. Then a
// property-based fuzz: 10,000 random and malformed requests without valid credentials (paths,
// methods, headers, bodies, query strings, auth), sent over keep-alive connections (node:http) and
// raw sockets (net, for what node:http refuses to send). No crash, no 5xx but the documented 503s,
// the agent keeps its role, and no key in etcd changes.
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { Etcd3 } from 'etcd3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../../lab/loopback.ts';
import { REPO, postmasterPid, sleep, waitFor } from '../../lab/util.ts';

const cluster = new TestCluster({ ttl: 3 });
const n1 = cluster.nodes[0]!;
const PREFIX = '/pgha-test/itest/';
const AUTH = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`;
const etcd = new Etcd3({ hosts: `http://${cluster.etcdEndpoint}` });

/** pghactl as a child process; 60 s covers its etcd reads and a restart through an agent. */
function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', n1.configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

/** An authenticated call; 10 s: the agent answers from memory or after one etcd write. */
async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${n1.apiPort}${path}`, {
    method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: AUTH, 'x-pgha-member': 'node1' }, signal: AbortSignal.timeout(10_000),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, json: (await r.json().catch(() => ({}))) as Record<string, unknown> };
}

// Bootstrap (initdb, start, take the key) takes seconds idle; 100 s covers a loaded 2-core machine.
const primaryUp = () => waitFor('node1 primary', async () => (await cluster.probe(n1, '/primary')) === 200, 100_000, 200);
const restartKey = async () => etcd.get(`${PREFIX}restart/node1`).string();

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAgent(n1);
  await primaryUp();
});
afterAll(async () => {
  etcd.close();
  await cluster.destroy();
});

describe('scheduled restarts (finding 3)', () => {
  it('refuses a schedule years ahead instead of restarting now, and one in the past', async () => {
    const pid = postmasterPid(n1.dataDir);
    const far = await ctl('restart', 'node1', '--scheduled', '2030-01-01T00:00:00Z', '--force');
    expect(far.code).toBe(1);
    expect(far.stderr).toMatch(/more than 7 days ahead/);
    const past = await api('POST', '/restart', { schedule: new Date(Date.now() - 60_000).toISOString() });
    expect(past.status).toBe(400);
    await sleep(1500); // the old agent's clamped 1 ms timer would have restarted by now
    expect(postmasterPid(n1.dataDir)).toBe(pid);
    expect(await restartKey()).toBeNull();
  });

  it('keeps a schedule in etcd across an agent restart and runs it at its time', async () => {
    // 25 s: the agent restart below (stop PostgreSQL, start again, take the key) takes ~5-10 s.
    const at = Date.now() + 25_000;
    const r = await api('POST', '/restart', { schedule: new Date(at).toISOString() });
    expect(r.status).toBe(202);
    expect(JSON.parse((await restartKey()) ?? '{}')).toMatchObject({ at });
    const again = await api('POST', '/restart', { schedule: new Date(at + 1000).toISOString() });
    expect(again.status).toBe(412); // one schedule at a time
    await cluster.stopAgent(n1);
    cluster.startAgent(n1);
    await primaryUp();
    const pid = postmasterPid(n1.dataDir);
    expect(pid).not.toBeNull();
    expect(Date.now()).toBeLessThan(at - 2000);
    await sleep(Math.max(0, at - Date.now() - 1500));
    expect(postmasterPid(n1.dataDir)).toBe(pid); // not before its time
    // Due within one loop_wait (0.5 s); 15 s covers the fast stop and the start.
    await waitFor('the scheduled restart', async () => { const p = postmasterPid(n1.dataDir); return p !== null && p !== pid; }, 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(at);
    expect(cluster.logs(n1)).toContain('running the scheduled restart');
    expect(await restartKey()).toBeNull();
    await primaryUp();
  });

  it('cancels a schedule with DELETE /restart and with pghactl flush restart', async () => {
    const pid = postmasterPid(n1.dataDir);
    expect((await api('POST', '/restart', { schedule: new Date(Date.now() + 3000).toISOString() })).status).toBe(202);
    expect((await api('DELETE', '/restart')).json).toEqual({ cancelled: true, member: 'node1' });
    expect((await api('POST', '/restart', { schedule: new Date(Date.now() + 3000).toISOString() })).status).toBe(202);
    const flushed = await ctl('flush', 'restart', '--format', 'json');
    expect(flushed.code, flushed.stderr).toBe(0);
    expect(JSON.parse(flushed.stdout)).toEqual({ cancelled: ['node1'] });
    expect(await restartKey()).toBeNull();
    await sleep(4500);
    expect(postmasterPid(n1.dataDir)).toBe(pid);
    expect((await api('DELETE', '/restart')).json).toEqual({ cancelled: false, member: 'node1' });
  });
});

describe('an invalid /config in etcd (finding 13)', () => {
  it('keeps the last valid /config (pause kept), flags it, and a whole-document PUT repairs it', async () => {
    const paused = await api('PATCH', '/config', { pause: true });
    expect(paused.status).toBe(200);
    const good = paused.json;
    // The loop reads /config every loop_wait (0.5 s): 10 s is generous for this and the waits below.
    await waitFor('paused', async () => (await cluster.status(n1))?.pause === true, 10_000);
    // A partial PUT would reset pause: refused, nothing written.
    expect((await api('PUT', '/config', { ttl: 3 })).status).toBe(400);
    await etcd.put(`${PREFIX}config`).value(JSON.stringify({ ...good, ttl: 'three' }));
    await waitFor('flagged', async () => {
      const r = await fetch(`http://127.0.0.1:${n1.apiPort}/config`);
      return r.headers.get('x-pgha-config-invalid') === 'kept-last-valid' && ((await r.json()) as { pause: boolean }).pause;
    }, 10_000);
    await sleep(1500); // a few loops on the invalid value: still paused, still primary
    expect((await cluster.status(n1))?.pause).toBe(true);
    expect(await cluster.probe(n1, '/primary')).toBe(200);
    const fixed = await api('PUT', '/config', { ...good, pause: false });
    expect(fixed.status).toBe(200);
    await waitFor('valid and resumed', async () => {
      const r = await fetch(`http://127.0.0.1:${n1.apiPort}/config`);
      return r.headers.get('x-pgha-config-invalid') === null && !((await r.json()) as { pause: boolean }).pause;
    }, 10_000);
  });
});

// ---- the fuzz ----

/** mod_revision of every key under the prefix the agent does not rewrite on its own. */
async function etcdState(): Promise<Record<string, string>> {
  const res = await etcd.getAll().prefix(PREFIX).exec();
  const out: Record<string, string> = {};
  for (const kv of res.kvs) {
    const key = kv.key.toString();
    // Rewritten by the agent itself: its member key (every 10 s) and the leader's WAL position.
    if (key.startsWith(`${PREFIX}members/`) || key === `${PREFIX}status`) continue;
    out[key] = `${kv.mod_revision}:${kv.value.toString()}`;
  }
  return out;
}

const PATHS = [
  '/', '/primary', '/replica', '/read-only', '/health', '/liveness', '/readiness', '/sync', '/async', '/quorum',
  '/read-only-sync', '/read-only-quorum', '/status', '/patroni', '/cluster', '/history', '/config', '/switchover',
  '/failover', '/restart', '/reload', '/reinitialize', '/drill', '/failsafe', '/metrics', '/leader', '/standby-leader',
];
const wrongAuth = fc.oneof(
  fc.constant(undefined),
  fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })).filter(([u, p]) => !(u === 'admin' && p === 'admin-pw'))
    .map(([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`),
  fc.string({ maxLength: 30 }).map((p) => `Basic ${Buffer.from(`admin:${p === 'admin-pw' ? 'x' : p}`).toString('base64')}`),
  fc.constantFrom('Basic', 'Basic !!!', 'Bearer abc', 'basic    ', `Basic ${'A'.repeat(6000)}`, 'Digest username="admin"'),
  fc.string({ maxLength: 60 }),
);
const bodyShapes = fc.oneof(
  fc.record({ leader: fc.string(), ttl: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }),
  fc.record({ schedule: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()), force: fc.boolean() }, { requiredKeys: [] }),
  fc.record({ candidate: fc.string(), leader: fc.string(), scheduled_at: fc.string(), force: fc.boolean() }, { requiredKeys: [] }),
  fc.record({ ttl: fc.integer({ min: -5, max: 5000 }), pause: fc.boolean(), postgresql: fc.record({ parameters: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())) }) }, { requiredKeys: [] }),
  fc.record({ kind: fc.constantFrom('kill', 'stop', 'x') }),
);
const body = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.oneof(bodyShapes, fc.jsonValue({ maxDepth: 4 })).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')) },
  { weight: 1, arbitrary: fc.constantFrom('{"leader": ', '[', '{"a":'.repeat(2000), 'x'.repeat(70_000), 'x'.repeat(1 << 20)) },
);
const query = fc.oneof(
  fc.constant(''),
  fc.dictionary(fc.constantFrom('lag', 'replication_state', 'mode', 'tag_nofailover', 'tag_x', 'x', ''), fc.string({ maxLength: 30 }), { maxKeys: 3 })
    .map((q) => `?${new URLSearchParams(q).toString()}`),
  fc.string({ maxLength: 40 }).map((s) => `?${encodeURI(s)}`),
  fc.constantFrom('?lag=1e309', '?lag=-1', '?lag=%zz', '?replication_state[]=a', '?__proto__=1', '?constructor[prototype][x]=1'),
);
const path = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PATHS) },
  { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 12 }), { minLength: 1, maxLength: 4 }).map((p) => `/${p.map(encodeURIComponent).join('/')}`) },
  { weight: 1, arbitrary: fc.constantFrom('/../../etc/passwd', '/%2e%2e/config', '//config', '/config/', '/CONFIG', `/${'a'.repeat(4000)}`, '/restart?schedule=now') },
);
/** Every mutating route: half of the requests hit one of them with its own method. */
const MUTATING: Array<[string, string]> = [
  ['POST', '/switchover'], ['DELETE', '/switchover'], ['POST', '/failover'], ['PATCH', '/config'], ['PUT', '/config'], ['POST', '/restart'],
  ['DELETE', '/restart'], ['POST', '/reload'], ['POST', '/drill'], ['POST', '/reinitialize'], ['POST', '/failsafe'],
];
const method = fc.oneof({ weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') }, { weight: 1, arbitrary: fc.constantFrom('TRACE', 'PROPFIND', 'FOO', 'M-SEARCH') });
const target = fc.oneof(fc.constantFrom(...MUTATING).map(([m, p]) => ({ method: m, path: p })), fc.record({ method, path }));
/** Source addresses (127.1.0.1-64): the lockout counts per address, so the 401 path is exercised too. */
const SOURCES = 64;
const request = fc.record({
  target, query, body, auth: wrongAuth, source: fc.integer({ min: 1, max: SOURCES }),
  contentType: fc.oneof(fc.constant('application/json'), fc.constant(undefined), fc.constantFrom('text/plain', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', '*/*'), fc.string({ maxLength: 30 })),
  extra: fc.dictionary(fc.constantFrom('x-forwarded-for', 'accept', 'connection', 'expect', 'transfer-encoding', 'x-pgha', 'content-encoding'), fc.string({ maxLength: 40 }), { maxKeys: 2 }),
});
type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

/** Raw requests node:http would refuse to send: broken request lines, framing and headers. */
const RAW = [
  'GET / HTTP/1.1\r\n\r\n', 'GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n', 'POST /restart HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'POST /config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 'PATCH /config HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'GET /primary HTTP/9.9\r\nHost: x\r\n\r\n', 'G\u00e9T / HTTP/1.1\r\nHost: x\r\n\r\n', `GET /${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'POST /failsafe HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \u00ff\u00fe\r\nContent-Length: 2\r\n\r\n{}', 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
  `GET / HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(3000)}\r\n`, 'POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"',
  '\r\n\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: x\r\n\r\n',
  // (node:http as a client waits for a tunnel after CONNECT, so it is sent raw only.)
  'CONNECT /config HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}', 'POST /reload HTTP/1.0\r\nContent-Type: application/json\r\n\r\n{}',
];
const raw = fc.oneof(fc.constantFrom(...RAW), fc.string({ maxLength: 200 }).map((s) => `${s}\r\n\r\n`));

const agents = Array.from({ length: SOURCES + 1 }, (_, i) => new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.1.0.${i}` }));

/**
 * The status code, 0 when the server closed or reset the connection, -1 when node:http refused to
 * send it. 15 s of socket silence (beyond the server's 10 s request deadline) counts as closed.
 */
function send(r: Req): Promise<number> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { ...r.extra };
    if (r.contentType !== undefined) headers['content-type'] = r.contentType;
    if (r.auth !== undefined) headers.authorization = r.auth;
    // Framing headers (transfer-encoding, expect, connection ...) can leave a connection unusable
    // for the next request: such requests get a connection of their own.
    const own = Object.keys(r.extra).length > 0;
    let req: http.ClientRequest;
    try {
      const { method: m, path: p } = r.target;
      req = http.request({
        host: '127.0.0.1', port: n1.apiPort, method: m, path: `${p}${r.query}`, headers, timeout: 15_000,
        ...(own ? { agent: false, localAddress: `127.1.0.${r.source}` } : { agent: agents[r.source] }),
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(res.statusCode ?? 0));
      });
    } catch {
      resolve(-1); // an invalid method, path or header value: not sendable over HTTP
      return;
    }
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

function sendRaw(text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(n1.apiPort, '127.0.0.1');
    let got = '';
    s.setTimeout(12_000, () => s.destroy()); // past the server's 10 s request deadline: it should have closed
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
    s.write(text, 'latin1', () => s.end());
  });
}

describe('fuzz (10,000 requests without valid credentials)', () => {
  it('no crash, no undocumented 5xx, the agent keeps its role, etcd unchanged', async () => {
    await primaryUp();
    const before = await etcdState();
    const agentPid = n1.agent?.pid;
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    let count = 0;
    const slow: Array<[number, string]> = [];
    await fc.assert(fc.asyncProperty(request, async (r) => {
      const t0 = performance.now();
      const status = await send(r);
      const took = performance.now() - t0;
      if (took > 1000) slow.push([Math.round(took), `${status} ${JSON.stringify({ ...r, body: r.body?.slice(0, 80) }).slice(0, 300)}`]);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      count++;
      // Documented 5xx: 503 (health checks on this primary, a view not read yet). Nothing else.
      const { method: m, path: p } = r.target;
      if (status >= 500 && status !== 503) bad.push(`${status} ${m} ${p}${r.query}`);
      // 503 is documented for the health checks only (and while the agent closes).
      if (status === 503 && (p === '/config' || p === '/history' || MUTATING.some(([, x]) => x === p))) bad.push(`503 ${m} ${p}`);
      if (count % 1000 === 0) expect(await cluster.probe(n1, '/primary'), `after ${count} requests`).toBe(200);
      return status < 500 || status === 503;
    }), { numRuns: Number(process.env.PGHA_FUZZ_RUNS ?? 9_500), seed: Number(process.env.PGHA_FUZZ_SEED ?? 20261130) });
    const rawAnswers = fc.sample(raw, { numRuns: 500, seed: 7 });
    for (const text of rawAnswers) {
      const got = await sendRaw(text);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(got)?.[1] ?? 0);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status >= 500 && status !== 503) bad.push(`${status} raw ${JSON.stringify(text.slice(0, 60))}`);
    }
    for (const a of agents) a.destroy();
    if (slow.length > 0) console.log('requests slower than 1 s:', slow.slice(0, 10));
    console.log('fuzz statuses', Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])));
    expect(bad).toEqual([]);
    expect(n1.agent?.pid).toBe(agentPid); // the same agent process: it did not crash
    expect(await cluster.probe(n1, '/primary')).toBe(200);
    expect((await cluster.status(n1))?.role).toBe('primary');
    expect(await etcdState()).toEqual(before);
    expect(cluster.logs(n1)).not.toMatch(/"level":"(error|fatal)"|HA loop iteration failed/);
  });

  it('drops a client that sends its headers too slowly, while health checks answer at once', async () => {
    const s = net.connect(n1.apiPort, '127.0.0.1');
    s.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => s.on('close', () => resolve(performance.now())));
    const start = performance.now();
    s.write('GET /primary HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => s.write('X-Slow: 1\r\n'), 500);
    try {
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        expect(await cluster.probe(n1, '/primary')).toBe(200);
        expect(performance.now() - t).toBeLessThan(500);
      }
      // headersTimeout 5 s, checked every second: closed within about 6 s, not Node's 60 s.
      const at = await Promise.race([closed, sleep(15_000).then(() => Infinity)]); // 15 s: long enough to see a miss
      expect(at - start).toBeLessThan(8_000);
    } finally {
      clearInterval(drip);
      s.destroy();
    }
  });
});
