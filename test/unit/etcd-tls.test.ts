// The etcd TLS/auth settings: the schema's rules (cert with key, TLS files need https, hosts with
// a scheme), the file checks loadConfig makes, certificate dates, and how a failed first call is
// told apart (fatal misconfiguration vs. an etcd that is merely unreachable).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, GRPCUnavailableError } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { checkCertificateDates, explainEtcdFailure, readEtcdCredentials, type EtcdTlsContext } from '../../src/dcs/etcd-tls.ts';
import { PgHaError } from '../../src/errors.ts';
import { makePki } from '../../lab/tls.ts';

const FILE = '/etc/pgha/node1.yml';
const minimal = `
scope: demo
name: node1
restapi:
  connect_address: 10.0.0.11:8008
postgresql:
  connect_address: 10.0.0.11:5432
  data_dir: /var/lib/pgha/data
  authentication:
    superuser: {username: postgres, password: s3cret-su}
    replication: {username: replicator, password: s3cret-repl}
`;
const dir = mkdtempSync(join(tmpdir(), 'pgha-etcd-tls-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pki = makePki(join(dir, 'pki'));
const client = pki.issue('client');
const other = pki.issue('other');
const expired = pki.issue('expired', { expired: true });

function errorOf(run: () => unknown): PgHaError {
  try { run(); } catch (err) { if (err instanceof PgHaError) return err; throw err; }
  throw new Error('expected an error');
}
const etcdYaml = (lines: string) => `${minimal}etcd:\n${lines.split('\n').map((l) => `  ${l}`).join('\n')}\n`;

describe('etcd section of the schema', () => {
  it('takes the protocol from https:// hosts and strips the scheme', () => {
    const e = parseConfig(etcdYaml('hosts: [https://10.0.0.1:2379, https://10.0.0.2:2379]'), FILE).etcd;
    expect(e).toMatchObject({ protocol: 'https', hosts: ['10.0.0.1:2379', '10.0.0.2:2379'] });
  });

  it('defaults to http, and keeps an explicit protocol', () => {
    expect(parseConfig(minimal, FILE).etcd.protocol).toBe('http');
    expect(parseConfig(etcdYaml('protocol: https\nhosts: 10.0.0.1:2379'), FILE).etcd).toMatchObject({ protocol: 'https', hosts: ['10.0.0.1:2379'] });
  });

  it.each([
    ['TLS files with http', 'cacert: /x/ca.crt', 'etcd.cacert: is set but etcd.protocol is http'],
    ['a client key with http:// hosts', 'hosts: http://a:1\ncert: /x/c.crt\nkey: /x/c.key', 'etcd.key: is set but etcd.protocol is http'],
    ['a cert without a key', 'protocol: https\ncert: /x/c.crt', 'etcd.key: cert and key go together'],
    ['a key without a cert', 'protocol: https\nkey: /x/c.key', 'etcd.cert: cert and key go together'],
    ['mixed schemes', 'hosts: [https://a:1, http://b:2]', 'etcd.hosts: hosts mix http:// and https://'],
    ['a protocol the hosts contradict', 'protocol: http\nhosts: https://a:1', 'etcd.protocol: is http but the hosts say https://'],
    ['a relative cacert', 'protocol: https\ncacert: ca.crt', 'etcd.cacert: an absolute path'],
    ['a password without a username', 'password: x', 'etcd.password: username and password go together'],
  ])('refuses %s, naming the file and the field', (_, lines, message) => {
    const err = errorOf(() => parseConfig(etcdYaml(lines), FILE));
    expect(err.code).toBe('PGHA_CONFIG_INVALID');
    expect(err.message.split('\n')).toContainEqual(expect.stringContaining(`${FILE}: ${message}`));
  });
});

describe('loadConfig checks the etcd TLS files', () => {
  const write = (name: string, lines: string) => {
    const p = join(dir, name);
    writeFileSync(p, etcdYaml(`protocol: https\n${lines}`));
    return p;
  };

  it('accepts readable PEM files whose key matches the certificate', async () => {
    const p = write('good.yml', `cacert: ${pki.caFile}\ncert: ${client.cert}\nkey: ${client.key}`);
    expect((await loadConfig(p)).etcd).toMatchObject({ protocol: 'https', cacert: pki.caFile, cert: client.cert, key: client.key });
  });

  it.each([
    ['a missing CA file', () => `cacert: ${join(dir, 'nope.crt')}`, () => `etcd.cacert: cannot read ${join(dir, 'nope.crt')}: ENOENT`],
    ['a CA file that is no certificate', () => `cacert: ${client.key}`, () => `etcd.cacert: ${client.key} is not a PEM certificate`],
    ['a key that is no key', () => `cert: ${client.cert}\nkey: ${pki.caFile}`, () => `etcd.key: ${pki.caFile} is not an unencrypted PEM private key`],
    ['the key of another certificate', () => `cert: ${client.cert}\nkey: ${other.key}`, () => `etcd.key: ${other.key} is not the key of the certificate ${client.cert}`],
  ])('refuses %s, naming the file and the field', async (name, lines, message) => {
    const p = write(`${name.replaceAll(' ', '-')}.yml`, lines());
    const err = await loadConfig(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgHaError);
    expect(err).toMatchObject({ code: 'PGHA_CONFIG_INVALID' });
    expect((err as Error).message).toContain(`${p}: ${message()}`);
  });
});

describe('certificate dates', () => {
  const ctx: EtcdTlsContext = { source: FILE, protocol: 'https', cacert: pki.caFile, cert: expired.cert, key: expired.key };
  it('refuses an expired client certificate before connecting, naming etcd.cert and the file', () => {
    const creds = readEtcdCredentials(ctx, FILE);
    const err = errorOf(() => checkCertificateDates(ctx, creds));
    expect(err.code).toBe('PGHA_DCS_TLS');
    expect(err.message).toMatch(new RegExp(`^${FILE}: etcd.cert: the certificate in ${expired.cert} expired on `));
  });
  it('accepts a valid one', () => {
    const ok = { ...ctx, cert: client.cert, key: client.key };
    expect(() => checkCertificateDates(ok, readEtcdCredentials(ok, FILE))).not.toThrow();
  });
});

describe('explainEtcdFailure', () => {
  const ctx: EtcdTlsContext = { source: FILE, protocol: 'https', cacert: '/x/ca.crt', cert: '/x/c.crt', key: '/x/c.key', username: 'pgha' };
  const unavailable = (last: string) => new GRPCUnavailableError(`14 UNAVAILABLE: No connection established. Last error: ${last}. Resolution note: `);
  // Port 1 on loopback: nothing listens, so the plain-HTTP and TLS probes fail at once.
  const host = '127.0.0.1:1';

  it.each([
    ['a wrong CA', unavailable('Error: unable to verify the first certificate'), ctx, 'PGHA_DCS_TLS', 'etcd.cacert: the server certificate of etcd at 127.0.0.1:1 is not signed by etcd.cacert (/x/ca.crt)'],
    ['a refused client certificate', unavailable('error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate'), ctx, 'PGHA_DCS_TLS', 'etcd.cert: etcd at 127.0.0.1:1 refused the client certificate /x/c.crt'],
    ['no client certificate where one is required', unavailable('ssl/tls alert bad certificate'), { ...ctx, cert: undefined, key: undefined }, 'PGHA_DCS_TLS', 'etcd.cert: etcd at 127.0.0.1:1 requires a client certificate'],
    ['an expired server certificate', unavailable('Error: certificate has expired'), ctx, 'PGHA_DCS_TLS', 'etcd.hosts: the server certificate of etcd at 127.0.0.1:1 has expired'],
    ['a bad password', new EtcdAuthenticationFailedError('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'), ctx, 'PGHA_DCS_AUTH', 'etcd.username/etcd.password: etcd at 127.0.0.1:1 refused the credentials of user "pgha"'],
    ['a user name against an etcd without auth', new Error('9 FAILED_PRECONDITION: etcdserver: authentication is not enabled'), ctx, 'PGHA_DCS_AUTH', 'etcd.username is set but authentication is not enabled'],
    ['no user name against an etcd with auth', new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied'), { ...ctx, username: undefined }, 'PGHA_DCS_AUTH', 'etcd.username: etcd at 127.0.0.1:1 denied access: no etcd.username is set'],
  ])('makes %s fatal, naming the setting and the file', async (_, err, c, code, message) => {
    const e = await explainEtcdFailure(err, c, host, 200);
    expect(e).toMatchObject({ code });
    expect(e?.message.startsWith(`${FILE}: ${message}`)).toBe(true);
  });

  it.each([
    ['a refused connection', unavailable('Error: connect ECONNREFUSED 127.0.0.1:1')],
    ['a deadline', new Error('4 DEADLINE_EXCEEDED: Deadline exceeded')],
    // A dropped handshake where no plain-HTTP etcd answers either: a flaky network, retried.
    ['a dropped TLS handshake with no plain-HTTP answer', unavailable('Error: Client network socket disconnected before secure TLS connection was established')],
  ])('leaves %s to the retrying loop', async (_, err) => {
    expect(await explainEtcdFailure(err, ctx, host, 200)).toBeNull();
  });

  it('probes a https-configured host that drops the TLS handshake: a plain-HTTP answer is fatal (etcd.protocol)', async () => {
    const srv = createHttpServer((_, res) => res.end('{"etcdserver":"3.4.23"}'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const h = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      // A fractional budget, as checkAccess computes it from the monotonic clock.
      const e = await explainEtcdFailure(unavailable('Error: Client network socket disconnected before secure TLS connection was established'), ctx, h, 200.7);
      expect(e).toMatchObject({ code: 'PGHA_DCS_TLS', message: `${FILE}: etcd.protocol: is https but etcd at ${h} serves plain HTTP (no TLS): set protocol: http or give etcd --cert-file/--key-file` });
    } finally {
      srv.close();
    }
  });

  it('probes a http-configured host that fails to connect: a TLS handshake is fatal (etcd.protocol)', async () => {
    const srv = createTlsServer({ cert: readFileSync(client.cert), key: readFileSync(client.key) }, (s) => s.end());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const h = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const e = await explainEtcdFailure(unavailable('Failed to connect'), { source: FILE, protocol: 'http' }, h, 500.2);
      expect(e).toMatchObject({ code: 'PGHA_DCS_TLS', message: `${FILE}: etcd.protocol: is http but etcd at ${h} speaks TLS: set protocol: https and etcd.cacert (and etcd.cert/etcd.key)` });
    } finally {
      srv.close();
    }
  });
});

describe('pghactl --etcd-cacert/--etcd-cert/--etcd-key', () => {
  const pghactl = (args: string[]) => new Promise<{ code: number; stderr: string }>((resolve) => {
    // 20 s: Node's start with the TypeScript stripper on a busy 2-core machine.
    execFile(process.execPath, [new URL('../../bin/pghactl.js', import.meta.url).pathname, ...args], { timeout: 20_000 }, (err, _out, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stderr });
    });
  });

  it('refuses a certificate without its key as a usage error naming the flag\'s field', async () => {
    const r = await pghactl(['--etcd', '127.0.0.1:1', '--scope', 'x', '--etcd-cert', client.cert, 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('PGHA_CLI_USAGE: pghactl --etcd* options: etcd.key: cert and key go together');
  });

  it('refuses an unreadable CA file, naming it', async () => {
    const r = await pghactl(['--etcd', '127.0.0.1:1', '--scope', 'x', '--etcd-cacert', join(dir, 'nope.crt'), 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`PGHA_CONFIG_INVALID: pghactl --etcd* options: etcd.cacert: cannot read ${join(dir, 'nope.crt')}: ENOENT`);
  });
}, 60_000);
