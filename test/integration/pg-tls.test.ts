// PostgreSQL over TLS (issue 10): three members with ssl = on and certificates from a CA made at
// test time, hostssl-only pg_hba lines for the replication and rewind roles (the replication role
// also shows a client certificate), and every connection between members with
// sslmode=verify-full (the certificates name IP:127.0.0.1) and channel_binding=require. Proves
// that the clones (pg_basebackup), the WAL streams, a failover and the rewind of the old primary
// all run over TLS; that channel_binding=require and verify-full refuse what they should; and
// finding 8: the passfile names only the upstream, and a member key with a bad address is ignored.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerConninfo } from '../../src/postgres/conf.ts';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { PASSWORDS, REPO, waitFor } from '../../lab/util.ts';
import { makePki, privateCopy } from '../../lab/tls.ts';

const run = promisify(execFile);
const PSQL = '/usr/lib/postgresql/15/bin/psql';
const PLAIN_PW = 'plain-role-pw';
const TTL_S = 3;

const pgUser = lookupOsUser('postgres');
const pkiDir = mkdtempSync(join(tmpdir(), 'pgha-pgtls-pki-'));
chmodSync(pkiDir, 0o755);
const pki = makePki(pkiDir);
const replicatorCert = pki.issue('replicator', { sans: ['DNS:replicator'] });
const replicatorKey = privateCopy(replicatorCert.key, join(pkiDir, 'replicator.private.key'), pgUser.uid, pgUser.gid);
const peerTls = { sslmode: 'verify-full', sslrootcert: pki.caFile, channel_binding: 'require' };

const cluster = new TestCluster({
  ttl: TTL_S,
  configure: (i, cfg) => {
    // Only IP:127.0.0.1 in the SAN: the address in every member's connect address.
    const leaf = pki.issue(`node${i}`, { sans: ['IP:127.0.0.1'] });
    cfg.postgresql.ssl = {
      cert_file: leaf.cert, ca_file: pki.caFile,
      key_file: privateCopy(leaf.key, join(pkiDir, `node${i}.private.key`), pgUser.uid, pgUser.gid),
    };
    Object.assign(cfg.postgresql.authentication.replication, peerTls, { sslcert: replicatorCert.cert, sslkey: replicatorKey });
    Object.assign(cfg.postgresql.authentication.rewind, peerTls);
    cfg.postgresql.parameters = { log_connections: 'on' };
    cfg.bootstrap.users = { plainpw: { password: PLAIN_PW } };
    cfg.bootstrap.pg_hba = [
      'local all postgres scram-sha-256',
      'host all postgres 127.0.0.1/32 scram-sha-256', // the test's own client, without TLS
      'hostssl replication replicator 127.0.0.1/32 scram-sha-256 clientcert=verify-ca',
      'hostssl all rewinder 127.0.0.1/32 scram-sha-256',
      'hostssl all plainpw 127.0.0.1/32 password', // a cleartext-password method, for channel binding
    ];
  },
});

async function waitPrimary(not?: NodeHandle): Promise<NodeHandle> {
  // Bootstrap and two clones: well under a minute here; 90 s for a loaded machine.
  return waitFor('a single primary', async () => {
    const p = await cluster.primary();
    return p !== null && p !== not ? p : null;
  }, 90_000);
}

/** The WAL senders of `n`, joined with pg_stat_ssl: who streams from it, and how. */
async function walSenders(n: NodeHandle): Promise<Array<{ name: string; ssl: boolean; version: string | null; client_dn: string | null }>> {
  const r = await cluster.query(n, `select r.application_name as name, s.ssl, s.version, s.client_dn
    from pg_stat_replication r join pg_stat_ssl s using (pid) where r.state = 'streaming' and r.application_name <> 'pgha_lease_witness' order by 1`);
  return r.rows as Array<{ name: string; ssl: boolean; version: string | null; client_dn: string | null }>;
}

async function waitSenders(n: NodeHandle, names: string[]): Promise<Awaited<ReturnType<typeof walSenders>>> {
  // A standby reconnects within a second of its upstream changing; 30 s covers a restart and a rewind.
  return waitFor(`${names.join(', ')} streaming from ${n.name}`, async () => {
    const s = await walSenders(n);
    return s.map((x) => x.name).join() === names.join() ? s : null;
  }, 30_000);
}

