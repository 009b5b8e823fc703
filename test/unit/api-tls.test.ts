// REST API TLS and access control, the pure parts: the restapi/ctl config rules, allowlist
// entries and the CIDR matcher, the guard on the mutating endpoints (through fastify's inject,
// which sets the client address), and certificate files named in their errors.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Allowlist, accessGuard, addressAllowed, normalizeAddress, urlHost } from '../../src/api/access.ts';
import { registerOpsRoutes, type OpsDeps } from '../../src/api/ops-routes.ts';
import { buildApi } from '../../src/api/server.ts';
import { loadClientTls, loadServerTls } from '../../src/api/tls.ts';
import { parseConfig } from '../../src/config/load.ts';
import { nodeConfigSchema, parseAllowlistEntry, restApiUrl, type AllowlistEntry } from '../../src/config/schema.ts';
import { createLogger } from '../../src/log/logger.ts';

const base = {
  scope: 'demo', name: 'n2',
  postgresql: { data_dir: '/var/lib/pgha/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
};
const cfg = (restapi: Record<string, unknown>, ctl?: Record<string, unknown>) =>
  nodeConfigSchema.parse({ ...base, restapi: { connect_address: '10.0.0.2:8008', ...restapi }, ...(ctl === undefined ? {} : { ctl }) });
const problems = (restapi: Record<string, unknown>, ctl?: Record<string, unknown>) => {
  try {
    parseConfig(JSON.stringify({ ...base, restapi: { connect_address: '10.0.0.2:8008', ...restapi }, ...(ctl === undefined ? {} : { ctl }) }), 'n2.yml');
    return '';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('restapi and ctl TLS settings', () => {
  it('accepts a full HTTPS setup and publishes an https:// URL', () => {
    const c = cfg({ listen: '10.0.0.2:8008', certfile: '/t/n2.crt', keyfile: '/t/n2.key', cafile: '/t/ca.crt', verify_client: 'required', allowlist: ['10.0.0.0/24', 'db1.example', '::1'] });
    expect(restApiUrl(c)).toBe('https://10.0.0.2:8008');
    expect(restApiUrl(cfg({ listen: '10.0.0.2:8008' }))).toBe('http://10.0.0.2:8008');
  });

  it.each([
    [{ certfile: '/t/a.crt' }, undefined, 'n2.yml: restapi.keyfile: certfile and keyfile go together'],
    [{ keyfile: '/t/a.key' }, undefined, 'n2.yml: restapi.certfile: certfile and keyfile go together'],
    [{ certfile: '/t/a.crt', keyfile: '/t/a.key', verify_client: 'optional' }, undefined, 'n2.yml: restapi.verify_client: verify_client: optional needs certfile, keyfile and cafile'],
    [{ cafile: '/t/ca.crt', verify_client: 'required' }, undefined, 'n2.yml: restapi.verify_client: verify_client: required needs certfile'],
    [{ verify_client: 'sometimes' }, undefined, 'n2.yml: restapi.verify_client:'],
    [{ certfile: 'relative.crt', keyfile: '/t/a.key' }, undefined, 'n2.yml: restapi.certfile: an absolute path'],
    [{ allowlist: ['10.0.0.0/33'] }, undefined, 'n2.yml: restapi.allowlist[0]: an IP address, a CIDR network'],
    [{ allowlist: ['10.0.0.300'] }, undefined, 'n2.yml: restapi.allowlist[0]:'],
    [{ allowlist: ['a b'] }, undefined, 'n2.yml: restapi.allowlist[0]:'],
    [{}, { certfile: '/t/admin.crt' }, 'n2.yml: ctl.keyfile: certfile and keyfile go together'],
    [{}, { insecure: 'yes' }, 'n2.yml: ctl.insecure:'],
    [{}, { password: 'x' }, 'n2.yml: ctl.password: unknown key'],
  ])('refuses %j / ctl %j', (restapi, ctl, message) => {
    expect(problems(restapi, ctl)).toContain(message);
  });

  it('reads certificate files at start, naming the config file and the field', () => {
    const c = cfg({ certfile: '/nonexistent/n2.crt', keyfile: '/nonexistent/n2.key' });
    expect(() => loadServerTls(c, '/etc/pgha/pgha.yml')).toThrow('/etc/pgha/pgha.yml: restapi.certfile: cannot read /nonexistent/n2.crt: ENOENT');
    expect(loadServerTls(cfg({}), 'x')).toBeNull();
    // ctl falls back to restapi, field by field; ctl wins where it is set.
    expect(() => loadClientTls(cfg({ cafile: '/nonexistent/ca.crt' }), 'p.yml')).toThrow('p.yml: restapi.cafile: cannot read');
    expect(() => loadClientTls(cfg({ cafile: '/nonexistent/ca.crt' }, { cacert: '/nonexistent/ctl-ca.crt' }), 'p.yml')).toThrow('p.yml: ctl.cacert: cannot read /nonexistent/ctl-ca.crt');
  });

  it('honours ctl.insecure only for the caller that allows it (pghactl)', () => {
    const c = cfg({}, { insecure: true });
    expect(loadClientTls(c, 'p.yml').rejectUnauthorized).toBe(true);
    expect(loadClientTls(c, 'p.yml', true).rejectUnauthorized).toBe(false);
  });
});

describe('allowlist entries and the CIDR matcher', () => {
  const nets = (...e: string[]) => e.map(parseAllowlistEntry).filter((x): x is Extract<AllowlistEntry, { kind: 'net' }> => x?.kind === 'net');

  it('parses addresses, networks and host names', () => {
    expect(parseAllowlistEntry('10.0.0.0/24')).toEqual({ kind: 'net', address: '10.0.0.0', prefix: 24, family: 'ipv4' });
    expect(parseAllowlistEntry('10.0.0.7')).toEqual({ kind: 'net', address: '10.0.0.7', prefix: 32, family: 'ipv4' });
    expect(parseAllowlistEntry('fd00::/8')).toEqual({ kind: 'net', address: 'fd00::', prefix: 8, family: 'ipv6' });
    expect(parseAllowlistEntry('DB1.example')).toEqual({ kind: 'host', name: 'db1.example' });
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', '1.2.3.4/8/9', 'fd00::/129', 'db1/24', '10.0.0.300', '-x', '']) expect(parseAllowlistEntry(bad)).toBeNull();
  });

  it.each([
    ['10.0.0.77', ['10.0.0.0/24'], true],
    ['10.0.1.77', ['10.0.0.0/24'], false],
    ['::ffff:10.0.0.77', ['10.0.0.0/24'], true],
    ['127.0.0.1', ['127.0.0.1'], true],
    ['127.0.0.2', ['127.0.0.1'], false],
    ['127.0.0.2', ['127.0.0.0/8'], true],
    ['fd00::5', ['fd00::/8'], true],
    ['fe80::5', ['fd00::/8'], false],
    ['10.0.0.1', ['0.0.0.0/0'], true],
    ['not-an-address', ['0.0.0.0/0'], false],
    ['10.0.0.1', [], false],
  ] as const)('%s in %j: %s', (addr, list, want) => {
    expect(addressAllowed(addr, nets(...list))).toBe(want);
  });

  it('resolves host names (localhost from /etc/hosts) and member API URLs', async () => {
    expect(await new Allowlist(['localhost'], null).allows('127.0.0.1')).toBe(true);
    expect(await new Allowlist(['localhost'], null).allows('10.0.0.1')).toBe(false);
    expect(await new Allowlist([], () => ['https://localhost:8008', 'https://10.0.0.12:8008']).allows('127.0.0.1')).toBe(true);
    expect(await new Allowlist([], () => ['https://10.0.0.12:8008']).allows('::ffff:10.0.0.12')).toBe(true);
    expect(await new Allowlist(['no-such-host.invalid'], null).allows('127.0.0.1')).toBe(false);
  });

  it('normalizes IPv4-mapped addresses and reads hosts of API URLs', () => {
    expect(normalizeAddress('::FFFF:1.2.3.4')).toBe('1.2.3.4');
    expect(normalizeAddress('::1')).toBe('::1');
    expect(urlHost('https://10.0.0.11:8008')).toBe('10.0.0.11');
    expect(urlHost('http://[fd00::1]:8008')).toBe('fd00::1');
    expect(urlHost('nonsense')).toBeNull();
  });
});

describe('the guard on the mutating endpoints', () => {
  const quiet = createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) });
  function api(restapi: Record<string, unknown>, members: string[] = []) {
    const config = cfg({ ...restapi, authentication: { username: 'admin', password: 'pw' } });
    const unused = () => { throw new Error('not used'); };
    const deps = {
      config, dcs: {} as OpsDeps['dcs'], view: () => null, history: () => null, fallback: unused, isLeader: () => false, restart: unused, reload: unused, reinitialize: unused, drill: unused,
      failsafe: () => ({ ok: true, hold: { leader: 'n1', until: 1 } }),
    } satisfies OpsDeps;
    return buildApi({
      logger: quiet, scope: 'demo', snapshot: () => null, now: () => 0, staleAfterMs: () => 3000,
      routes: (a) => registerOpsRoutes(a, deps), access: accessGuard(config.restapi, () => members),
    });
  }
  const failsafe = (from: string, auth = true) => ({
    method: 'POST' as const, url: '/failsafe', remoteAddress: from, payload: JSON.stringify({ leader: 'n1' }),
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Basic ${Buffer.from('admin:pw').toString('base64')}` } : {}) },
  });

  it('is absent when nothing is configured', () => {
    expect(accessGuard(cfg({}).restapi, () => [])).toBeNull();
  });

  it('refuses a mutating call from outside the allowlist with 403, before basic auth', async () => {
    const app = api({ allowlist: ['10.0.0.0/24'] });
    expect((await app.inject(failsafe('10.0.0.9'))).statusCode).toBe(200);
    const r = await app.inject(failsafe('192.168.1.9', false));
    expect(r.statusCode).toBe(403);
    expect(r.json()).toEqual({ error: 'PGHA_API_FORBIDDEN', message: '192.168.1.9 is not in restapi.allowlist' });
    expect((await app.inject(failsafe('10.0.0.9', false))).statusCode).toBe(401);
  });

  it('leaves health checks and other GETs open to every address', async () => {
    const app = api({ allowlist: ['10.0.0.0/24'] });
    expect((await app.inject({ method: 'GET', url: '/primary', remoteAddress: '192.168.1.9' })).statusCode).toBe(503);
    expect((await app.inject({ method: 'GET', url: '/status', remoteAddress: '192.168.1.9' })).statusCode).toBe(200);
  });

  it('with allowlist_include_members, allows the hosts of the members\' API URLs and nobody else', async () => {
    const app = api({ allowlist_include_members: true }, ['https://10.0.0.11:8008', 'https://10.0.0.12:8008']);
    expect((await app.inject(failsafe('10.0.0.12'))).statusCode).toBe(200);
    expect((await app.inject(failsafe('10.0.0.13'))).statusCode).toBe(403);
  });

  it('with verify_client: optional, refuses a mutating call without a verified client certificate', async () => {
    // inject has no TLS socket: req.socket.authorized is undefined, as for a client without a certificate.
    const app = api({ certfile: '/t/a.crt', keyfile: '/t/a.key', cafile: '/t/ca.crt', verify_client: 'optional' });
    const r = await app.inject(failsafe('127.0.0.1'));
    expect(r.statusCode).toBe(403);
    expect(r.json().message).toMatch(/client certificate/);
    expect((await app.inject({ method: 'GET', url: '/status' })).statusCode).toBe(200);
  });
});
