// The fault-injection cluster: three etcd members (e1..e3) and three database nodes (n1..n3),
// each in its own network namespace of a NetLab, plus HAProxy in the root namespace in front of
// the nodes. Each node's directory (socket, data directory, agent log) is a small tmpfs, so a
// test can fill the disk under one node. Each agent runs as systemd/pgha.service would run it:
// with systemd's watchdog (WatchdogSec=1000ms, whole unit SIGKILLed when it fires, restarted
// RestartSec=2 s later), emulated outside the node by systemd-watchdog.py. `destroy()` removes every process, mount, namespace and
// directory, and is safe to call twice. The `netns` backend of the suite (backend.ts).
import { chownSync, copyFileSync, readdirSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statfsSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startHaproxy } from '../haproxy.ts';
import { spawnAgent } from '../agent.ts';
import { nodeConfig, writeNodeConfig } from '../config.ts';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import { pidFromFile } from '../../src/postgres/datadir.ts';
import { etcdArgv, etcdLeaderIndex, waitEtcdHealthy } from '../etcd.ts';
import { NetLab, SUBNET, signalHost, type Host } from '../netlab.ts';
import { REPO, httpStatus, queryOnce, superuserClient } from '../util.ts';
import { type ChaosBackend, type DelayLink, type SyncMode } from './backend.ts';
import { API_PROXY_PORT, DelayLinks, ETCD_PROXY_PORT, PG_PROXY_PORT } from './delay-links.ts';
import { healthy, primaries, waitHealthy } from '../cluster.ts';
import { BACKEND_KINDS } from './faults.ts';
import { allocatePorts } from '../ports.ts';

export const PG_PORT = 5432;
export const API_PORT = 8008;
/** The chaos clusters' PostgreSQL (netns and nspawn alike): small WAL, so a node's tmpfs holds it. */
export const CHAOS_PARAMETERS = { shared_buffers: '16MB', max_connections: 40, max_wal_size: '64MB', min_wal_size: '32MB' };
/** Each node's tmpfs: PostgreSQL keeps up to wal_keep_size (128 MB) + max_wal_size (64 MB) of WAL, more around promotions and rewinds; 384 MB filled up in a long run (chaos seed 7). */
const NODE_FS_SIZE = '1g';
/** systemd/pgha.service: WatchdogSec=1000ms, RestartSec=2. */
export const WATCHDOG_MS = 1000;
const RESTART_MS = 2000;
/** sd-event may fire a timer up to 250 ms late (its default accuracy): the lab takes the worst case. */
const WATCHDOG_SLACK_MS = 250;
const WATCHDOG_PY = join(REPO, 'lab/chaos/systemd-watchdog.py');
/** Preloaded into each agent so the fault clock-jump-primary can move its wall clock. */
const CLOCK_SHIFT = join(REPO, 'lab/chaos/clock-shift.mjs');

/**
 * PGHA_CHAOS_DIRECT=1: no delay proxies (the agents reach etcd and each other directly, as before
 * they existed), to measure that the proxies at delay 0 change nothing; the delay faults then fail.
 */
const PROXIED = process.env.PGHA_CHAOS_DIRECT !== '1';

/** The emulated systemd watchdog killed a node's unit. */
export interface WatchdogFiring { node: string; atMs: number; sinceLastPetMs: number }

export type { SyncMode };

export interface ChaosOptions {
  syncMode: SyncMode;
  strict?: boolean;
  ttl?: number;
}

export interface DbNode { name: string; ip: string; host: Host; dir: string; dataDir: string; logPath: string; agent: ChildProcess | null }

