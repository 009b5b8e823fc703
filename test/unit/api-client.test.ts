// The agent's HTTP client (node:http/https, not fetch) against a real HTTPS REST API on loopback:
// the failsafe round confirms over TLS with a client certificate, and fails (no confirmation)
// with a wrong CA, without the certificate the server requires, or past its deadline.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRequest } from '../../src/api/client.ts';
import { registerOpsRoutes, type OpsDeps } from '../../src/api/ops-routes.ts';
import { buildApi } from '../../src/api/server.ts';
import { loadServerTls, type ClientTls } from '../../src/api/tls.ts';
import { failsafeRound } from '../../src/agent/failsafe.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/log/logger.ts';
import { makePki } from '../../lab/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgha-api-client-'));
const pki = makePki(join(dir, 'ca'));
const other = makePki(join(dir, 'other'), 'other-ca');
const server = pki.issue('n2');
const client = pki.issue('n1');
const auth = { username: 'admin', password: 'pw' };
const config = nodeConfigSchema.parse({
  scope: 'demo', name: 'n2',
  restapi: { listen: '127.0.0.1:8008', authentication: auth, certfile: server.cert, keyfile: server.key, cafile: pki.caFile, verify_client: 'required' },
  postgresql: { data_dir: '/var/lib/pgha/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const quiet = createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) });
const unused = () => { throw new Error('not used'); };
const deps = {
  config, dcs: {} as OpsDeps['dcs'], view: () => null, history: () => null, fallback: unused, isLeader: () => false, restart: unused, reload: unused, reinitialize: unused, drill: unused,
  failsafe: (leader: string) => ({ ok: true as const, hold: { leader, until: 1 } }),
} satisfies OpsDeps;
const app = buildApi({
  logger: quiet, scope: 'demo', snapshot: () => null, now: () => 0, staleAfterMs: () => 3000,
  routes: (a) => registerOpsRoutes(a, deps), https: loadServerTls(config, 'n2.yml'),
});
let url = '';
const tlsOf = (ca: string, leaf?: { cert: string; key: string }): ClientTls => ({
  ca: readFileSync(ca), rejectUnauthorized: true, ...(leaf === undefined ? {} : { cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) }),
});

beforeAll(async () => {
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const round = (tls: ClientTls | undefined, members: Record<string, string> = { n1: 'https://x', n2: url }) =>
  failsafeRound({ self: 'n1', record: { leader: 'n1', members }, auth, tls, timeoutMs: 2000, ttl: 2, now: () => 0 });

describe('the failsafe round over HTTPS', () => {
  it('serves https:// and confirms a leader that presents a certificate the CA signed', async () => {
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await round(tlsOf(pki.caFile, client))).toEqual({ sentAt: 0, asked: ['n2'], confirmed: ['n2'], why: {} });
  });

  it.each([
    ['no client certificate (verify_client: required)', tlsOf(pki.caFile)],
    ['a server certificate from a CA it does not trust', tlsOf(other.caFile, client)],
    ['a client certificate from another CA', tlsOf(pki.caFile, other.issue('intruder'))],
    ['no TLS settings at all (system CAs)', undefined],
  ])('is not confirmed with %s, and says why', async (_, tls) => {
    const r = await round(tls);
    expect(r.confirmed).toEqual([]);
    expect(r.why.n2).toMatch(/certificate|socket hang up|ECONNRESET|alert/i);
  });
});

describe('apiRequest', () => {
  it('answers with any HTTP status and the body', async () => {
    const r = await apiRequest(`${url}/failsafe`, { body: { leader: 'n1' }, tls: tlsOf(pki.caFile, client), timeoutMs: 2000 });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.text)).toMatchObject({ error: 'PGHA_API_UNAUTHORIZED' });
  });

  it('rejects at its deadline when the server does not answer', async () => {
    const silent = createServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const t0 = performance.now();
    await expect(apiRequest(`http://127.0.0.1:${port}/status`, { timeoutMs: 300 })).rejects.toThrow();
    expect(performance.now() - t0).toBeLessThan(2000);
    silent.closeAllConnections();
    silent.close();
  });
});