/** psql as the test (root) with PGPASSWORD: one connection attempt, its error text on failure. */
async function psqlAs(conninfo: string): Promise<{ ok: boolean; err: string }> {
  try {
    await run(PSQL, ['-X', '-A', '-t', '-d', conninfo, '-c', 'select 1'], { env: { PATH: process.env.PATH ?? '/usr/bin', PGPASSWORD: PLAIN_PW, PGCONNECT_TIMEOUT: '5' }, timeout: 15_000 });
    return { ok: true, err: '' };
  } catch (err) {
    return { ok: false, err: String((err as { stderr?: string }).stderr ?? err) };
  }
}

const serverLog = (n: NodeHandle) => (existsSync(`${n.dataDir}.log`) ? readFileSync(`${n.dataDir}.log`, 'utf8') : '');

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
});

afterAll(async () => {
  await cluster.destroy();
  rmSync(pkiDir, { recursive: true, force: true });
});

describe('the agent with a server key PostgreSQL would refuse', () => {
  it('will not start, and names the field and the file', async () => {
    const cfg = parse(readFileSync(cluster.nodes[0]!.configPath, 'utf8')) as { postgresql: { ssl: { key_file: string } } };
    const loose = pki.issue('loose').key; // mode 0644, owned by root
    cfg.postgresql.ssl.key_file = loose;
    const path = join(cluster.dir, 'loose.yml');
    writeFileSync(path, stringify(cfg), { mode: 0o600 });
    chownSync(path, pgUser.uid, pgUser.gid);
    const err = await run(process.execPath, [join(REPO, 'bin/pgha.js'), '--config', path], {
      uid: pgUser.uid, gid: pgUser.gid, cwd: '/', timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin', HOME: cluster.dir },
    }).then(() => null, (e: { code?: number; stderr?: string }) => e);
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain(`pgha: PGHA_CONFIG_INVALID: ${path}: postgresql.ssl.key_file: ${loose}: is mode 0644 owned by uid 0: a key owned by root must be mode 0640 or stricter`);
  });
});

