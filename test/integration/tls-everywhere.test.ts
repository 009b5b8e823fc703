// Every link encrypted and authenticated at once, as issue 10 asks for production: a 3-member
// etcd with TLS for clients and peers, --client-cert-auth and etcd authentication; agents whose
// REST API is HTTPS with verify_client: required; HAProxy checking them with check-ssl and its
// own certificate; PostgreSQL with ssl = on, hostssl-only lines for the replication and rewind
// roles, and every connection between members with sslmode=verify-full and
// channel_binding=require. The cluster bootstraps, routes writes through HAProxy, switches over
// with pghactl and fails over after a crash; afterwards no agent log, server log or pghactl
// output holds any password or any line of a private key.
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { PASSWORDS, REPO, queryOnce, superuserClient, waitFor } from '../../lab/util.ts';
import { tlsEverywhere } from '../../lab/tls.ts';
import { allocatePorts } from '../../lab/ports.ts';

// Ports allocated (lab/ports.ts); TestCluster allocates the etcd members' and the nodes' own.
const HAPROXY_RW = allocatePorts(3);
const HAPROXY_RO = HAPROXY_RW + 1;
const CTL_API = HAPROXY_RW + 2; // the restapi.listen pghactl's YAML needs; nothing listens there
const ETCD_PASSWORD = 'etcd-everywhere-secret';
const REST_PASSWORD = 'admin-pw'; // TestCluster's restapi.authentication
const TTL_S = 3;

const pgUser = lookupOsUser('postgres');
const pkiDir = mkdtempSync(join(tmpdir(), 'pgha-tls-all-'));
const tls = tlsEverywhere(pkiDir, ETCD_PASSWORD, pgUser.uid, pgUser.gid);

const cluster = new TestCluster({
  etcdMembers: 3, etcdTls: tls.etcdTls, ttl: TTL_S,
  apiTls: { caFile: tls.caFile, certFile: tls.admin.cert, keyFile: tls.admin.key },
  configure: tls.configure,
});
let haproxy: ChildProcess | null = null;
/** Everything pghactl printed during the test: checked for secrets at the end. */
const ctlOutput: string[] = [];

function pghactl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const config = join(cluster.dir, 'ctl.yml');
  if (!existsSync(config)) {
    writeFileSync(config, stringify({
      scope: 'itest', name: 'ctl', namespace: '/pgha-test', restapi: { listen: `127.0.0.1:${CTL_API}`, authentication: { username: 'admin', password: REST_PASSWORD } },
      etcd: { hosts: cluster.etcdEndpoints, protocol: 'https', cacert: tls.caFile, cert: tls.etcdClient.cert, key: tls.etcdClient.key, username: 'root', password: ETCD_PASSWORD },
      postgresql: { data_dir: '/var/lib/pgha/unused', authentication: { superuser: { username: 'postgres', password: PASSWORDS.superuser }, replication: { username: 'replicator', password: PASSWORDS.replication } } },
      ctl: { certfile: tls.admin.cert, keyfile: tls.admin.key, cacert: tls.caFile },
    }), { mode: 0o600 });
  }
  return new Promise((resolve) => {
    // 90 s: a switchover waits for its outcome (seconds); the rest is Node's start on a busy machine.
    execFile(process.execPath, [join(REPO, 'bin/pghactl.js'), '-c', config, ...args], { timeout: 90_000 }, (err, stdout, stderr) => {
      ctlOutput.push(stdout, stderr);
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

async function healthy(not?: NodeHandle): Promise<NodeHandle> {
  // Bootstrap plus two clones over TLS take seconds when idle; 110 s covers a loaded 2-core machine.
  return cluster.waitHealthy(110_000, not === undefined ? {} : { not });
}

/** The PostgreSQL port that took a write sent to HAProxy's read-write listener. */
async function writeThroughHaproxy(): Promise<number> {
  const c = superuserClient({ host: '127.0.0.1', port: HAPROXY_RW, connectMs: 2000, queryMs: 4000 });
  const r = await queryOnce(c, 'create table if not exists tls_all (at timestamptz); insert into tls_all values (now()); select inet_server_port() as port');
  const last = (Array.isArray(r) ? r.at(-1) : r) as { rows: Array<{ port: number }> };
  return Number(last.rows[0]?.port);
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.etcdCluster!.enableAuth(ETCD_PASSWORD);
  cluster.startAll();
  haproxy = cluster.startHaproxy({ readWritePort: HAPROXY_RW, readOnlyPort: HAPROXY_RO, apiTls: { caFile: tls.caFile, crtFile: tls.haproxyPem } });
}, 120_000);

afterAll(async () => {
  haproxy?.kill('SIGKILL');
  await cluster.destroy();
  rmSync(pkiDir, { recursive: true, force: true });
});

describe('TLS on every link: etcd, REST API, HAProxy checks, PostgreSQL', () => {
  it('bootstraps, and HAProxy (check-ssl) sends writes to the primary', async () => {
    const primary = await healthy();
    // HAProxy marks the primary up after a couple of 250 ms checks.
    await waitFor('a write through HAProxy', async () => (await writeThroughHaproxy().catch(() => null)) === primary.pgPort, 30_000, 250);
  });

  it('streams WAL over TLS between members', async () => {
    const primary = await healthy();
    const r = await cluster.query(primary, `select r.application_name, s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid) where r.state = 'streaming' and r.application_name <> 'pgha_lease_witness'`);
    expect(r.rows.length).toBe(2);
    expect(r.rows.every((row: { ssl: boolean }) => row.ssl)).toBe(true);
  });

  it('pghactl lists and switches over through etcd TLS and the HTTPS API', async () => {
    const old = await healthy();
    const list = await pghactl('list', '--format', 'json');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(3);
    const sw = await pghactl('switchover', '--force');
    expect(sw.code, sw.stderr).toBe(0);
    const next = await healthy(old);
    await waitFor('writes reach the new primary through HAProxy', async () => (await writeThroughHaproxy().catch(() => null)) === next.pgPort, 30_000, 250);
  });

  it('fails over after the primary crashes, and the old primary rejoins over TLS', async () => {
    const old = await healthy();
    cluster.killNode(old);
    const next = await waitFor('a new primary', async () => { const p = await cluster.primary(); return p !== null && p !== old ? p : null; }, 60_000, 200);
    await waitFor('writes through HAProxy again', async () => (await writeThroughHaproxy().catch(() => null)) === next.pgPort, 30_000, 250);
    cluster.startAgent(old);
    await healthy(); // the old primary is rewound (over verify-full TLS) and streams again
  });

  it('prints no password and no private key line in any log or pghactl output', () => {
    const secrets = [ETCD_PASSWORD, REST_PASSWORD, PASSWORDS.superuser, PASSWORDS.replication, PASSWORDS.rewind];
    const keyLines = tls.keys
      .flatMap((k) => readFileSync(k, 'utf8').split('\n'))
      .filter((l) => l.length > 20 && !l.startsWith('-----'));
    const texts: Array<[string, string]> = [
      ...cluster.nodes.map((n): [string, string] => [`${n.name} agent log`, cluster.logs(n)]),
      ...cluster.nodes.map((n): [string, string] => [`${n.name} server log`, existsSync(`${n.dataDir}.log`) ? readFileSync(`${n.dataDir}.log`, 'utf8') : '']),
      ['pghactl output', ctlOutput.join('\n')],
    ];
    expect(texts.every(([, t]) => t.length > 0)).toBe(true);
    for (const [where, text] of texts) {
      for (const s of [...secrets, ...keyLines]) expect(text.includes(s), `${where} holds a secret`).toBe(false);
    }
  });
});