export class ChaosCluster implements ChaosBackend {
  readonly backend = 'netns';
  readonly description = 'every node and etcd member in its own network namespace, the agents started as plain processes, systemd\'s watchdog emulated outside each node by lab/chaos/systemd-watchdog.py';
  readonly kinds = BACKEND_KINDS.netns;
  /** HAProxy's read-write port in the root namespace (allocated; read-only on the next one). */
  readonly haproxyPort = allocatePorts(2);
  readonly pgPort = PG_PORT;
  readonly dir: string;
  readonly lab: NetLab;
  readonly etcd: Host[];
  readonly nodes: DbNode[];
  #haproxy: ChildProcess | null = null;
  #etcdProcs = new Map<string, ChildProcess>();
  #user = lookupOsUser('postgres');
  #opts: ChaosOptions;
  #destroyed = false;
  #unitStarts = 0;
  #watchdogs = new Set<ChildProcess>();
  /** The emulated watchdog of each node's current agent start. */
  #watchdogOf = new Map<string, ChildProcess>();
  #restarts = new Set<NodeJS.Timeout>();
  readonly watchdogFirings: WatchdogFiring[] = [];
  /** The delay proxies on the agents' etcd traffic and between the nodes (delay-links.ts). */
  readonly links: DelayLinks;

