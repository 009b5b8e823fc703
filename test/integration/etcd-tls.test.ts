// pgha against a 3-member etcd that talks TLS to clients and peers and demands client
// certificates (--client-cert-auth), with etcd authentication on: a 3-node cluster bootstraps
// and fails over, pghactl lists it (YAML with TLS and password; flags with a certificate whose CN
// is the etcd user), and each TLS/auth mistake stops an agent at once with a message naming the
// setting and the file, while an unreachable etcd is still waited for.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startEtcd, type EtcdHandle } from '../../lab/etcd.ts';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, sleep, waitFor } from '../../lab/util.ts';
import { makePki, type Leaf } from '../../lab/tls.ts';
import { allocatePorts } from '../../lab/ports.ts';

// Ports allocated (lab/ports.ts); TestCluster allocates the etcd members' and the nodes' own.
const PLAIN_ETCD = allocatePorts(2); // a plain-HTTP etcd for the "https setting, plain etcd" case (client, peer)
const NOBODY = allocatePorts(1); // reserved; nothing listens here
const RETRY_TIMEOUT_S = 1;
const ETCD_PASSWORD = 'etcd-root-secret-pw';

const pkiDir = mkdtempSync(join(tmpdir(), 'pgha-etcd-pki-'));
chmodSync(pkiDir, 0o755); // the agents (postgres OS user) read the CA, certificates and keys
const pki = makePki(join(pkiDir, 'ca'));
const foreign = makePki(join(pkiDir, 'foreign'), 'foreign-ca');
const server = pki.issue('etcd-server');
const client = pki.issue('pgha-client');
const rootCn = pki.issue('root'); // CN=root: etcd takes the CN as the user when no password is sent
const expired = pki.issue('expired-client', { expired: true });

const tlsEtcd = (leaf: Leaf | null, ca = pki.caFile) => ({
  protocol: 'https', cacert: ca, ...(leaf === null ? {} : { cert: leaf.cert, key: leaf.key }),
});

const cluster = new TestCluster({
  etcdMembers: 3, etcdTls: { caFile: pki.caFile, ...server },
  ttl: 3, retryTimeout: RETRY_TIMEOUT_S,
  configure: (_, cfg) => { cfg.etcd = { ...cfg.etcd, ...tlsEtcd(client), username: 'root', password: ETCD_PASSWORD }; },
});
let plain: EtcdHandle | null = null;
/** The regex source of "127.0.0.1:<any of the cluster's etcd members' client ports>". */
const ETCD_AT = String.raw`127\.0\.0\.1:(?:${cluster.etcdEndpoints.map((h) => h.split(':')[1]).join('|')})`;

function pghactl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // 30 s: a CLI call waits at most 3 s per etcd call; the rest is Node's start on a busy machine.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

let negN = 0;
/** Start one agent (own scope, ports and data dir) with node1's YAML but this etcd section. */
function startProbeAgent(etcd: Record<string, unknown>): NodeHandle {
  const i = ++negN;
  const base = parse(readFileSync(cluster.nodes[0]!.configPath, 'utf8')) as Record<string, any>;
  const port = allocatePorts(2); // its PostgreSQL and REST API
  const n: NodeHandle = {
    name: `neg${i}`, pgPort: port, apiPort: port + 1, dataDir: join(cluster.dir, `neg${i}`, 'data'),
    configPath: join(cluster.dir, `neg${i}.yml`), logPath: join(cluster.dir, `neg${i}.agent.log`), agent: null,
  };
  const cfg = {
    ...base, scope: `neg${i}`, name: `neg${i}`, etcd,
    restapi: { ...base.restapi, listen: `127.0.0.1:${n.apiPort}` },
    postgresql: { ...base.postgresql, listen: `127.0.0.1:${n.pgPort}`, data_dir: n.dataDir },
  };
  writeFileSync(n.configPath, stringify(cfg), { mode: 0o644 });
  cluster.startAgent(n);
  return n;
}

interface Exit { code: number | null; ms: number; log: string; checkMs: number | null }

