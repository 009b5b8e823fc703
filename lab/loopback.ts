// A real three-node pgha cluster on loopback for integration tests: one etcd (or an etcd cluster,
// optionally with TLS: etcdMembers/etcdTls), three agents run as the postgres OS user (each
// managing its own PostgreSQL 15), optionally HAProxy. Everything it starts is stopped and
// removed by `destroy()`, which tests call from afterAll.
import type { ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { httpStatus, postmasterPid, queryOnce, sleep, superuserClient, tryKill } from './util.ts';
import { startEtcd, startEtcdCluster, type EtcdClusterHandle, type EtcdTlsFiles } from './etcd.ts';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { childPids } from '../src/postgres/datadir.ts';
import { apiRequest } from '../src/api/client.ts';
import type { ClientTls } from '../src/api/tls.ts';
import { startHaproxy } from './haproxy.ts';
import { spawnAgent } from './agent.ts';
import { healthy, primaries, waitHealthy, type Cluster, type HealthyOptions } from './cluster.ts';
import { nodeConfig, writeNodeConfig } from './config.ts';
import { sessionWriter, type Writer } from './probe.ts';
import { allocatePorts } from './ports.ts';

export type { Writer };

const AGENT_COMPILE_CACHE = join(tmpdir(), 'pgha-test-compile-cache');

export interface NodeHandle {
  name: string;
  pgPort: number;
  apiPort: number;
  dataDir: string;
  configPath: string;
  logPath: string;
  agent: ChildProcess | null;
}

export interface ClusterOptions {
  /**
   * First ports; node i uses base + i, etcd etcdPort and etcdPort + 1 (member i of an etcd
   * cluster etcdPort + 2i and + 2i + 1). Each one left out is allocated (lab/ports.ts).
   */
  etcdPort?: number;
  pgPortBase?: number;
  apiPortBase?: number;
  ttl?: number;
  loopWait?: number;
  retryTimeout?: number;
  fenceMargin?: number;
  /** Extra dynamic settings (bootstrap.dcs). */
  dcs?: Record<string, unknown>;
  /** Tags of node i (1-based). */
  tags?: (i: number) => Record<string, unknown>;
  /** Extra environment of node i's agent (1-based). */
  env?: (i: number) => Record<string, string>;
  /** Last word on node i's YAML (1-based): edit `cfg` in place (TLS files, extra sections). */
  configure?: (i: number, cfg: Record<string, any>) => void;
  /**
   * Run an etcd cluster of this many members (startEtcdCluster: member i on etcdPort + 2i) instead
   * of the single etcd, with TLS for clients and peers when `etcdTls` is given. Every node's
   * etcd.hosts lists all members; the TLS client settings are the `configure` hook's to set.
   */
  etcdMembers?: number;
  etcdTls?: EtcdTlsFiles;
  /**
   * The agents' REST API is HTTPS (set restapi.certfile through `configure`): status(), probe()
   * and the node lookups call https://127.0.0.1, verify with `caFile`, and present cert/key when given.
   */
  apiTls?: { caFile: string; certFile?: string; keyFile?: string };
  /** The single etcd: more client URLs to listen on, and its v2 API (vip-manager). */
  etcdExtra?: { extraListen?: string[]; enableV2?: boolean };
}

export class LoopbackCluster implements Cluster<NodeHandle> {
  readonly dir: string;
  readonly nodes: NodeHandle[];
  readonly etcdEndpoint: string;
  /** host:port of every etcd member (just etcdEndpoint without etcdMembers). */
  readonly etcdEndpoints: string[];
  #etcd: Awaited<ReturnType<typeof startEtcd>> | null = null;
  /** The etcd cluster when opts.etcdMembers is set (etcdctl, enableAuth). */
  etcdCluster: EtcdClusterHandle | null = null;
  #user = lookupOsUser('postgres');
  #opts: ClusterOptions;
  #extraKills: Array<() => void> = [];

  /** The ports in use (given or allocated): node i on pgPortBase + i and apiPortBase + i. */
  readonly ports: { etcd: number; pgBase: number; apiBase: number };

  constructor(opts: ClusterOptions) {
    this.#opts = opts;
    this.ports = {
      etcd: opts.etcdPort ?? allocatePorts(2 * (opts.etcdMembers ?? 1)),
      pgBase: opts.pgPortBase ?? allocatePorts(3) - 1,
      apiBase: opts.apiPortBase ?? allocatePorts(3) - 1,
    };
    this.dir = mkdtempSync(join(tmpdir(), 'pgha-cluster-'));
    mkdirSync(AGENT_COMPILE_CACHE, { recursive: true, mode: 0o700 });
    chownSync(AGENT_COMPILE_CACHE, this.#user.uid, this.#user.gid);
    chownSync(this.dir, this.#user.uid, this.#user.gid);
    const { etcd, pgBase, apiBase } = this.ports;
    this.etcdEndpoint = `127.0.0.1:${etcd}`;
    this.etcdEndpoints = opts.etcdMembers === undefined ? [this.etcdEndpoint]
      : Array.from({ length: opts.etcdMembers }, (_, i) => `127.0.0.1:${etcd + 2 * i}`);
    this.nodes = [1, 2, 3].map((i) => ({
      name: `node${i}`, pgPort: pgBase + i, apiPort: apiBase + i,
      dataDir: join(this.dir, `node${i}`, 'data'), configPath: join(this.dir, `node${i}.yml`),
      logPath: join(this.dir, `node${i}.agent.log`), agent: null,
    }));
    for (const n of this.nodes) this.#writeConfig(n);
  }

  #writeConfig(n: NodeHandle): void {
    const nodeDir = join(this.dir, n.name);
    mkdirSync(nodeDir, { recursive: true, mode: 0o700 });
    chownSync(nodeDir, this.#user.uid, this.#user.gid);
    const cfg = nodeConfig({
      scope: 'itest', name: n.name, namespace: '/pgha-test', apiListen: `127.0.0.1:${n.apiPort}`, pgListen: `127.0.0.1:${n.pgPort}`,
      dataDir: n.dataDir, socketDir: nodeDir, etcdHosts: this.etcdEndpoints, pgCtlTimeout: 30,
      dcs: {
        ttl: this.#opts.ttl ?? 3, loop_wait: this.#opts.loopWait ?? 0.5,
        retry_timeout: this.#opts.retryTimeout ?? 1, fence_margin: this.#opts.fenceMargin ?? 0.75,
      },
      tags: { failover_priority: 1, ...this.#opts.tags?.(Number(n.name.slice(4))) },
    });
    // A test's dcs may replace bootstrap.dcs.postgresql as a whole, as it always could.
    Object.assign(cfg.bootstrap.dcs, this.#opts.dcs);
    this.#opts.configure?.(Number(n.name.slice(4)), cfg);
    writeNodeConfig(n.configPath, cfg, this.#user);
  }

  async startEtcd(): Promise<void> {
    if (this.#opts.etcdMembers !== undefined) {
      this.etcdCluster = await startEtcdCluster({ basePort: this.ports.etcd, members: this.#opts.etcdMembers, ...(this.#opts.etcdTls ? { tls: this.#opts.etcdTls } : {}) });
      return;
    }
    this.#etcd = await startEtcd({ clientPort: this.ports.etcd, peerPort: this.ports.etcd + 1, ...this.#opts.etcdExtra });
  }

  /** SIGSTOP etcd: every call to it hangs until its deadline, as with a frozen or cut-off etcd. */
  pauseEtcd(): void {
    this.#etcd?.pause();
  }

  resumeEtcd(): void {
    this.#etcd?.resume();
  }

  /** Start an agent as the postgres OS user; its stdout/stderr go to node.logPath. */
  startAgent(n: NodeHandle): void {
    const child = spawnAgent({
      configPath: n.configPath, logPath: n.logPath, dir: this.dir, user: this.#user,
      env: {
        // The agents' compile cache (bin/pgha.js) outlives the cluster, as it does on a server,
        // so an agent started by a test or the bench is not the first start after an install.
        PGHA_COMPILE_CACHE: AGENT_COMPILE_CACHE,
        ...this.#opts.env?.(Number(n.name.slice(4))),
      },
    });
    n.agent = child;
    child.on('exit', () => { if (n.agent === child) n.agent = null; });
  }

  startAll(): void {
    for (const n of this.nodes) this.startAgent(n);
  }

  /** SIGKILL the agent and its PostgreSQL together (a process-level host crash). */
  killNode(n: NodeHandle): void {
    n.agent?.kill('SIGKILL');
    n.agent = null;
    this.killPostmaster(n, 'SIGKILL');
  }

  /**
   * SIGSTOP (or SIGCONT) every process of a node: the agent, its fencing process, the postmaster
   * and its children. A hung host: nothing it runs can act, and no connection is reset.
   */
  signalNode(n: NodeHandle, signal: 'SIGSTOP' | 'SIGCONT'): void {
    const agent = n.agent?.pid;
    const pids = agent === undefined ? [] : [agent, ...childPids(agent)];
    const pm = postmasterPid(n.dataDir);
    if (pm !== null) pids.push(pm, ...childPids(pm));
    for (const pid of pids) tryKill(pid, signal);
  }

  /** Signal the postmaster and, for SIGKILL, its children (as a crashed host would lose them). */
  killPostmaster(n: NodeHandle, signal: NodeJS.Signals): number | null {
    const pid = postmasterPid(n.dataDir);
    if (pid === null) return null;
    if (signal === 'SIGKILL') for (const child of childPids(pid)) tryKill(child, 'SIGKILL');
    tryKill(pid, signal);
    return pid;
  }

  async stopAgent(n: NodeHandle, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<void> {
    const child = n.agent;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await Promise.race([exited, sleep(timeoutMs)]);
    if (n.agent === child) child.kill('SIGKILL');
  }

  /**
   * HAProxy in front of the three nodes, rendered by src/proxy/haproxy.ts (checks every 250 ms,
   * with check-ssl when `apiTls` is given); killed by destroy().
   */
  startHaproxy(o: { readWritePort: number; readOnlyPort: number; apiTls?: { caFile: string; crtFile?: string } }): ChildProcess {
    const h = startHaproxy({
      dir: this.dir, readWritePort: o.readWritePort, readOnlyPort: o.readOnlyPort,
      members: this.nodes.map((n) => ({ name: n.name, pgHost: '127.0.0.1', pgPort: n.pgPort, apiHost: '127.0.0.1', apiPort: n.apiPort })),
      ...(o.apiTls === undefined ? {} : { apiTls: o.apiTls }),
    });
    this.onDestroy(h.kill);
    return h.child;
  }

  onDestroy(kill: () => void): void {
    this.#extraKills.push(kill);
  }

  /** The base URL of n's API as the tests reach it. */
  apiBase(n: NodeHandle): string {
    return `${this.#opts.apiTls === undefined ? 'http' : 'https'}://127.0.0.1:${n.apiPort}`;
  }

  #clientTls(): ClientTls | undefined {
    const t = this.#opts.apiTls;
    if (t === undefined) return undefined;
    return {
      ca: readFileSync(t.caFile), rejectUnauthorized: true,
      ...(t.certFile !== undefined && t.keyFile !== undefined ? { cert: readFileSync(t.certFile), key: readFileSync(t.keyFile) } : {}),
    };
  }

  async status(n: NodeHandle): Promise<Record<string, unknown> | null> {
    if (this.#opts.apiTls !== undefined) {
      return apiRequest(`${this.apiBase(n)}/status`, { tls: this.#clientTls(), timeoutMs: 1000 }).then((r) => JSON.parse(r.text) as Record<string, unknown>, () => null);
    }
    try {
      const r = await fetch(`http://127.0.0.1:${n.apiPort}/status`, { signal: AbortSignal.timeout(1000) });
      return (await r.json()) as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  async probe(n: NodeHandle, path: string): Promise<number> {
    if (this.#opts.apiTls !== undefined) {
      return apiRequest(`${this.apiBase(n)}${path}`, { tls: this.#clientTls(), timeoutMs: 1000 }).then((r) => r.status, () => 0);
    }
    return httpStatus(`http://127.0.0.1:${n.apiPort}${path}`);
  }

  /** The nodes whose API answers 200 on /primary. */
  async primaries(): Promise<NodeHandle[]> { return primaries(this); }

  /** The primary of a healthy cluster (lab/cluster.ts), or null. */
  async healthy(o: HealthyOptions<NodeHandle> = {}): Promise<NodeHandle | null> { return healthy(this, o); }

  /** Wait for a healthy cluster (lab/cluster.ts); the primary. */
  async waitHealthy(timeoutMs: number, o: HealthyOptions<NodeHandle> & { intervalMs?: number } = {}): Promise<NodeHandle> { return waitHealthy(this, timeoutMs, o); }

  /** The node whose API answers 200 on /primary, if exactly one does. */
  async primary(): Promise<NodeHandle | null> {
    const up = await this.primaries();
    return up.length === 1 ? (up[0] ?? null) : null;
  }

  async replicas(streaming = false): Promise<NodeHandle[]> {
    const path = streaming ? '/replica?replication_state=streaming' : '/replica';
    const codes = await Promise.all(this.nodes.map((n) => this.probe(n, path)));
    return this.nodes.filter((_, i) => codes[i] === 200);
  }

  client(n: NodeHandle, database = 'postgres'): pg.Client {
    return superuserClient({ host: '127.0.0.1', port: n.pgPort, database, connectMs: 2000, queryMs: 6000, statementMs: 5000 });
  }

  async query(n: NodeHandle, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
    return queryOnce(this.client(n), sql, params);
  }

  async rows<T = Record<string, unknown>>(n: NodeHandle, sql: string, timeoutMs = 6000): Promise<T[]> {
    const c = superuserClient({ host: '127.0.0.1', port: n.pgPort, connectMs: Math.min(2000, timeoutMs), queryMs: timeoutMs });
    return (await queryOnce(c, sql)).rows as T[];
  }

  logs(n: NodeHandle): string {
    return existsSync(n.logPath) ? readFileSync(n.logPath, 'utf8') : '';
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) {
      n.agent?.kill('SIGKILL');
      n.agent = null;
      this.killPostmaster(n, 'SIGKILL');
    }
    for (const k of this.#extraKills) k();
    await this.#etcd?.stop();
    await this.etcdCluster?.stop();
    if (process.env.PGHA_KEEP_TEST_DIRS !== '1') rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Write ids 1, 2, ... into `table` (created if absent) on one session to `n`'s PostgreSQL, pausing
 * `pauseMs` between writes, until stopped or a write fails (lab/probe.ts sessionWriter).
 */
export function startWriter(n: NodeHandle, table: string, o: { queryMs: number; pauseMs?: number }): Writer {
  return sessionWriter({ port: n.pgPort, table, ...o });
}

/** The loopback cluster under its historical name (tests written before lab/ use it). */
export { LoopbackCluster as TestCluster };
