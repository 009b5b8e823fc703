// TLS on the PostgreSQL side (issue 10) and the addresses taken from other members' keys
// (finding 8): the server settings and pg_hba, the libpq settings of every connection to another
// member, the passfile scoped to the one host connected to, the key-file rules checked at
// start-up, and member keys whose addresses would change what a connection string means.
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeConfigSchema, type NodeConfigInput } from '../../src/config/schema.ts';
import { checkTlsFiles, keyFileProblem } from '../../src/config/tls-files.ts';
import { decode, memberInfoSchema } from '../../src/dcs/codec.ts';
import { defaultHba, peerConninfo, peerPgpass, renderPghaConf, renderPgpass, sslParameters } from '../../src/postgres/conf.ts';

const base = { port: 5611, listenHost: '127.0.0.1', socketDir: '/run/pg' };
const node = (pg: Record<string, unknown> = {}, auth: Record<string, unknown> = {}): NodeConfigInput => ({
  scope: 's', name: 'n1', restapi: { listen: '127.0.0.1:8008' },
  postgresql: {
    data_dir: '/var/lib/pgha/d',
    authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b', ...auth } },
    ...pg,
  },
} as NodeConfigInput);

describe('server TLS (postgresql.ssl)', () => {
  it('turns ssl on with the files, over any user parameter', () => {
    const ssl = { cert_file: '/tls/n1.crt', key_file: '/tls/n1.key', ca_file: '/tls/ca.crt' };
    const text = renderPghaConf({ ...base, standby: null, parameters: [{ ssl: 'off', ssl_cert_file: '/x' }, sslParameters(ssl)] });
    expect(text).toContain("\nssl = 'on'\n");
    expect(text).toContain("\nssl_cert_file = '/tls/n1.crt'\n");
    expect(text).toContain("\nssl_key_file = '/tls/n1.key'\n");
    expect(text).toContain("\nssl_ca_file = '/tls/ca.crt'\n");
    expect(text).not.toContain('ssl_crl_file');
    expect(sslParameters(undefined)).toEqual({});
  });

  it('makes the remote lines of the default pg_hba hostssl', () => {
    const hba = defaultHba({ superuser: 'postgres', replication: 'replicator', rewind: 'rewinder', ssl: true });
    expect(hba).toContain('hostssl replication replicator all scram-sha-256');
    expect(hba).toContain('hostssl all rewinder all scram-sha-256');
    expect(hba.filter((l) => l.startsWith('host '))).toEqual([
      'host all postgres 127.0.0.1/32 scram-sha-256', 'host all postgres ::1/128 scram-sha-256',
    ]);
  });
});

describe('connections to other members', () => {
  const tls = { sslmode: 'verify-full', sslrootcert: '/tls/ca.crt', sslcert: '/tls/r.crt', sslkey: '/tls/r.key', channel_binding: 'require' };

  it('carry the role\'s TLS settings in primary_conninfo', () => {
    const text = renderPghaConf({
      ...base, parameters: [],
      standby: { host: '10.0.0.1', port: 5432, user: 'replicator', passfile: '/p', applicationName: 'n2', slot: null, upstreamName: 'n1', tls },
    });
    const info = /^primary_conninfo = '(.*)'$/m.exec(text)?.[1] ?? '';
    expect(info).toContain('sslmode=verify-full sslrootcert=/tls/ca.crt sslcert=/tls/r.crt sslkey=/tls/r.key channel_binding=require');
  });

  it('build one connection string for pg_basebackup, pg_rewind and psql', () => {
    expect(peerConninfo('db1.example', 5432, 'rewinder', { sslmode: 'require' }, [['dbname', 'postgres']]))
      .toBe('host=db1.example port=5432 user=rewinder sslmode=require dbname=postgres');
    expect(peerConninfo('10.0.0.1', 5432, 'r', {})).toBe('host=10.0.0.1 port=5432 user=r');
  });

  it('find passwords only for the host and port connected to', () => {
    const roles = [{ username: 'replicator', password: 'b' }, { username: 'rewinder', password: 'c' }];
    const text = renderPgpass(peerPgpass({ host: '10.0.0.1', port: 5433 }, roles));
    expect(text).toBe('10.0.0.1:5433:*:replicator:b\n10.0.0.1:5433:*:rewinder:c\n');
    expect(renderPgpass(peerPgpass(null, roles))).toBe('');
  });
});