/** Run a probe agent until it exits (at most `timeoutMs`); always kills what it may have started. */
async function runUntilExit(etcd: Record<string, unknown>, timeoutMs: number): Promise<Exit> {
  const started = performance.now();
  const n = startProbeAgent(etcd);
  const child = n.agent!;
  try {
    const code = await Promise.race([
      new Promise<number | null>((r) => child.once('exit', (c) => r(c))),
      sleep(timeoutMs).then(() => 'running' as const),
    ]);
    if (code === 'running') throw new Error(`the agent with ${JSON.stringify(etcd)} did not exit within ${timeoutMs} ms:\n${cluster.logs(n)}`);
    await sleep(100); // the log pipe drains after the exit event
    const log = cluster.logs(n);
    return { code, ms: performance.now() - started, log, checkMs: checkDuration(log) };
  } finally {
    child.kill('SIGKILL');
    cluster.killPostmaster(n, 'SIGKILL');
  }
}

/** ms from the agent's "checking access to etcd" line to its "cannot use etcd" line. */
function checkDuration(log: string): number | null {
  const times = log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; time?: string });
  const from = times.find((t) => t.event === 'etcd_check')?.time;
  const to = times.find((t) => t.event === 'etcd_misconfigured')?.time;
  return from === undefined || to === undefined ? null : Date.parse(to) - Date.parse(from);
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.etcdCluster!.enableAuth(ETCD_PASSWORD);
  cluster.startAll();
});

afterAll(async () => {
  await cluster.destroy();
  await plain?.stop();
  rmSync(pkiDir, { recursive: true, force: true });
});

