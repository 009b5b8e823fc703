// A real etcd (Debian's etcd-server) for tests: a child process on loopback with its data in a
// fresh temporary directory, or an N-member cluster with optional TLS (startEtcdCluster).
// `stop()` kills the members and removes their directories.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdHandle {
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
}

const ETCD = '/usr/bin/etcd';

export async function startEtcd(o: { clientPort: number; peerPort: number; name?: string }): Promise<EtcdHandle> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} not found: run apt-get install etcd-server`);
  const dataDir = mkdtempSync(join(tmpdir(), 'pgha-etcd-'));
  const client = `http://127.0.0.1:${o.clientPort}`;
  const peer = `http://127.0.0.1:${o.peerPort}`;
  const name = o.name ?? 'test';
  const child = spawn(ETCD, [
    '--name', name, '--data-dir', dataDir, '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
    '--log-level', 'error',
  ], { stdio: 'ignore' });
  const kill = () => { try { child.kill('SIGCONT'); child.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', kill);
  const stop = async () => {
    kill();
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  };
  // etcd starts in well under a second here; 15 s covers a loaded CI machine.
  const end = performance.now() + 15_000;
  for (;;) {
    const ok = await fetch(`${client}/health`, { signal: AbortSignal.timeout(500) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (performance.now() > end || child.exitCode !== null) { await stop(); throw new Error(`etcd on ${client} did not become healthy`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint: `127.0.0.1:${o.clientPort}`, pid: child.pid ?? 0, stop,
    pause: () => child.kill('SIGSTOP'), resume: () => child.kill('SIGCONT'),
  };
}

export interface EtcdTlsFiles {
  caFile: string;
  /** The members' own certificate (server and peer); it also serves as etcdctl's client certificate. */
  cert: string;
  key: string;
}

export interface EtcdClusterHandle {
  /** host:port of each member's client URL. */
  endpoints: string[];
  /** 'https' when clients talk TLS. */
  protocol: 'http' | 'https';
  stop(): Promise<void>;
  /** Run etcdctl against the cluster (with TLS flags when clients talk TLS); returns stdout. */
  etcdctl(args: string[], input?: string): string;
  /** Add user `root` with `password`, grant it the root role and turn etcd authentication on. */
  enableAuth(password: string): void;
}

/**
 * An N-member etcd cluster (default 3) on loopback: member i listens for clients on
 * basePort + 2i and for peers on basePort + 2i + 1. With `tls`, clients and peers talk TLS with
 * the given files, and `--client-cert-auth` (default on) makes members refuse clients without a
 * certificate signed by the CA. `stop()` kills every member and removes every data directory,
 * also when the start fails.
 */
export async function startEtcdCluster(o: { basePort: number; members?: number; tls?: EtcdTlsFiles; clientCertAuth?: boolean }): Promise<EtcdClusterHandle> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} not found: run apt-get install etcd-server`);
  const n = o.members ?? 3;
  const scheme = o.tls === undefined ? 'http' : 'https';
  const members = Array.from({ length: n }, (_, i) => ({
    name: `m${i + 1}`, client: `${scheme}://127.0.0.1:${o.basePort + 2 * i}`, peer: `${scheme}://127.0.0.1:${o.basePort + 2 * i + 1}`,
    dataDir: mkdtempSync(join(tmpdir(), 'pgha-etcd-')),
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const tlsArgs = o.tls === undefined ? [] : [
    '--trusted-ca-file', o.tls.caFile, '--cert-file', o.tls.cert, '--key-file', o.tls.key,
    ...(o.clientCertAuth === false ? [] : ['--client-cert-auth']),
    '--peer-trusted-ca-file', o.tls.caFile, '--peer-cert-file', o.tls.cert, '--peer-key-file', o.tls.key, '--peer-client-cert-auth',
  ];
  const children = members.map((m) => spawn(ETCD, [
    '--name', m.name, '--data-dir', m.dataDir, '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
    '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer, '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new', '--initial-cluster-token', `pgha-test-${o.basePort}`, '--log-level', 'error', ...tlsArgs,
  ], { stdio: 'ignore' }));
  const kill = () => { for (const c of children) { try { c.kill('SIGCONT'); c.kill('SIGKILL'); } catch { /* gone */ } } };
  process.once('exit', kill);
  const stop = async () => {
    kill();
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
  };
  const endpoints = members.map((m) => m.client.replace(/^https?:\/\//, ''));
  let user: string[] = []; // --user root:PASSWORD once authentication is on
  // etcdctl's own limits: 3 s to connect and 5 s per command bound each call on a loaded machine
  // (a healthy loopback etcd answers in milliseconds); the start-up loop below retries it.
  const etcdctl = (args: string[], input?: string): string => execFileSync('etcdctl', [
    '--endpoints', members.map((m) => m.client).join(','), '--dial-timeout', '3s', '--command-timeout', '5s',
    ...(o.tls === undefined ? [] : ['--cacert', o.tls.caFile, '--cert', o.tls.cert, '--key', o.tls.key]), ...user, ...args,
  ], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, ...(input === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input }) });
  // Three members elect a leader within about a second here; 20 s covers a loaded CI machine.
  const end = performance.now() + 20_000;
  for (;;) {
    let ok = false;
    try {
      etcdctl(['endpoint', 'health']);
      ok = true;
    } catch { /* not yet */ }
    if (ok) break;
    if (performance.now() > end || children.some((c) => c.exitCode !== null)) { await stop(); throw new Error(`etcd cluster on ${endpoints.join(',')} did not become healthy`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    endpoints, protocol: scheme, stop, etcdctl,
    enableAuth(password) {
      // --interactive=false reads the password from the argument, not a terminal; it is a test password.
      etcdctl(['user', 'add', `root:${password}`, '--interactive=false']);
      etcdctl(['user', 'grant-role', 'root', 'root']);
      etcdctl(['auth', 'enable']);
      user = ['--user', `root:${password}`];
    },
  };
}
