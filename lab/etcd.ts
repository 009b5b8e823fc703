// The one etcd launcher of the lab: the command line of a member (etcdArgv), the wait for its
// health, a single loopback member (startEtcd: tests, benchmarks, the demo) and an N-member
// loopback cluster with optional TLS (startEtcdCluster). The network-namespace and nspawn labs
// spawn etcdArgv() through their own spawners. `stop()` kills the members and removes the
// temporary directories.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
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

/** One member of an etcd cluster as the launcher starts it. */
export interface EtcdMember {
  name: string;
  dataDir: string;
  /** e.g. http://127.0.0.1:2379 (https:// with TLS). */
  clientUrl: string;
  peerUrl: string;
  /** `name=peerUrl,...` of every member. */
  initialCluster: string;
  /** 'existing' when the member restarts on a data directory it already has. */
  state?: 'new' | 'existing';
  token?: string;
  logLevel?: 'error' | 'warn' | 'info';
  /** TLS flags (tlsArgs()), none for plain HTTP. */
  tls?: string[];
  /** More client URLs to listen on (e.g. a veth address a namespace reaches). */
  extraListen?: string[];
  /** etcd's v2 API (vip-manager reads only that). */
  enableV2?: boolean;
}

/**
 * The command line of one etcd member: every lab (loopback, network namespaces, nspawn) and the
 * demo start etcd with it, each through its own spawner (a plain child, `ip netns exec`, a cgroup).
 */
export function etcdArgv(m: EtcdMember): string[] {
  return [ETCD, '--name', m.name, '--data-dir', m.dataDir,
    '--listen-client-urls', [m.clientUrl, ...(m.extraListen ?? [])].join(','), '--advertise-client-urls', m.clientUrl,
    ...(m.enableV2 === true ? ['--enable-v2=true'] : []),
    '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl, '--initial-cluster', m.initialCluster,
    ...(m.state === undefined ? [] : ['--initial-cluster-state', m.state]),
    ...(m.token === undefined ? [] : ['--initial-cluster-token', m.token]),
    '--log-level', m.logLevel ?? 'error', ...(m.tls ?? [])];
}

/**
 * Poll `clientUrl`/health until etcd reports `"health":"true"` (a member with quorum), or throw
 * after `timeoutMs` or as soon as `dead()` says the process is gone.
 */
export async function waitEtcdHealthy(clientUrl: string, timeoutMs: number, dead: () => boolean = () => false): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) })
      .then(async (r) => r.ok && ((await r.json()) as { health?: unknown }).health === 'true', () => false);
    if (ok) return;
    if (performance.now() > end || dead()) throw new Error(`etcd on ${clientUrl} did not become healthy within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A single-member etcd on loopback. Its data directory is a fresh temporary one removed by stop(),
 * unless `dataDir` is given (then it is kept, as the demo keeps its data). With `logPath` etcd's
 * output is appended there, else discarded.
 */
/**
 * One key's value through a plain-HTTP etcd's v3 JSON gateway (`host:port`), null when absent.
 * `timeoutMs` bounds the call (a frozen etcd never answers).
 */
export async function etcdGet(endpoint: string, key: string, timeoutMs = 2000): Promise<string | null> {
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  const r = await fetch(`http://${endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(key) }), signal: AbortSignal.timeout(timeoutMs) });
  const j = (await r.json()) as { kvs?: Array<{ value?: string }> };
  const v = j.kvs?.[0]?.value;
  return v === undefined ? null : Buffer.from(v, 'base64').toString();
}

