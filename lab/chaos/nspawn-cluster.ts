// The `systemd` backend of the fault-injection suite (backend.ts): three Debian 12 containers of
// the systemd lab (lab/nspawn.ts) booted with systemd as PID 1, each running the shipped
// systemd/pgha.service unchanged, so the watchdog that kills a frozen agent is systemd's own
// (WatchdogSec=1000ms, WatchdogSignal=SIGKILL, KillMode=mixed, Restart=on-failure), not an
// emulation. On the host, on the containers' bridge: three etcd members (their own addresses, so
// a partition can cut a container off from etcd alone) and HAProxy in front of the members.
//
// Network: 10.215.0.0/24 on bridge pghasc-br0; host 10.215.0.1 (HAProxy's checks and the clients
// come from there), etcd e1..e3 at 10.215.0.21-23 (allocated client and peer ports), members
// n1..n3 at 10.215.0.11-13. Partitions are iptables rules in a container's network namespace, set
// by the host's iptables through nsenter -n (the image has none). Everything is named `pghasc-`,
// so the systemd-unit test's lab (pghasd-, 10.213.0.0/24) is never touched; destroy() removes it
// all (containers, overlays, cgroups, the bridge, the work directories), also after a failed start.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { NspawnLab, labCgroupPids, spawnInCgroup, unifiedCgroupDir, type Machine } from '../nspawn.ts';
import { httpStatus, queryOnce, superuserClient, waitFor } from '../util.ts';
import { etcdArgv, waitEtcdHealthy } from '../etcd.ts';
import { startHaproxy } from '../haproxy.ts';
import { type ChaosBackend, type ChaosEtcd, type SyncMode } from './backend.ts';
import { primaries, waitHealthy } from '../cluster.ts';
import { BACKEND_KINDS } from './faults.ts';
import { CHAOS_PARAMETERS } from './cluster.ts';
import { allocatePorts } from '../ports.ts';

export const PREFIX = 'pghasc-';
export const SUBNET = '10.215.0';
const PG_PORT = 5432;
const DATA_DIR = '/var/lib/postgresql/15/pgha';
/** The work directory: under /var/tmp with the lab's prefix, so the lab's cleanup removes it too. */
const RUN_DIR = `/var/tmp/${PREFIX}run`;

function run(cmd: string, args: string[], allowFail = false): string {
  // Each call here (iptables, ip) returns in milliseconds; 30 s is a hung command.
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const p of pids) { try { process.kill(p, sig); } catch { /* gone */ } }
}