describe('PostgreSQL with ssl = on on every member', () => {
  let primary: NodeHandle;
  let old: NodeHandle;

  it('clones and streams over TLS, verify-full with channel binding and a client certificate', async () => {
    primary = await waitPrimary();
    // Both standbys up and streaming (pg_basebackup's own WAL stream shows in pg_stat_replication too).
    await cluster.waitHealthy(60_000);
    const standbys = cluster.nodes.filter((n) => n !== primary).map((n) => n.name);
    const senders = await waitSenders(primary, standbys);
    for (const s of senders) {
      expect(s).toMatchObject({ ssl: true, client_dn: '/CN=replicator' });
      expect(s.version).toMatch(/^TLSv1\.[23]$/);
    }
    for (const n of cluster.nodes) expect((await cluster.query(n, 'show ssl')).rows[0]).toEqual({ ssl: 'on' });
    for (const n of cluster.nodes.filter((x) => x !== primary)) {
      const r = await cluster.query(n, 'select conninfo from pg_stat_wal_receiver');
      const info = (r.rows[0] as { conninfo: string }).conninfo;
      expect(info).toMatch(/sslmode=verify-full/);
      expect(info).toMatch(/channel_binding=require/);
    }
    // Each clone is pg_basebackup's two connections plus the WAL receiver's, all over TLS (the
    // pg_hba line for the replication role is hostssl only, so there is no other way in).
    const log = serverLog(primary);
    for (const name of standbys) {
      const lines = log.split('\n').filter((l) => l.includes(`replication connection authorized: user=replicator application_name=${name}`));
      expect(lines.length).toBeGreaterThanOrEqual(3);
      for (const l of lines) expect(l).toMatch(/SSL enabled \(protocol=TLSv1\.[23]/);
    }
  });

  it('keeps the passfile to the one host followed (finding 8)', () => {
    for (const n of cluster.nodes) {
      const lines = readFileSync(`${n.dataDir}.pgpass`, 'utf8').split('\n').filter(Boolean);
      if (n === primary) expect(lines).toEqual([]);
      else expect(lines).toEqual([`127.0.0.1:${primary.pgPort}:*:replicator:${PASSWORDS.replication}`]);
    }
  });

  it('refuses a cleartext password under channel_binding=require, and a host the certificate does not name', async () => {
    const tls = { sslmode: 'verify-full', sslrootcert: pki.caFile };
    const without = await psqlAs(peerConninfo('127.0.0.1', primary.pgPort, 'plainpw', tls, [['dbname', 'postgres']]));
    expect(without).toEqual({ ok: true, err: '' }); // the server takes the password in cleartext (over TLS) ...
    const cb = await psqlAs(peerConninfo('127.0.0.1', primary.pgPort, 'plainpw', { ...tls, channel_binding: 'require' }, [['dbname', 'postgres']]));
    expect(cb.ok).toBe(false); // ... which channel_binding=require never sends
    expect(cb.err).toMatch(/channel binding required/);
    const wrongHost = await psqlAs(peerConninfo('localhost', primary.pgPort, 'plainpw', tls, [['dbname', 'postgres']]));
    expect(wrongHost.ok).toBe(false);
    expect(wrongHost.err).toMatch(/does not match host name "localhost"/);
  });

  it('ignores a member key whose address is not host:port, with PGHA_DCS_BAD_VALUE (finding 8)', async () => {
    const evil = JSON.stringify({
      name: 'evil', role: 'standby', state: 'streaming', timeline: 1, lsn: 0, apiUrl: 'http://127.0.0.1:1', conn: '/tmp:5432',
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, failover_priority: 1 }, upstream: null, pendingRestart: false,
    });
    const etcdctl = (...args: string[]) => run('etcdctl', [`--endpoints=${cluster.etcdEndpoint}`, ...args], { env: { ETCDCTL_API: '3', PATH: process.env.PATH ?? '/usr/bin' }, timeout: 10_000 });
    await etcdctl('put', '/pgha-test/itest/members/evil', evil);
    try {
      // The agents read the cluster every loop (0.5 s).
      await waitFor('the warning', async () => cluster.nodes.every((n) => /"code":"PGHA_DCS_BAD_VALUE","key":"\/pgha-test\/itest\/members\/evil"/.test(cluster.logs(n))), 10_000);
      const r = await fetch(`http://127.0.0.1:${primary.apiPort}/cluster`);
      const names = ((await r.json()) as { members: Array<{ name: string }> }).members.map((m) => m.name);
      expect(names.sort()).toEqual(['node1', 'node2', 'node3']);
    } finally {
      await etcdctl('del', '/pgha-test/itest/members/evil');
    }
  });

  it('fails over, and the other standby follows the new primary over TLS', async () => {
    await cluster.query(primary, 'create table tls_rows (id int primary key)');
    await cluster.query(primary, 'insert into tls_rows values (1)');
    old = primary;
    cluster.killNode(old);
    primary = await waitPrimary(old);
    const other = cluster.nodes.find((n) => n !== old && n !== primary);
    if (other === undefined) throw new Error('no remaining standby');
    const senders = await waitSenders(primary, [other.name]);
    expect(senders[0]).toMatchObject({ ssl: true, client_dn: '/CN=replicator' });
    await cluster.query(primary, 'insert into tls_rows values (2)');
  });

  it('rewinds the old primary from the new one over TLS, and it streams again', async () => {
    cluster.startAgent(old);
    const all = cluster.nodes.filter((n) => n !== primary).map((n) => n.name).sort();
    const senders = await waitSenders(primary, all);
    for (const s of senders) expect(s.ssl).toBe(true);
    expect(cluster.logs(old)).toMatch(/"event":"rewind"/);
    // pg_rewind (and the checkpoint before it) connected as the rewind role, hostssl only.
    const rewinds = serverLog(primary).split('\n').filter((l) => l.includes(`connection authorized: user=rewinder database=postgres application_name=${old.name}`));
    expect(rewinds.length).toBeGreaterThanOrEqual(1);
    for (const l of rewinds) expect(l).toMatch(/SSL enabled \(protocol=TLSv1\.[23]/);
    await waitFor('row 2 on the old primary', async () => (await cluster.query(old, 'select count(*)::int as n from tls_rows')).rows[0]?.n === 2, 10_000);
    const pass = readFileSync(`${old.dataDir}.pgpass`, 'utf8').split('\n').filter(Boolean);
    expect(pass).toEqual([`127.0.0.1:${primary.pgPort}:*:replicator:${PASSWORDS.replication}`]);
  });

  it('never logs a password', () => {
    for (const n of cluster.nodes) {
      const text = cluster.logs(n) + serverLog(n);
      for (const pw of [...Object.values(PASSWORDS), PLAIN_PW]) expect(text).not.toContain(pw);
    }
  });
});