  constructor(opts: ChaosOptions) {
    this.#opts = opts;
    this.dir = mkdtempSync(join(tmpdir(), 'pgha-chaos-'));
    chownSync(this.dir, this.#user.uid, this.#user.gid);
    this.lab = new NetLab();
    this.links = new DelayLinks(this.lab, this.dir, this.#user);
    this.etcd = [1, 2, 3].map((i) => this.lab.addHost(`e${i}`, 20 + i));
    this.nodes = [1, 2, 3].map((i) => {
      const host = this.lab.addHost(`n${i}`, 10 + i);
      const dir = join(this.dir, `node${i}`);
      mkdirSync(dir, { mode: 0o700 });
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${NODE_FS_SIZE},mode=0700`, `pghac-node${i}`, dir]);
      chownSync(dir, this.#user.uid, this.#user.gid);
      return { name: `node${i}`, ip: host.ip, host, dir, dataDir: join(dir, 'data'), logPath: join(this.dir, `node${i}.agent.log`), agent: null };
    });
    process.once('SIGINT', this.#onSignal);
    process.once('SIGTERM', this.#onSignal);
  }

  /** Ctrl-C or SIGTERM during a run: remove what the cluster made before exiting. */
  #onSignal = (sig: NodeJS.Signals) => {
    this.#teardown(false);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };

  /** Kill everything, detach the node filesystems (lazily: busy or not) and remove the directory. */
  #teardown(keep: boolean): void {
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
    this.#haproxy?.kill('SIGKILL');
    for (const t of this.#restarts) clearTimeout(t);
    for (const w of this.#watchdogs) w.kill('SIGKILL');
    this.lab.destroy();
    for (const n of this.nodes) { try { execFileSync('umount', ['-l', n.dir], { stdio: 'ignore' }); } catch { /* not mounted */ } }
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }

  /** The agents reach etcd through each member's delay proxy. */
  get etcdEndpoints(): string[] { return this.etcd.map((h) => `${h.ip}:${PROXIED ? ETCD_PROXY_PORT : 2379}`); }

  /** Start the host's delay proxy unless it runs (delay-links.ts). */
  #ensureProxy(h: Host, kind: 'etcd' | 'node'): void {
    if (PROXIED) this.links.ensure(h, DelayLinks.routes(h, kind, { pg: PG_PORT, api: API_PORT }));
  }

  startEtcdMember(h: Host): void {
    const dataDir = join(this.dir, `etcd-${h.name}`);
    const fresh = !existsSync(dataDir);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const initial = this.etcd.map((e) => `${e.name}=http://${e.ip}:2380`).join(',');
    const log = createWriteStream(join(this.dir, `etcd-${h.name}.log`), { flags: 'a' });
    const child = this.lab.spawnIn(h, etcdArgv({ name: h.name, dataDir, clientUrl: `http://${h.ip}:2379`, peerUrl: `http://${h.ip}:2380`,
      initialCluster: initial, state: fresh ? 'new' : 'existing', token: 'pghac', logLevel: 'warn' }), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.#etcdProcs.set(h.name, child);
    this.#ensureProxy(h, 'etcd');
  }

  #writeConfig(n: DbNode): string {
    const path = join(this.dir, `${n.name}.yml`);
    const ip = n.host.ip;
    const cfg = nodeConfig({
      scope: 'chaos', name: n.name, namespace: '/pgha-chaos', apiListen: `${ip}:${API_PORT}`, pgListen: `${ip}:${PG_PORT}`,
      dataDir: n.dataDir, socketDir: n.dir, etcdHosts: this.etcdEndpoints, pgCtlTimeout: 30, tags: { failover_priority: 1 },
      dcs: {
        // The timing defaults (ttl, loop_wait, retry_timeout, fence_margin) unless a test asks.
        ...(this.#opts.ttl === undefined ? {} : { ttl: this.#opts.ttl }),
        synchronous_mode: this.#opts.syncMode, synchronous_mode_strict: this.#opts.strict ?? false,
      },
      parameters: CHAOS_PARAMETERS,
      // The clients run in the root namespace and reach PostgreSQL over the bridge.
      pgHba: [
        'local all postgres scram-sha-256',
        'host all postgres 127.0.0.1/32 scram-sha-256',
        `host all postgres ${SUBNET}.0/24 scram-sha-256`,
        `host replication replicator ${SUBNET}.0/24 scram-sha-256`,
        `host all rewinder ${SUBNET}.0/24 scram-sha-256`,
      ],
    });
    // Peers reach this node's PostgreSQL and REST API through its delay proxy; HAProxy and the clients keep the direct ports.
    if (PROXIED) {
      cfg.postgresql.connect_address = `${ip}:${PG_PROXY_PORT}`;
      cfg.restapi.connect_address = `${ip}:${API_PROXY_PORT}`;
    }
    // The suite checks pgha's safety with every guard on (freeze-thaw-node relies on it).
    cfg.postgresql.lease_witness = true;
    writeNodeConfig(path, cfg, this.#user);
    return path;
  }

  startAgent(n: DbNode): void {
    if (n.agent !== null || this.#destroyed) return;
    this.#ensureProxy(n.host, 'node');
    // A new socket per start, as systemd gives each start of a unit a fresh watchdog.
    const socket = join(this.dir, `${n.name}.notify.${++this.#unitStarts}`);
    const child = spawnAgent({
      configPath: this.#writeConfig(n), logPath: n.logPath, dir: this.dir, user: this.#user,
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: String(WATCHDOG_MS * 1000), NODE_OPTIONS: `--import=${CLOCK_SHIFT}`, PGHA_TEST_CLOCK_FILE: this.#clockFile(n) },
      spawner: (argv, user, opts) => this.lab.spawnIn(n.host, argv, { ...opts, ...(user === undefined ? {} : { user }), stdio: ['ignore', 'pipe', 'pipe'] }),
    });
    n.agent = child;
    child.on('exit', () => { if (n.agent === child) n.agent = null; });
    if (child.pid !== undefined) this.#watchdogFor(n, socket, child.pid);
  }

  /** systemd's watchdog for this start of the node's agent; on firing, a restart after RestartSec. */
  #watchdogFor(n: DbNode, socket: string, pid: number): void {
    const wd = spawn('python3', [WATCHDOG_PY, socket, String(pid), n.host.ns, String(WATCHDOG_MS), String(WATCHDOG_SLACK_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#watchdogs.add(wd);
    this.#watchdogOf.set(n.name, wd);
    wd.on('exit', () => this.#watchdogs.delete(wd));
    const log = createWriteStream(join(this.dir, `${n.name}.watchdog.log`), { flags: 'a' });
    wd.stderr?.pipe(log);
    let buf = '';
    wd.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.write(`${new Date().toISOString()} pid ${pid} ${line}\n`);
        const fired = /^fired (\d+)$/.exec(line);
        if (fired === null) continue;
        this.watchdogFirings.push({ node: n.name, atMs: Date.now(), sinceLastPetMs: Number(fired[1]) });
        const t = setTimeout(() => { this.#restarts.delete(t); this.startAgent(n); }, RESTART_MS);
        this.#restarts.add(t);
      }
    });
  }

  #startHaproxy(): void {
    this.#haproxy = startHaproxy({
      dir: this.dir, readWritePort: this.haproxyPort, readOnlyPort: this.haproxyPort + 1,
      members: this.nodes.map((n) => ({ name: n.name, pgHost: n.host.ip, pgPort: PG_PORT, apiHost: n.host.ip, apiPort: API_PORT })),
    }).child;
  }

  async start(): Promise<void> {
    for (const h of this.etcd) this.startEtcdMember(h);
    // A 3-member etcd elects a leader within a few election timeouts (1 s each); 30 s covers CI.
    await waitEtcdHealthy(`http://${this.etcd[0]!.ip}:2379`, 30_000);
    for (const n of this.nodes) this.#ensureProxy(n.host, 'node');
    await this.links.ready();
    for (const n of this.nodes) this.startAgent(n);
    this.#startHaproxy();
    // Bootstrap (initdb) plus two clones; 90 s covers a busy 2-core machine.
    await this.waitHealthy(90_000);
  }

  async probe(n: DbNode, path: string): Promise<number> {
    return httpStatus(`http://${n.host.ip}:${API_PORT}${path}`);
  }

  client(n: DbNode, timeoutMs = 3000): pg.Client {
    return superuserClient({ host: n.host.ip, port: PG_PORT, connectMs: timeoutMs, queryMs: timeoutMs });
  }

  async query<T = Record<string, unknown>>(n: DbNode, sql: string, timeoutMs = 3000): Promise<T[]> {
    return (await queryOnce(this.client(n, timeoutMs), sql)).rows as T[];
  }

  async rows<T = Record<string, unknown>>(n: DbNode, sql: string, timeoutMs = 3000): Promise<T[]> { return this.query<T>(n, sql, timeoutMs); }

  /** The nodes whose API answers 200 on /primary. */
  async primaries(): Promise<DbNode[]> { return primaries(this); }

  /** One primary by /primary, the two others streaming from it (and in its pg_stat_replication). */
  async healthy(): Promise<DbNode | null> { return healthy(this, { primarySeesStandbys: true }); }

  async waitHealthy(timeoutMs: number): Promise<DbNode> {
    return waitHealthy(this, timeoutMs, { primarySeesStandbys: true, intervalMs: 250 });
  }

  /** SIGKILL every process of a node (agent, fencing process, PostgreSQL): a host crash. */
  async crashNode(n: DbNode): Promise<void> {
    signalHost(n.host, 'SIGKILL');
    n.agent = null;
  }

  async restartNode(n: DbNode): Promise<void> { this.startAgent(n); }

  freezeNode(n: DbNode): void { signalHost(n.host, 'SIGSTOP'); }
  thawNode(n: DbNode): void { signalHost(n.host, 'SIGCONT'); }
  freezeAgent(n: DbNode): void { this.signalAgent(n, 'SIGSTOP'); }
  signalWatchdog(n: DbNode, signal: 'SIGSTOP' | 'SIGCONT'): void {
    const pid = this.#watchdogOf.get(n.name)?.pid;
    if (pid !== undefined) { try { process.kill(pid, signal); } catch { /* gone */ } }
  }
  thawAgent(n: DbNode): void { this.signalAgent(n, 'SIGCONT'); }

  partition(n: DbNode, ips: string[], direction: 'both' | 'out'): void { this.lab.partition(n.host, ips, direction); }
  isolate(n: DbNode): void { this.lab.isolate(n.host); }
  lossy(n: DbNode, p: number): void { this.lab.lossy(n.host, p); }
  healNetwork(n: DbNode): void { this.lab.heal(n.host); }
  delayLink(n: DbNode, link: DelayLink, ms: number): void {
    if (!PROXIED) throw new Error('PGHA_CHAOS_DIRECT=1: no delay proxies to delay through');
    this.links.delay(n.host, link, ms, this.etcd, this.nodes.map((x) => x.host));
  }

  /** The agent process alone (not its fencing process, not PostgreSQL). */
  signalAgent(n: DbNode, signal: NodeJS.Signals): void {
    if (n.agent?.pid !== undefined) { try { process.kill(n.agent.pid, signal); } catch { /* gone */ } }
  }

  #clockFile(n: DbNode): string { return join(this.dir, `${n.name}.clock-offset`); }

  /**
   * Jump the node's agent's wall clock to `offsetMs` from the real one (clock-shift.mjs). Its
   * monotonic clock does not move, as on a real host. Also holds for an agent started meanwhile.
   */
  shiftClock(n: DbNode, offsetMs: number): void {
    writeFileSync(this.#clockFile(n), String(offsetMs));
    this.signalAgent(n, 'SIGUSR2');
  }

  killPostmaster(n: DbNode): void {
    const pid = pidFromFile(n.dataDir);
    if (pid !== null) { try { process.kill(pid, 'SIGKILL'); } catch { /* not running */ } }
  }

  signalEtcd(h: Host, signal: NodeJS.Signals): void { signalHost(h, signal); }

  killEtcd(h: Host): void {
    signalHost(h, 'SIGKILL');
    this.#etcdProcs.delete(h.name);
  }

  startEtcd(h: Host): void { this.startEtcdMember(h); }

  async etcdLeader(): Promise<Host | null> {
    // 1 s per member: a live member answers its status in milliseconds, a dead or frozen one never.
    const i = await etcdLeaderIndex(this.etcdEndpoints, 1000);
    return i === null ? null : (this.etcd[i] ?? null);
  }

  /** Fill the node's filesystem, leaving `leaveBytes` free. Returns the filler's path. */
  fillDisk(n: DbNode, leaveBytes = 0): string {
    const path = join(n.dir, 'chaos-filler');
    // PostgreSQL writes WAL between statfs and fallocate, and a tmpfs refuses a fallocate longer
    // than what is free with ENOSPC, allocating nothing (chaos seed 1, fault 2): try again from a
    // fresh statfs, 1 MiB shorter each time; WAL fills what is left within moments anyway.
    for (let attempt = 0; ; attempt++) {
      const st = statfsSync(n.dir);
      const free = Number(st.bavail) * Number(st.bsize);
      try {
        execFileSync('fallocate', ['-l', String(Math.max(4096, free - leaveBytes - attempt * 1024 * 1024)), path], { stdio: 'pipe' });
        return path;
      } catch (err) {
        if (attempt >= 5) throw err;
      }
    }
  }

  freeDisk(n: DbNode): void { rmSync(join(n.dir, 'chaos-filler'), { force: true }); }

  logs(n: DbNode): string { return existsSync(n.logPath) ? readFileSync(n.logPath, 'utf8') : ''; }
  agentLog(n: DbNode): string { return this.logs(n); }

  async watchdogKills(): Promise<string[]> { return this.watchdogFirings.map((f) => f.node); }

  keepLogs(kept: string): void {
    for (const f of readdirSync(this.dir)) if (f.endsWith('.log')) copyFileSync(join(this.dir, f), join(kept, f));
    // PostgreSQL's own log sits next to each data directory, on the node's tmpfs.
    for (const n of this.nodes) { try { copyFileSync(`${n.dataDir}.log`, join(kept, `${n.name}.postgresql.log`)); } catch { /* none */ } }
  }

  async destroy(keep = process.env.PGHA_KEEP_TEST_DIRS === '1'): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#teardown(keep);
  }
}