/** The pid a process has in its innermost PID namespace (the container's), from /proc/<pid>/status. */
function innerPid(hostPid: number): number | null {
  try {
    const line = readFileSync(`/proc/${hostPid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
    const f = (line ?? '').split(/\s+/).filter(Boolean);
    return f.length > 1 ? Number(f.at(-1)) : null;
  } catch {
    return null;
  }
}

export class NspawnChaosCluster implements ChaosBackend {
  readonly backend = 'systemd';
  readonly description = 'three Debian 12 containers booted by systemd-nspawn with systemd as PID 1, each running the shipped '
    + 'systemd/pgha.service unchanged, so the watchdog, KillMode=mixed and Restart=on-failure are systemd\'s own; '
    + 'the etcd members and HAProxy on the host, on the containers\' bridge';
  readonly kinds = BACKEND_KINDS.systemd;
  /** HAProxy's read-write port on the host (allocated; read-only on the next one). */
  readonly haproxyPort = allocatePorts(2);
  /** The etcd members' client port (allocated; peer port on the next one). */
  readonly #etcdPort = allocatePorts(2);
  readonly pgPort = PG_PORT;
  readonly dir = RUN_DIR;
  readonly lab: NspawnLab;
  readonly nodes: Machine[];
  readonly etcd: ChaosEtcd[] = [1, 2, 3].map((i) => ({ name: `e${i}`, ip: `${SUBNET}.${20 + i}` }));
  #etcdStarted = new Set<string>();
  #haproxy: ChildProcess | null = null;
  /** Watchdog firings per node in boots already ended, and every firing seen so far, in order. */
  #pastBoots = new Map<string, number>();
  #seen = new Map<string, number>();
  #kills: string[] = [];
  #frozen = new Map<string, number[]>();
  #destroyed = false;

  constructor(opts: { syncMode: SyncMode }) {
    const etcdHosts = this.etcd.map((e) => `${e.ip}:${this.#etcdPort}`);
    this.lab = new NspawnLab({
      nodes: 3, prefix: PREFIX, subnet: SUBNET, etcd: false, log: (m) => console.log(`[systemd backend] ${m}`),
      configure: (_i, cfg) => {
        cfg.scope = 'chaos';
        cfg.namespace = '/pgha-chaos';
        cfg.etcd.hosts = etcdHosts;
        // The same cluster settings as the netns backend (cluster.ts), at the default timing the
        // unit's WatchdogSec=1000ms is computed for.
        cfg.bootstrap.dcs.synchronous_mode = opts.syncMode;
        cfg.bootstrap.dcs.synchronous_mode_strict = false;
        cfg.bootstrap.dcs.postgresql.parameters = { ...CHAOS_PARAMETERS };
        cfg.postgresql.pg_ctl_timeout = 30;
        cfg.tags = { failover_priority: 1 };
      },
    });
    this.nodes = this.lab.machines;
    process.once('SIGINT', this.#onSignal);
    process.once('SIGTERM', this.#onSignal);
  }

  /** Ctrl-C or SIGTERM during a run: remove what the cluster made before exiting. */
  #onSignal = (sig: NodeJS.Signals) => {
    void this.destroy().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };

  async start(): Promise<void> {
    await this.lab.start();
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // The etcd members' addresses: secondary addresses of the bridge (the host's own traffic to
    // the containers keeps 10.215.0.1 as its source, so cutting etcd off does not cut HAProxy).
    for (const e of this.etcd) run('ip', ['addr', 'add', `${e.ip}/24`, 'dev', this.lab.bridge]);
    for (const e of this.etcd) this.startEtcd(e);
    // A 3-member etcd elects a leader within a few election timeouts (1 s each); 30 s covers CI.
    await waitEtcdHealthy(`http://${this.etcd[0]!.ip}:${this.#etcdPort}`, 30_000);
    // One member at a time, each joined before the next: three agents starting at once on this
    // 2-core machine can starve one past WatchdogSec right after READY=1 (docs/systemd.md).
    for (const m of this.nodes) {
      const r = this.lab.systemctl(m, 'enable', '--now', 'pgha');
      if (r.code !== 0) throw new Error(`${m.name}: systemctl enable --now pgha: ${r.stderr.trim()}`);
      // Bootstrap (initdb) or a clone of this small database takes seconds; 120 s is a member that never joins.
      const want = m === this.nodes[0] ? '/primary' : '/replica?replication_state=streaming';
      await waitFor(`${m.name} up (${want})`, async () => (await this.probe(m, want)) === 200, 120_000, 250);
    }
    this.#startHaproxy();
    // HAProxy's first checks (every 250 ms) and the members' streaming; 60 s covers a loaded machine.
    await this.waitHealthy(60_000);
  }

  #startHaproxy(): void {
    this.#haproxy = startHaproxy({
      dir: this.dir, readWritePort: this.haproxyPort, readOnlyPort: this.haproxyPort + 1, logPath: join(this.dir, 'haproxy.log'),
      members: this.nodes.map((n) => ({ name: n.name, pgHost: n.ip, pgPort: PG_PORT, apiHost: n.ip, apiPort: 8008 })),
      // In a lab cgroup, so that a crashed run's HAProxy is found and killed by the next one.
      spawner: (argv, log) => spawnInCgroup(`${PREFIX}haproxy`, argv, log!),
    }).child;
  }

  probe(n: Machine, path: string): Promise<number> { return httpStatus(`http://${n.ip}:8008${path}`); }

  async query<T = Record<string, unknown>>(n: Machine, sql: string, timeoutMs = 3000): Promise<T[]> {
    return (await queryOnce(superuserClient({ host: n.ip, port: PG_PORT, connectMs: timeoutMs, queryMs: timeoutMs }), sql)).rows as T[];
  }

  async rows<T = Record<string, unknown>>(n: Machine, sql: string, timeoutMs = 3000): Promise<T[]> { return this.query<T>(n, sql, timeoutMs); }

  async primaries(): Promise<Machine[]> { return primaries(this); }

  async waitHealthy(timeoutMs: number): Promise<Machine> {
    return waitHealthy(this, timeoutMs, { primarySeesStandbys: true, intervalMs: 250 });
  }

  /** `Watchdog timeout` lines of pgha.service in the running boot of `m`'s journal. */
  #bootKills(m: Machine): number {
    if (m.nspawn === null) return 0;
    const out = this.lab.exec(m, ['journalctl', '-b', '-u', 'pgha', '--no-pager', '-o', 'cat'], true).stdout;
    return (out.match(/Watchdog timeout/g) ?? []).length;
  }

  /** Before a boot ends: keep its count of watchdog firings. */
  #endBoot(m: Machine): void {
    this.#pastBoots.set(m.name, (this.#pastBoots.get(m.name) ?? 0) + this.#bootKills(m));
  }

  async watchdogKills(): Promise<string[]> {
    for (const m of this.nodes) {
      const total = (this.#pastBoots.get(m.name) ?? 0) + this.#bootKills(m);
      for (let k = this.#seen.get(m.name) ?? 0; k < total; k++) this.#kills.push(m.name);
      this.#seen.set(m.name, Math.max(total, this.#seen.get(m.name) ?? 0));
    }
    return [...this.#kills];
  }

  /** The host pid of a process of `m`'s pgha unit, by its pid inside the container. */
  #unitHostPid(m: Machine, inner: number): number | null {
    return this.lab.unitProcesses(m).map((p) => p.pid).find((p) => innerPid(p) === inner) ?? null;
  }

  /** The agent: the unit's main process. */
  #agentPid(m: Machine): number | null {
    const main = Number(this.lab.systemctl(m, 'show', '-p', 'MainPID', '--value', 'pgha').stdout.trim());
    return main > 0 ? this.#unitHostPid(m, main) : null;
  }

  async crashNode(m: Machine): Promise<void> {
    this.#endBoot(m);
    await this.lab.killMachine(m);
  }

  async restartNode(m: Machine): Promise<void> {
    this.lab.boot(m);
    await this.lab.waitBooted(m);
  }

  async powerOff(m: Machine): Promise<void> {
    this.#endBoot(m);
    this.lab.exec(m, ['systemctl', 'poweroff', '--no-block']);
    // The agent's clean stop (a handover, about a second) and systemd's shutdown; 60 s is a
    // container that does not halt (TimeoutStopSec=120 would be the unit's own bound).
    await this.lab.waitGone(m, 60_000);
  }

  freezeNode(m: Machine): void {
    const pids = this.lab.unitProcesses(m).map((p) => p.pid);
    this.#frozen.set(m.name, pids);
    signal(pids, 'SIGSTOP');
  }

  thawNode(m: Machine): void {
    signal(this.#frozen.get(m.name) ?? [], 'SIGCONT');
    this.#frozen.delete(m.name);
  }

  freezeAgent(m: Machine): void {
    const pid = this.#agentPid(m);
    if (pid === null) throw new Error(`${m.name}: pgha.service has no main process to freeze`);
    this.#frozen.set(m.name, [pid]);
    signal([pid], 'SIGSTOP');
  }

  thawAgent(m: Machine): void { this.thawNode(m); }

  killAgent(m: Machine): void {
    const pid = this.#agentPid(m);
    if (pid === null) throw new Error(`${m.name}: pgha.service has no main process to kill`);
    signal([pid], 'SIGKILL');
  }

  killPostmaster(m: Machine): void {
    const file = join(m.dir, 'root', DATA_DIR, 'postmaster.pid');
    const inner = existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : NaN;
    const pid = Number.isInteger(inner) && inner > 0 ? this.#unitHostPid(m, inner) : null;
    if (pid === null) throw new Error(`${m.name}: no running postmaster`);
    signal([pid], 'SIGKILL');
  }

  /** The whole container, its systemd too, frozen at once by the cgroup v2 freezer: a hung VM. */
  freezeMachine(m: Machine): void {
    writeFileSync(join(unifiedCgroupDir(`${PREFIX}${m.name}`), 'cgroup.freeze'), '1');
  }

  thawMachine(m: Machine): void {
    writeFileSync(join(unifiedCgroupDir(`${PREFIX}${m.name}`), 'cgroup.freeze'), '0');
  }

  /** iptables of the host, run in the container's network namespace. */
  #iptables(m: Machine, args: string[], allowFail = false): void {
    run('nsenter', ['-t', String(this.lab.leaderPid(m)), '-n', '--', 'iptables', ...args], allowFail);
  }

  partition(m: Machine, ips: string[], direction: 'both' | 'out'): void {
    for (const ip of ips) {
      this.#iptables(m, ['-A', 'OUTPUT', '-d', ip, '-j', 'DROP']);
      if (direction === 'both') this.#iptables(m, ['-A', 'INPUT', '-s', ip, '-j', 'DROP']);
    }
  }

  /**
   * Everything on the container's link dropped (not the link taken down: systemd-networkd in the
   * container would drop and later re-add its address, which is networkd's behaviour, not pgha's).
   */
  isolate(m: Machine): void {
    this.#iptables(m, ['-A', 'INPUT', '-i', 'host0', '-j', 'DROP']);
    this.#iptables(m, ['-A', 'OUTPUT', '-o', 'host0', '-j', 'DROP']);
  }

  lossy(m: Machine, p: number): void {
    for (const [chain, dir] of [['INPUT', '-i'], ['OUTPUT', '-o']] as const) {
      this.#iptables(m, ['-A', chain, dir, 'host0', '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP']);
    }
  }

  healNetwork(m: Machine): void {
    this.#iptables(m, ['-F', 'INPUT'], true);
    this.#iptables(m, ['-F', 'OUTPUT'], true);
  }

  startEtcd(e: ChaosEtcd): void {
    const dataDir = join(this.dir, `etcd-${e.name}`);
    const fresh = !this.#etcdStarted.has(e.name);
    this.#etcdStarted.add(e.name);
    const client = `http://${e.ip}:${this.#etcdPort}`;
    const peer = `http://${e.ip}:${this.#etcdPort + 1}`;
    spawnInCgroup(`${PREFIX}${e.name}`, etcdArgv({ name: e.name, dataDir, clientUrl: client, peerUrl: peer,
      initialCluster: this.etcd.map((x) => `${x.name}=http://${x.ip}:${this.#etcdPort + 1}`).join(','),
      state: fresh ? 'new' : 'existing', token: 'pghasc', logLevel: 'warn' }), join(this.dir, `etcd-${e.name}.log`));
  }

  killEtcd(e: ChaosEtcd): void { signal(labCgroupPids(`${PREFIX}${e.name}`), 'SIGKILL'); }
  signalEtcd(e: ChaosEtcd, sig: NodeJS.Signals): void { signal(labCgroupPids(`${PREFIX}${e.name}`), sig); }

  keepLogs(kept: string): void {
    for (const m of this.nodes) {
      if (m.nspawn === null) continue;
      const journal = this.lab.exec(m, ['journalctl', '-u', 'pgha', '--no-pager', '-o', 'short-precise'], true).stdout;
      writeFileSync(join(kept, `${m.name}.journal.log`), journal);
      try { writeFileSync(join(kept, `${m.name}.postgresql.log`), readFileSync(join(m.dir, 'root', `${DATA_DIR}.log`))); } catch { /* none */ }
    }
    for (const e of this.etcd) { try { writeFileSync(join(kept, `etcd-${e.name}.log`), readFileSync(join(this.dir, `etcd-${e.name}.log`))); } catch { /* none */ } }
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
    // A frozen cgroup's processes die of SIGKILL, but thaw first so nothing waits on them.
    for (const m of this.nodes) { try { this.thawMachine(m); } catch { /* not there */ } }
    this.#haproxy?.kill('SIGKILL');
    // Kills every container, etcd member and HAProxy by cgroup, removes the overlays, the bridge
    // (with the etcd addresses) and the work directories, this run's included.
    await this.lab.destroy();
  }
}