describe('pgha on a 3-member etcd with TLS, --client-cert-auth and authentication', () => {
  let primary: NodeHandle;

  it('bootstraps and elects one leader with two streaming replicas', async () => {
    // Bootstrap: initdb, two base backups and the first elections: 60 s covers a loaded machine.
    primary = await cluster.waitHealthy(110_000);
    const users = cluster.etcdCluster!.etcdctl(['user', 'list']);
    expect(users).toContain('root'); // auth is really on: etcdctl needed --user to ask
  });

  it('pghactl list works with the YAML (TLS and etcd username/password)', async () => {
    const r = await pghactl(['-c', primary.configPath, 'list', '-f', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ member: string; role: string }>;
    expect(rows.map((m) => m.member).sort()).toEqual(['node1', 'node2', 'node3']);
    expect(rows.find((m) => m.member === primary.name)?.role).toBe('Leader');
  });

  it('pghactl list works with --etcd https://... and --etcd-cacert/--etcd-cert/--etcd-key', async () => {
    const hosts = cluster.etcdEndpoints.map((h) => `https://${h}`).join(',');
    const r = await pghactl(['--etcd', hosts, '--scope', 'itest', '--namespace', '/pgha-test',
      '--etcd-cacert', pki.caFile, '--etcd-cert', rootCn.cert, '--etcd-key', rootCn.key, 'list', '-f', 'json']);
    expect(r.stderr).toBe('');
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(3);
    // Without a client certificate etcd refuses the handshake: a clear PGHA_DCS_TLS, exit 1.
    const bare = await pghactl(['--etcd', hosts, '--scope', 'itest', '--namespace', '/pgha-test', '--etcd-cacert', pki.caFile, 'list']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain('PGHA_DCS_TLS');
    expect(bare.stderr).toContain('etcd.cert: etcd at 127.0.0.1:');
  });

  it('fails over after the primary agent and its PostgreSQL are killed', async () => {
    const old = primary;
    cluster.killNode(old);
    // ttl 3 s for the key to expire, then a loop or two: 30 s is generous.
    primary = await waitFor('a new primary', async () => {
      const p = await cluster.primary();
      return p !== null && p !== old ? p : null;
    }, 30_000);
    expect(primary).not.toBe(old);
  });
});

describe('a TLS or auth mistake stops the agent at start, naming the setting and the file', () => {
  const cases: Array<[string, () => Record<string, unknown>, RegExp]> = [
    ['a wrong CA', () => ({ hosts: cluster.etcdEndpoints, ...tlsEtcd(client, foreign.caFile), username: 'root', password: ETCD_PASSWORD }),
      new RegExp(String.raw`PGHA_DCS_TLS: (\S+): etcd\.cacert: the server certificate of etcd at ${ETCD_AT} is not signed by etcd\.cacert \(.*foreign/ca\.crt\)`)],
    ['an expired client certificate', () => ({ hosts: cluster.etcdEndpoints, ...tlsEtcd(expired), username: 'root', password: ETCD_PASSWORD }),
      /PGHA_DCS_TLS: (\S+): etcd\.cert: the certificate in .*expired-client\.crt expired on /],
    ['no client certificate where etcd requires one', () => ({ hosts: cluster.etcdEndpoints, ...tlsEtcd(null), username: 'root', password: ETCD_PASSWORD }),
      new RegExp(String.raw`PGHA_DCS_TLS: (\S+): etcd\.cert: etcd at ${ETCD_AT} requires a client certificate`)],
    ['a plain-HTTP etcd behind protocol: https', () => ({ hosts: [`127.0.0.1:${PLAIN_ETCD}`], ...tlsEtcd(client) }),
      new RegExp(String.raw`PGHA_DCS_TLS: (\S+): etcd\.protocol: is https but etcd at 127\.0\.0\.1:${PLAIN_ETCD} serves plain HTTP`)],
    ['protocol: http against the TLS etcd', () => ({ hosts: cluster.etcdEndpoints, protocol: 'http', username: 'root', password: ETCD_PASSWORD }),
      new RegExp(String.raw`PGHA_DCS_TLS: (\S+): etcd\.protocol: is http but etcd at ${ETCD_AT} speaks TLS`)],
    ['a wrong etcd password', () => ({ hosts: cluster.etcdEndpoints, ...tlsEtcd(client), username: 'root', password: 'not-the-password' }),
      new RegExp(String.raw`PGHA_DCS_AUTH: (\S+): etcd\.username/etcd\.password: etcd at ${ETCD_AT} refused the credentials of user "root"`)],
  ];
  const measured: Array<[string, number, number | null]> = [];

  beforeAll(async () => { plain = await startEtcd({ clientPort: PLAIN_ETCD, peerPort: PLAIN_ETCD + 1 }); });
  afterAll(() => {
    // The measurements, for the report: spawn to exit, and the agent's own check (first log to error).
    for (const [name, ms, check] of measured) process.stdout.write(`etcd-tls: ${name}: exit after ${ms.toFixed(0)} ms, check took ${check ?? '?'} ms\n`);
  });

  it.each(cases)('%s', async (name, etcd, expected) => {
    // 15 s: Node's start on a busy 2-core machine; the etcd check itself must fit in retry_timeout.
    const r = await runUntilExit(etcd(), 15_000);
    measured.push([name, r.ms, r.checkMs]);
    expect(r.code).toBe(1);
    const m = expected.exec(r.log);
    expect(m, r.log).not.toBeNull();
    expect(m![1]).toMatch(/\/neg\d+\.yml$/); // the config file is named
    expect(r.checkMs).not.toBeNull();
    expect(r.checkMs!).toBeLessThanOrEqual(RETRY_TIMEOUT_S * 1000);
    // Never printed: the etcd password, any line of a key file.
    expect(r.log).not.toContain(ETCD_PASSWORD);
    expect(r.log).not.toContain('not-the-password');
    for (const leaf of [client, expired]) {
      for (const line of readFileSync(leaf.key, 'utf8').split('\n').filter((l) => l.length > 20)) expect(r.log).not.toContain(line);
    }
  });

  it('keeps waiting for an etcd that is merely unreachable', async () => {
    const n = startProbeAgent({ hosts: [`127.0.0.1:${NOBODY}`], ...tlsEtcd(client) });
    try {
      // 4 s: four retry_timeouts; a misconfiguration would have ended the agent within one.
      await sleep(4000);
      expect(n.agent, cluster.logs(n)).not.toBeNull();
      expect(cluster.logs(n)).toContain('etcd is unreachable at startup');
    } finally {
      n.agent?.kill('SIGKILL');
      cluster.killPostmaster(n, 'SIGKILL');
    }
  });

  it('never printed the etcd password or a key in the cluster agents\' logs', () => {
    const keyLines = [client, server].flatMap((l) => readFileSync(l.key, 'utf8').split('\n').filter((x) => x.length > 20));
    for (const node of cluster.nodes) {
      const log = cluster.logs(node);
      expect(log.length).toBeGreaterThan(0);
      expect(log).not.toContain(ETCD_PASSWORD);
      for (const line of keyLines) expect(log).not.toContain(line);
    }
  });
});