describe('TLS settings in the node configuration', () => {
  const issues = (input: NodeConfigInput) => {
    const r = nodeConfigSchema.safeParse(input);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('accept Patroni\'s per-role keys and postgresql.ssl', () => {
    expect(issues(node({ ssl: { cert_file: '/a.crt', key_file: '/a.key' } }, { sslmode: 'verify-full', sslrootcert: '/ca.crt', channel_binding: 'require' }))).toEqual([]);
  });

  it('refuse verify-full without a CA, a certificate without its key, channel binding without TLS', () => {
    expect(issues(node({}, { sslmode: 'verify-full' }))).toEqual([expect.stringMatching(/^postgresql\.authentication\.replication\.sslrootcert: sslmode verify-full needs sslrootcert/)]);
    expect(issues(node({}, { sslcert: '/c.crt' }))).toEqual([expect.stringMatching(/sslkey: sslcert and sslkey go together/)]);
    expect(issues(node({}, { sslmode: 'disable', channel_binding: 'require' }))).toEqual([expect.stringMatching(/channel_binding: channel_binding require needs TLS/)]);
    expect(issues(node({}, { sslmode: 'verify-everything' }))).toHaveLength(1);
  });

  it('refuse a published address other members would refuse', () => {
    expect(issues(node({ listen: '*:5432' }))).toEqual(expect.arrayContaining([expect.stringMatching(/^postgresql\.listen: .*set postgresql\.connect_address/)]));
    expect(issues(node({ listen: '*:5432', connect_address: 'db1.example:5432' }))).toEqual([]);
  });
});

describe('key files (PostgreSQL\'s and libpq\'s rules)', () => {
  it('accept 0600 owned by the server user and 0640 owned by root, nothing looser', () => {
    expect(keyFileProblem(0o100600, 100, 100, true)).toBeNull();
    expect(keyFileProblem(0o100400, 100, 100, true)).toBeNull();
    expect(keyFileProblem(0o100640, 0, 100, true)).toBeNull();
    expect(keyFileProblem(0o100640, 100, 100, true)).toMatch(/is mode 0640 owned by uid 100: .* must be mode 0600 or stricter/);
    expect(keyFileProblem(0o100644, 0, 100, true)).toMatch(/owned by root must be mode 0640/);
    expect(keyFileProblem(0o100600, 200, 100, true)).toMatch(/must be owned by the server's user \(uid 100\)/);
    expect(keyFileProblem(0o040700, 100, 100, false)).toBe('is not a regular file');
  });

  const dir = mkdtempSync(join(tmpdir(), 'pgha-tlsfiles-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // As root, play a server user 4242 (PostgreSQL never runs as root); otherwise be it.
  const uid = process.getuid?.() === 0 ? 4242 : (process.getuid?.() ?? 4242);
  const file = (name: string, mode: number) => {
    const f = join(dir, name);
    writeFileSync(f, 'x');
    chmodSync(f, mode);
    if (process.getuid?.() === 0) chownSync(f, uid, uid);
    return f;
  };

  it('name the field and the file of every problem at start-up', () => {
    const good = file('good.key', 0o600);
    const loose = file('loose.key', 0o644);
    const cert = file('n1.crt', 0o644);
    const c = nodeConfigSchema.parse(node(
      { ssl: { cert_file: cert, key_file: loose, ca_file: join(dir, 'missing.crt') } },
      { sslmode: 'verify-full', sslrootcert: cert, sslcert: cert, sslkey: good },
    ));
    let err: unknown;
    try { checkTlsFiles(c, '/etc/pgha/pgha.yml', uid); } catch (e) { err = e; }
    expect(err).toMatchObject({ code: 'PGHA_CONFIG_INVALID' });
    expect((err as Error).message.split('\n')).toEqual([
      `/etc/pgha/pgha.yml: postgresql.ssl.key_file: ${loose}: is mode 0644 owned by uid ${uid}: a key owned by the server's user (uid ${uid}) must be mode 0600 or stricter`,
      `/etc/pgha/pgha.yml: postgresql.ssl.ca_file: ${join(dir, 'missing.crt')}: cannot read: ENOENT`,
    ]);
    expect(() => checkTlsFiles(nodeConfigSchema.parse(node({ ssl: { cert_file: cert, key_file: good } })), 'x', uid)).not.toThrow();
  });
});

describe('addresses in member keys (finding 8)', () => {
  const member = (over: Record<string, unknown>) => JSON.stringify({
    name: 'n2', role: 'standby', state: 'streaming', timeline: 1, lsn: 1, apiUrl: 'http://10.0.0.2:8008', conn: '10.0.0.2:5432',
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, failover_priority: 1 }, upstream: 'n1', pendingRestart: false,
    ...over,
  });

  it.each(['10.0.0.2:5432', 'db-2.example.com:5432', 'localhost:5433'])('accepts conn %s', (conn) => {
    expect(decode(memberInfoSchema, member({ conn })).ok).toBe(true);
  });

  it.each([
    '/var/run/postgresql:5432', // a Unix socket: the replication password to a local server
    'evil host:5432', "h'x:5432", 'host=evil:5432', 'db1 sslmode=disable:5432', '10.0.0.2:0', '10.0.0.2:99999',
    '10.1:5432', '-x:5432', 'x..y:5432', '10.0.0.2', '',
  ])('refuses conn %j', (conn) => {
    expect(decode(memberInfoSchema, member({ conn })).ok).toBe(false);
  });

  it.each([
    'http://u:p@10.0.0.2:8008', 'http://10.0.0.2:8008/x', 'ftp://10.0.0.2:8008', 'http://10.0.0.2', 'http://ev il:8008', 'http://10.0.0.2:8008?a',
  ])('refuses apiUrl %j', (apiUrl) => {
    expect(decode(memberInfoSchema, member({ apiUrl })).ok).toBe(false);
  });

  it('refuses a name that is not a member name', () => {
    expect(decode(memberInfoSchema, member({ name: 'n2 x' })).ok).toBe(false);
    expect(decode(memberInfoSchema, member({ apiUrl: 'https://db-2.example.com:8008' })).ok).toBe(true);
  });
});