/** One member's Maintenance Status through the v3 JSON gateway (plain HTTP `host:port`); null when it does not answer. */
export interface EtcdStatus { memberId: string; leader: string; raftTerm: number }
export async function etcdStatus(endpoint: string, timeoutMs = 1000): Promise<EtcdStatus | null> {
  try {
    const r = await fetch(`http://${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(timeoutMs) });
    const j = (await r.json()) as { header?: { member_id?: string }; leader?: string; raftTerm?: string };
    return { memberId: j.header?.member_id ?? '', leader: j.leader ?? '0', raftTerm: Number(j.raftTerm ?? 0) };
  } catch {
    return null;
  }
}

/** The index in `endpoints` of the member that reports itself the leader, or null (none answers so). */
export async function etcdLeaderIndex(endpoints: string[], timeoutMs = 1000): Promise<number | null> {
  const all = await Promise.all(endpoints.map((e) => etcdStatus(e, timeoutMs)));
  const i = all.findIndex((s) => s !== null && s.memberId !== '' && s.memberId === s.leader);
  return i < 0 ? null : i;
}

export async function startEtcd(o: { clientPort: number; peerPort: number; name?: string; dataDir?: string; logPath?: string; logLevel?: EtcdMember['logLevel']; extraListen?: string[]; enableV2?: boolean }): Promise<EtcdHandle> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} not found: run apt-get install etcd-server`);
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'pgha-etcd-'));
  const client = `http://127.0.0.1:${o.clientPort}`;
  const peer = `http://127.0.0.1:${o.peerPort}`;
  const name = o.name ?? 'test';
  const child = spawn(ETCD, etcdArgv({
    name, dataDir, clientUrl: client, peerUrl: peer, initialCluster: `${name}=${peer}`, ...(o.logLevel === undefined ? {} : { logLevel: o.logLevel }),
    ...(o.extraListen === undefined ? {} : { extraListen: o.extraListen }), ...(o.enableV2 === true ? { enableV2: true } : {}),
  }).slice(1),
    { stdio: o.logPath === undefined ? 'ignore' : ['ignore', 'pipe', 'pipe'] });
  if (o.logPath !== undefined) {
    const log = createWriteStream(o.logPath, { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  }
  const kill = () => { try { child.kill('SIGCONT'); child.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', kill);
  const stop = async () => {
    kill();
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    if (o.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  // etcd starts in well under a second here; 15 s covers a loaded CI machine.
  await waitEtcdHealthy(client, 15_000, () => child.exitCode !== null).catch(async (e: unknown) => { await stop(); throw e; });
  return {
    endpoint: `127.0.0.1:${o.clientPort}`, pid: child.pid ?? 0, stop,
    pause: () => child.kill('SIGSTOP'), resume: () => child.kill('SIGCONT'),
  };
}

/** The TLS flags of a member serving clients and peers with `tls`; `--client-cert-auth` unless turned off. */
export function tlsArgs(tls: EtcdTlsFiles, clientCertAuth = true): string[] {
  return ['--trusted-ca-file', tls.caFile, '--cert-file', tls.cert, '--key-file', tls.key,
    ...(clientCertAuth ? ['--client-cert-auth'] : []),
    '--peer-trusted-ca-file', tls.caFile, '--peer-cert-file', tls.cert, '--peer-key-file', tls.key, '--peer-client-cert-auth'];
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
  /** SIGKILL member i (0-based); its data directory stays for restart(). */
  kill(i: number): Promise<void>;
  /** Start member i again on its data directory (`--initial-cluster-state existing`). */
  restart(i: number): void;
  /** SIGSTOP / SIGCONT member i. */
  signal(i: number, sig: 'SIGSTOP' | 'SIGCONT'): void;
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
  const spawnMember = (m: (typeof members)[number], state: 'new' | 'existing') => spawn(ETCD, etcdArgv({
    name: m.name, dataDir: m.dataDir, clientUrl: m.client, peerUrl: m.peer, initialCluster, state, token: `pgha-test-${o.basePort}`,
    ...(o.tls === undefined ? {} : { tls: tlsArgs(o.tls, o.clientCertAuth !== false) }),
  }).slice(1), { stdio: 'ignore' });
  const children = members.map((m) => spawnMember(m, 'new'));
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
    async kill(i) {
      const c = children[i];
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      try { c.kill('SIGCONT'); c.kill('SIGKILL'); } catch { /* gone */ }
      await exited;
    },
    restart(i) {
      const m = members[i];
      if (m === undefined) throw new Error(`no etcd member ${i}`);
      children[i] = spawnMember(m, 'existing');
    },
    signal(i, sig) {
      try { children[i]?.kill(sig); } catch { /* gone */ }
    },
    enableAuth(password) {
      // --interactive=false reads the password from the argument, not a terminal; it is a test password.
      etcdctl(['user', 'add', `root:${password}`, '--interactive=false']);
      etcdctl(['user', 'grant-role', 'root', 'root']);
      etcdctl(['auth', 'enable']);
      user = ['--user', `root:${password}`];
    },
  };
}
