// The REST API over HTTPS on a real three-node cluster (etcd, PostgreSQL 15, HAProxy). node1 and
// node2 require a client certificate (verify_client: required), node3 asks for one
// (optional); all three allow mutating calls from 127.0.0.1 only (allowlist plus
// allowlist_include_members). HAProxy checks the agents with check-ssl against the CA and
// presents its own certificate. pghactl reaches the agents with its ctl section. In failsafe
// mode the leader's confirmation round runs over HTTPS with the agent's client certificate.
// Finally, an agent started with PGHA_NODE_FLAGS=--jitless refuses at start, with the reason.
import { execFile, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { apiRequest, jsonOf } from '../../src/api/client.ts';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import { TestCluster, startWriter, type NodeHandle } from '../../lab/loopback.ts';
import { PASSWORDS, REPO, sleep, superuserClient, queryOnce, waitFor } from '../../lab/util.ts';
import { makePki } from '../../lab/tls.ts';
import { allocatePorts } from '../../lab/ports.ts';

const TTL_S = 3;
const HAPROXY_RW = allocatePorts(2);
const HAPROXY_RO = HAPROXY_RW + 1;
const pgUser = lookupOsUser('postgres');
const pkiDir = mkdtempSync(join(tmpdir(), 'pgha-apitls-'));
chownSync(pkiDir, pgUser.uid, pgUser.gid); // the agents (postgres) read their certificates here
const pki = makePki(join(pkiDir, 'ca'));
const leaves = Object.fromEntries(['node1', 'node2', 'node3', 'admin', 'haproxy'].map((n) => [n, pki.issue(n)]));
// A CA nobody in the cluster trusts, and an agent certificate it signed.
const otherCa = makePki(join(pkiDir, 'other'), 'other-ca');
for (const d of ['ca', 'other']) chownSync(join(pkiDir, d), pgUser.uid, pgUser.gid);
const haproxyPem = join(pkiDir, 'haproxy.pem');
writeFileSync(haproxyPem, readFileSync(leaves.haproxy!.cert, 'utf8') + readFileSync(leaves.haproxy!.key, 'utf8'));

const cluster = new TestCluster({
  ttl: TTL_S, dcs: { failsafe_mode: true },
  apiTls: { caFile: pki.caFile, certFile: leaves.admin!.cert, keyFile: leaves.admin!.key },
  configure: (i, cfg) => {
    const leaf = leaves[`node${i}`]!;
    Object.assign(cfg.restapi, {
      certfile: leaf.cert, keyfile: leaf.key, cafile: pki.caFile, verify_client: i === 3 ? 'optional' : 'required',
      allowlist: ['127.0.0.1'], allowlist_include_members: true,
    });
  },
});
let haproxy: ChildProcess | null = null;

/** A pghactl config: the cluster's etcd and credentials, no restapi TLS of its own, and `ctl`. */
function ctlConfig(name: string, ctl: Record<string, unknown>): string {
  const path = join(cluster.dir, `${name}.yml`);
  writeFileSync(path, stringify({
    scope: 'itest', name, namespace: '/pgha-test', etcd: { hosts: [cluster.etcdEndpoint] },
    // pghactl never listens: restapi.listen is only a required field of the file.
    restapi: { listen: '127.0.0.1:8008', authentication: { username: 'admin', password: 'admin-pw' } },
    postgresql: { data_dir: '/var/lib/pgha/unused', authentication: { superuser: { username: 'postgres', password: PASSWORDS.superuser }, replication: { username: 'replicator', password: PASSWORDS.replication } } },
    ctl,
  }), { mode: 0o600 });
  return path;
}
const CTL = { certfile: leaves.admin!.cert, keyfile: leaves.admin!.key, cacert: pki.caFile };

interface Run { code: number; stdout: string; stderr: string }
function pghactl(config: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO, 'bin/pghactl.js'), '-c', config, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

/** A raw HTTPS call with full control of the client side: certificate or none, source address. */
function rawCall(n: NodeHandle, o: { method: string; path: string; body?: unknown; cert?: boolean; from?: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = https.request({
      host: '127.0.0.1', port: n.apiPort, path: o.path, method: o.method, agent: false, ca: readFileSync(pki.caFile),
      ...(o.cert === true ? { cert: readFileSync(leaves.admin!.cert), key: readFileSync(leaves.admin!.key) } : {}),
      ...(o.from === undefined ? {} : { localAddress: o.from }),
      headers: { authorization: `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      // A loopback call answers in milliseconds; 5 s covers a loaded 2-core machine.
      signal: AbortSignal.timeout(5000),
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: jsonOf({ status: 0, text }) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function healthy(): Promise<NodeHandle> {
  // Bootstrap plus two clones take seconds when idle; 110 s covers a loaded 2-core machine.
  return cluster.waitHealthy(110_000);
}

/** The PostgreSQL port that answers a write through HAProxy's read-write listener. */
async function writeThroughHaproxy(): Promise<number> {
  const r = await queryOnce(superuserClient({ host: '127.0.0.1', port: HAPROXY_RW, connectMs: 2000, queryMs: 4000 }),
    'create table if not exists tls_probe (at timestamptz); insert into tls_probe values (now()); select inet_server_port() as port');
  const rows = (Array.isArray(r) ? r.at(-1) : r) as { rows: Array<{ port: number }> };
  return Number(rows.rows[0]?.port);
}

function startHaproxy(): void {
  haproxy = cluster.startHaproxy({ readWritePort: HAPROXY_RW, readOnlyPort: HAPROXY_RO, apiTls: { caFile: pki.caFile, crtFile: haproxyPem } });
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await healthy();
  startHaproxy();
}, 120_000);
afterAll(async () => {
  haproxy?.kill('SIGKILL');
  for (const n of cluster.nodes) n.agent?.kill('SIGCONT');
  cluster.resumeEtcd();
  await cluster.destroy();
  rmSync(pkiDir, { recursive: true, force: true });
});

describe('the REST API over HTTPS', () => {
  it('members publish https:// API URLs', async () => {
    const leader = await healthy();
    const r = await apiRequest(`${cluster.apiBase(leader)}/cluster`, { tls: { ca: readFileSync(pki.caFile), cert: readFileSync(leaves.admin!.cert), key: readFileSync(leaves.admin!.key), rejectUnauthorized: true }, timeoutMs: 5000 });
    const members = (jsonOf(r).members ?? []) as Array<{ name: string; api_url: string }>;
    expect(members.map((m) => m.api_url).sort()).toEqual(cluster.nodes.map((n) => `https://127.0.0.1:${n.apiPort}`));
  });

  it('HAProxy, checking with check-ssl and its certificate, routes writes to the primary', async () => {
    const leader = await healthy();
    const port = await waitFor('a write through HAProxy', async () => writeThroughHaproxy(), 15_000, 300);
    expect(port).toBe(leader.pgPort);
  });

  it('refuses a client without a certificate on verify_client: required, health checks included', async () => {
    const n1 = cluster.nodes[0]!;
    await expect(rawCall(n1, { method: 'GET', path: '/health' })).rejects.toThrow();
    expect((await rawCall(n1, { method: 'GET', path: '/health', cert: true })).status).toBe(200);
  });

  it('with verify_client: optional, serves GETs without a certificate and refuses mutating calls without one', async () => {
    const n3 = cluster.nodes[2]!;
    expect((await rawCall(n3, { method: 'GET', path: '/status' })).status).toBe(200);
    const refused = await rawCall(n3, { method: 'POST', path: '/switchover', body: { candidate: 'nosuch' } });
    expect(refused).toEqual({ status: 403, body: { error: 'PGHA_API_FORBIDDEN', message: 'a client certificate signed by restapi.cafile is required for this endpoint' } });
    // With the certificate the call passes the guard and reaches the handler (which refuses the unknown candidate).
    expect((await rawCall(n3, { method: 'POST', path: '/switchover', body: { candidate: 'nosuch' }, cert: true })).status).toBe(412);
  });

  it('refuses a mutating call from an address outside the allowlist with 403, and keeps health checks open to it', async () => {
    for (const n of cluster.nodes) {
      const r = await rawCall(n, { method: 'POST', path: '/switchover', body: { candidate: 'nosuch' }, cert: true, from: '127.0.0.2' });
      expect(r).toEqual({ status: 403, body: { error: 'PGHA_API_FORBIDDEN', message: '127.0.0.2 is not in restapi.allowlist' } });
      expect((await rawCall(n, { method: 'GET', path: '/health', cert: true, from: '127.0.0.2' })).status).toBe(200);
    }
  });
});

describe('pghactl over HTTPS with its ctl section', () => {
  it('lists, reloads every member (POST with the client certificate) and pauses with --wait (GET /status)', async () => {
    await healthy();
    const cfg = ctlConfig('ctl', CTL);
    const list = await pghactl(cfg, 'list', '--format', 'json');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ member: string }>).map((r) => r.member).sort()).toEqual(['node1', 'node2', 'node3']);
    const reload = await pghactl(cfg, 'reload', '--format', 'json');
    expect(reload.code, reload.stderr).toBe(0);
    expect(JSON.parse(reload.stdout)).toEqual({ reload: ['node1', 'node2', 'node3'] });
    for (const cmd of ['pause', 'resume']) {
      const r = await pghactl(cfg, cmd, '--wait');
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it('refuses agents whose certificate its CA did not sign, unless ctl.insecure (with a warning)', async () => {
    const wrong = await pghactl(ctlConfig('ctl-wrong-ca', { ...CTL, cacert: otherCa.caFile }), 'reload', 'node1');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(new RegExp(`node1: https://127\\.0\\.0\\.1:${cluster.nodes[0]!.apiPort}: .*(certificate|self.signed)`, 'i'));
    const insecure = await pghactl(ctlConfig('ctl-insecure', { ...CTL, cacert: otherCa.caFile, insecure: true }), 'reload', 'node1');
    expect(insecure.code, insecure.stderr).toBe(0);
    expect(insecure.stderr).toContain('warning: ctl.insecure is set');
  });

  it('is refused by verify_client: required without a client certificate', async () => {
    const r = await pghactl(ctlConfig('ctl-nocert', { cacert: pki.caFile }), 'reload', 'node1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`PGHA_CLI_REFUSED: node1: https://127\\.0\\.0\\.1:${cluster.nodes[0]!.apiPort}: `));
  });

  it('switches over; HAProxy follows the new primary', async () => {
    const old = await healthy();
    const target = cluster.nodes.find((n) => n !== old)!;
    const r = await pghactl(ctlConfig('ctl', CTL), 'switchover', '--candidate', target.name, '--force');
    expect(r.code, r.stderr).toBe(0);
    await waitFor('the candidate leads', async () => (await cluster.primary())?.name === target.name, 20_000);
    await healthy();
    expect(await waitFor('writes through HAProxy on the new primary', async () => ((await writeThroughHaproxy()) === target.pgPort ? true : null), 15_000, 300)).toBe(true);
  });
});

describe('failsafe mode over HTTPS', () => {
  it('keeps the primary writing with etcd frozen: every member confirms it over HTTPS', async () => {
    const leader = await healthy();
    // The leader writes /failsafe within a loop of seeing all three members; give it a few loops.
    await sleep(2000);
    const w = startWriter(leader, 'tls_failsafe_probe', { queryMs: 3000, pauseMs: 20 });
    // Writing before etcd freezes; 10 s covers a loaded machine.
    await waitFor('the writer writing', async () => w.acks.length >= 5, 10_000, 20);
    const frozenAt = Date.now();
    cluster.pauseEtcd();
    await sleep((2 * TTL_S + 1) * 1000); // the fault itself: etcd frozen for two TTLs and more
    const lastAck = w.acks.at(-1)?.at ?? 0;
    const failedAt = w.failedAt();
    await w.stop();
    cluster.resumeEtcd();
    expect(failedAt).toBeNull();
    expect(lastAck - frozenAt).toBeGreaterThan(2 * TTL_S * 1000);
    expect(cluster.logs(leader)).toMatch(/failsafe: all 2 members confirmed us/);
    await waitFor('the same primary and two replicas', async () =>
      ((await cluster.primary())?.name === leader.name && (await cluster.replicas()).length === 2 ? true : null), 30_000);
  }, 60_000);
});

it('an agent whose Node flags remove WebAssembly (--jitless) refuses at start, saying why', async () => {
  const r = await new Promise<Run>((resolve) => {
    execFile(process.execPath, [join(REPO, 'bin/pgha.js'), '--config', cluster.nodes[0]!.configPath], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PGHA_NODE_FLAGS: '--jitless', PGHA_ENTRY: 'src' }, timeout: 30_000,
    }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr }));
  });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/^pgha: the Node flags \(.*--jitless.*\) disable WebAssembly, which Node needs to load pgha's TypeScript sources/);
});
