// The systemd lab: N Debian 12 containers booted with `systemd-nspawn -b` (systemd as PID 1), on a
// bridge the lab creates (by default 10.213.0.1 on the host, member i at 10.213.0.(10+i); the
// subnet and the name prefix are options, so two labs can exist at once), each running pgha
// from the shipped systemd/pgha.service, copied unchanged to /etc/systemd/system. One etcd runs on
// the host at 10.213.0.1:2379. pgha itself is this checkout, bind-mounted read-only at /opt/pgha
// (the path the unit expects), with its node_modules (Node 24).
//
// This host has no systemd and no machined (nspawn: --register=no --keep-unit), and it runs the
// hybrid cgroup layout. Each container is started inside its own cgroup (pghasd-<name> in the
// name=systemd and unified hierarchies), so the systemd in one container never sees another's
// units, and everything a container left behind can be found and killed by cgroup.
// Each container boots from an overlay: the cached image (nspawn-image.ts) below, its own upper
// directory above, so a member's data survives a power-off and the next boot.
// Everything carries the prefix (default `pghasd-`); destroy() and cleanupStale() remove it all.
import { PASSWORDS, REPO as LAB_REPO, httpStatus, queryOnce, superuserClient } from './util.ts';
import type { Cluster } from './cluster.ts';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, realpathSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { etcdArgv, waitEtcdHealthy } from './etcd.ts';
import { nodeConfig } from './config.ts';
import { ensureImage } from './nspawn-image.ts';

export const PREFIX = 'pghasd-';
export const SUBNET = '10.213.0';
export const HOST_IP = `${SUBNET}.1`;
const WORK = '/var/tmp';
const CGROUP_TREES = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'];
/** The repository root, without a trailing slash (bind-mounted at /opt/pgha). */
export const REPO = LAB_REPO.replace(/\/$/, '');
export { PASSWORDS };
export const DATA_DIR = '/var/lib/postgresql/15/pgha';

export interface Machine {
  name: string;
  ip: string;
  dir: string;
  nspawn: ChildProcess | null;
}

function run(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every pid in a cgroup and its descendants (name=systemd hierarchy). */
function cgroupPids(group: string): number[] {
  const out: number[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.push(Number(l));
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
  };
  walk(join(CGROUP_TREES[0]!, group));
  return out;
}

function removeCgroup(group: string): void {
  const rm = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rm(join(dir, e.name));
    try { rmdirSync(dir); } catch { /* still populated: killed processes take a moment */ }
  };
  for (const t of CGROUP_TREES) rm(join(t, group));
}

/** SIGKILL everything in a group, then remove it (polls: killed processes leave the cgroup asynchronously). */
async function killCgroup(group: string): Promise<void> {
  // Processes leave the cgroup within milliseconds of SIGKILL; 10 s covers a container's worth of
  // exits on a loaded machine.
  const end = performance.now() + 10_000;
  for (;;) {
    const pids = cgroupPids(group);
    for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    if (pids.length === 0 || performance.now() > end) break;
    await sleep(100);
  }
  removeCgroup(group);
}

function killLabProcessesSync(prefix: string): void {
  const t = CGROUP_TREES[0]!;
  if (!existsSync(t)) return;
  for (const e of readdirSync(t)) {
    if (!e.startsWith(prefix)) continue;
    for (const p of cgroupPids(e)) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  }
}

/** Remove what an earlier run left: processes (by cgroup), mounts, the bridge, work directories. */
export async function cleanupStale(prefix = PREFIX): Promise<void> {
  for (const t of CGROUP_TREES) {
    if (!existsSync(t)) continue;
    for (const e of readdirSync(t)) if (e.startsWith(prefix)) await killCgroup(e);
  }
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => (f[0] ?? '').startsWith(prefix));
  for (const f of mounts) if (f[1] !== undefined) run('umount', ['-l', f[1]], true);
  run('ip', ['link', 'del', `${prefix}br0`], true);
  for (const e of readdirSync(WORK)) if (e.startsWith(prefix)) rmSync(join(WORK, e), { recursive: true, force: true });
  for (const e of existsSync('/run/systemd/nspawn/propagate') ? readdirSync('/run/systemd/nspawn/propagate') : []) {
    if (e.startsWith(prefix)) rmSync(join('/run/systemd/nspawn/propagate', e), { recursive: true, force: true });
  }
}

/** Every pid in the lab's cgroup `group` (e.g. `<prefix>n1/payload`: a container's processes). */
export function labCgroupPids(group: string): number[] { return cgroupPids(group); }

/** The v2 (unified) directory of a lab cgroup, for cgroup.freeze. */
export function unifiedCgroupDir(group: string): string { return join(CGROUP_TREES[1]!, group); }

/** Start `args` inside the (new) cgroup `group` of both hierarchies, by a sh that moves itself there and execs. */
export function spawnInCgroup(group: string, args: string[], logFile: string): ChildProcess {
  for (const t of CGROUP_TREES) mkdirSync(join(t, group), { recursive: true });
  const fd = openSync(logFile, 'a');
  const child = spawn('sh', ['-c', 'for t in "$1" "$2"; do echo $$ > "$t/cgroup.procs" || exit 97; done; shift 2; exec "$@"', 'sh',
    ...CGROUP_TREES.map((t) => join(t, group)), ...args], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return child;
}

export interface LabOptions {
  nodes: number;
  /** Name prefix of everything the lab makes (default `pghasd-`); at most 7 characters (interface names). */
  prefix?: string;
  /** The /24 the bridge and members use, as its first three octets (default 10.213.0). */
  subnet?: string;
  /** Start the lab's own single etcd at <subnet>.1:2379 (default true). */
  etcd?: boolean;
  /**
   * false: no checkout at /opt/pgha and no unit in /etc/systemd/system; the test installs pgha
   * itself (the Debian package test). Default true.
   */
  checkout?: boolean;
  /** The host etcd's client port (its peer port is the next one). Default 2379. */
  etcdPort?: number;
  /**
   * A path inside every container where one host directory (`/var/tmp/<prefix>shared`, owned by
   * the containers' postgres user, mode 0700) is bind-mounted read-write: storage every member
   * reaches at the same path, as an NFS mount would be (a pgBackRest repository). Default: none.
   */
  shared?: string;
  /** Last word on member i's pgha.yml (1-based). */
  configure?: (i: number, cfg: Record<string, any>) => void;
  log?: (msg: string) => void;
}

export class NspawnLab implements Cluster<Machine> {
  readonly machines: Machine[];
  readonly prefix: string;
  readonly subnet: string;
  readonly hostIp: string;
  readonly bridge: string;
  image = '';
  #etcd: ChildProcess | null = null;
  #opts: LabOptions;
  #onExit = () => killLabProcessesSync(this.prefix);

  constructor(opts: LabOptions) {
    this.#opts = opts;
    this.prefix = opts.prefix ?? PREFIX;
    this.subnet = opts.subnet ?? SUBNET;
    this.hostIp = `${this.subnet}.1`;
    this.bridge = `${this.prefix}br0`;
    this.machines = Array.from({ length: opts.nodes }, (_, k) => ({
      name: `n${k + 1}`, ip: `${this.subnet}.${11 + k}`, dir: join(WORK, `${this.prefix}n${k + 1}`), nspawn: null,
    }));
  }

  async start(): Promise<void> {
    this.image = ensureImage(this.#opts.log);
    await cleanupStale(this.prefix);
    // If the test process ends without destroy() (a crash, a worker killed on timeout), at least
    // no container keeps running: SIGKILL everything in the lab's cgroups. The mounts, the bridge
    // and the directories go at the next start (cleanupStale).
    process.once('exit', this.#onExit);
    run('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${this.hostIp}/24`, 'dev', this.bridge]);
    run('ip', ['link', 'set', this.bridge, 'up']);
    if (this.#opts.etcd !== false) await this.#startEtcd();
    for (const m of this.machines) this.#prepare(m);
    if (this.#opts.shared !== undefined) {
      const ids = this.#postgresIds(this.machines[0]!);
      mkdirSync(this.sharedHostDir, { mode: 0o700 });
      chownSync(this.sharedHostDir, ids.uid, ids.gid);
    }
    for (const m of this.machines) this.boot(m);
    await Promise.all(this.machines.map((m) => this.waitBooted(m)));
  }

  /** The host directory behind `shared` (removed with the lab: it carries the prefix). */
  // The Cluster interface of lab/cluster.ts (healthy(), waitHealthy()) over the containers.
  get nodes(): readonly Machine[] { return this.machines; }
  /** GET on the member's REST API (:8008, from the host); 0 without an answer within `timeoutMs`. */
  probe(m: Machine, path: string, timeoutMs = 1000): Promise<number> { return httpStatus(`http://${m.ip}:8008${path}`, timeoutMs); }
  async rows<T = Record<string, unknown>>(m: Machine, sql: string, timeoutMs = 3000): Promise<T[]> {
    return (await queryOnce(superuserClient({ host: m.ip, port: 5432, connectMs: timeoutMs, queryMs: timeoutMs }), sql)).rows as T[];
  }

  get sharedHostDir(): string { return join(WORK, `${this.prefix}shared`); }

  async #startEtcd(): Promise<void> {
    const dir = join(WORK, `${this.prefix}etcd`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const port = this.#opts.etcdPort ?? 2379;
    const client = `http://${this.hostIp}:${port}`;
    const peer = `http://${this.hostIp}:${port + 1}`;
    this.#etcd = spawnInCgroup(`${this.prefix}etcd`, etcdArgv({ name: 'lab', dataDir: join(dir, 'data'), clientUrl: client, peerUrl: peer,
      initialCluster: `lab=${peer}` }), join(dir, 'etcd.log'));
    // etcd is healthy within a second here; 15 s covers a loaded CI machine.
    await waitEtcdHealthy(client, 15_000);
  }

  configFor(m: Machine): Record<string, any> {
    const cfg = nodeConfig({
      scope: 'sdlab', name: m.name, namespace: '/pgha-sdlab', apiListen: `${m.ip}:8008`, pgListen: `${m.ip}:5432`,
      dataDir: DATA_DIR, etcdHosts: [`${this.hostIp}:${this.#opts.etcdPort ?? 2379}`],
      // ttl, loop_wait, retry_timeout and fence_margin stay at their defaults: the ones the
      // unit's WatchdogSec=1000ms is computed for.
      pgHba: [
        'local all postgres scram-sha-256',
        `host all postgres ${this.subnet}.0/24 scram-sha-256`,
        'host all postgres 127.0.0.1/32 scram-sha-256',
        'host replication replicator all scram-sha-256',
        'host all rewinder all scram-sha-256',
      ],
    });
    this.#opts.configure?.(Number(m.name.slice(1)), cfg);
    return cfg;
  }

  /** The container's postgres user (its uid in the image, not the host's). */
  #postgresIds(m: Machine): { uid: number; gid: number } {
    const line = readFileSync(join(m.dir, 'root/etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    const f = (line ?? '').split(':');
    if (f.length < 4) throw new Error('no postgres user in the image');
    return { uid: Number(f[2]), gid: Number(f[3]) };
  }

  /** Write pgha.yml into the container (as its postgres user, mode 0600) and pgha.service unchanged. */
  writeConfig(m: Machine, cfg: Record<string, any> | string): void {
    const ids = this.#postgresIds(m);
    const etc = join(m.dir, 'root/etc/pgha');
    mkdirSync(etc, { recursive: true, mode: 0o700 });
    chownSync(etc, ids.uid, ids.gid);
    const file = join(etc, 'pgha.yml');
    writeFileSync(file, typeof cfg === 'string' ? cfg : stringify(cfg), { mode: 0o600 });
    chownSync(file, ids.uid, ids.gid);
  }

  #prepare(m: Machine): void {
    const root = join(m.dir, 'root');
    for (const d of ['upper', 'work', 'root']) mkdirSync(join(m.dir, d), { recursive: true });
    run('mount', ['-t', 'overlay', `${this.prefix}${m.name}`, '-o', `lowerdir=${this.image},upperdir=${join(m.dir, 'upper')},workdir=${join(m.dir, 'work')}`, root]);
    writeFileSync(join(root, 'etc/hostname'), `${m.name}\n`);
    mkdirSync(join(root, 'etc/systemd/network'), { recursive: true });
    writeFileSync(join(root, 'etc/systemd/network/10-host0.network'),
      `[Match]\nName=host0\n\n[Network]\nAddress=${m.ip}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`);
    if (this.#opts.checkout !== false) copyFileSync(join(REPO, 'systemd/pgha.service'), join(root, 'etc/systemd/system/pgha.service'));
    this.writeConfig(m, this.configFor(m));
  }

  /** Boot the container (again, after a power-off: same overlay, same data). */
  boot(m: Machine): void {
    const binds: string[] = [];
    if (this.#opts.checkout !== false) {
      binds.push(`--bind-ro=${REPO}:/opt/pgha`);
      // node_modules is often a symlink to a shared install: make its target resolve inside too.
      const nm = realpathSync(join(REPO, 'node_modules'));
      if (nm !== join(REPO, 'node_modules')) binds.push(`--bind-ro=${nm}:${nm}`);
    }
    if (this.#opts.shared !== undefined) binds.push(`--bind=${this.sharedHostDir}:${this.#opts.shared}`);
    m.nspawn = spawnInCgroup(`${this.prefix}${m.name}`, ['systemd-nspawn', '-D', join(m.dir, 'root'), `--machine=${this.prefix}${m.name}`,
      '--register=no', '--keep-unit', `--network-bridge=${this.bridge}`, '--console=passive', '--resolv-conf=off',
      '--timezone=off', '--link-journal=no', ...binds, '-b'], join(m.dir, 'nspawn.log'));
    const child = m.nspawn;
    child.on('exit', () => { if (m.nspawn === child) m.nspawn = null; });
  }

  /** The container's PID 1 (systemd), as the host sees it. */
  leaderPid(m: Machine): number {
    const parent = m.nspawn?.pid;
    if (parent === undefined) throw new Error(`${m.name} is not running`);
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === parent) return Number(e);
      } catch { /* exited meanwhile */ }
    }
    throw new Error(`${m.name}: no container init yet`);
  }

  /** Run a command inside the container (all its namespaces). */
  exec(m: Machine, args: string[], allowFail = false): { code: number; stdout: string; stderr: string } {
    const r = spawnSync('nsenter', ['-t', String(this.leaderPid(m)), '-a', '--', ...args], { encoding: 'utf8', timeout: 120_000 });
    const out = { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    if (out.code !== 0 && !allowFail) throw new Error(`${m.name}: ${args.join(' ')} failed (${out.code}): ${out.stderr.trim()}`);
    return out;
  }

  systemctl(m: Machine, ...args: string[]): { code: number; stdout: string; stderr: string } {
    return this.exec(m, ['systemctl', ...args], true);
  }

  /** Async, for calls that block (systemctl start waits for READY=1) while the test keeps measuring. */
  execAsync(m: Machine, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = spawn('nsenter', ['-t', String(this.leaderPid(m)), '-a', '--', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += String(d); });
    child.stderr.on('data', (d) => { stderr += String(d); });
    return new Promise((res) => child.on('exit', (code) => res({ code: code ?? -1, stdout, stderr })));
  }

  journal(m: Machine, unit = 'pgha'): string {
    return this.exec(m, ['journalctl', '-u', unit, '--no-pager', '-o', 'cat'], true).stdout;
  }

  /** Wait until the container's systemd reports the boot finished (running, or degraded). */
  async waitBooted(m: Machine): Promise<void> {
    // A container boots in 2-5 s here; 60 s covers three at once on a loaded 2-core machine.
    const end = performance.now() + 60_000;
    for (;;) {
      if (m.nspawn === null) throw new Error(`${m.name}: systemd-nspawn exited: ${readFileSync(join(m.dir, 'nspawn.log'), 'utf8').slice(-2000)}`);
      let state = '';
      try { state = this.exec(m, ['systemctl', 'is-system-running'], true).stdout.trim(); } catch { /* no init yet */ }
      if (state === 'running' || state === 'degraded') return;
      if (performance.now() > end) throw new Error(`${m.name}: boot did not finish (state ${state || 'unknown'})`);
      await sleep(200);
    }
  }

  /** Wait for systemd-nspawn to exit (the container is gone). */
  async waitGone(m: Machine, timeoutMs: number): Promise<void> {
    const child = m.nspawn;
    if (child === null || child.exitCode !== null || child.signalCode !== null) { m.nspawn = null; return; }
    const gone = new Promise<boolean>((r) => child.once('exit', () => r(true)));
    const timer = sleep(timeoutMs).then(() => false);
    if (!(await Promise.race([gone, timer]))) throw new Error(`${m.name}: still running ${timeoutMs} ms later`);
  }

  /** A host crash: SIGKILL to the container's PID 1 ends its whole PID namespace at once. */
  async killMachine(m: Machine): Promise<void> {
    process.kill(this.leaderPid(m), 'SIGKILL');
    // The kernel tears the namespace down in well under a second; 10 s covers a loaded machine.
    await this.waitGone(m, 10_000);
    await killCgroup(`${this.prefix}${m.name}`);
  }

  /** Processes of the container's pgha.service cgroup, as host pids with their command lines. */
  unitProcesses(m: Machine): Array<{ pid: number; cmd: string }> {
    const dir = join(CGROUP_TREES[0]!, `${this.prefix}${m.name}`, 'payload/system.slice/pgha.service');
    if (!existsSync(dir)) return [];
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number).map((pid) => {
      let cmd = '';
      try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim(); } catch { /* exited */ }
      return { pid, cmd };
    });
  }

  consoleLog(m: Machine): string {
    try { return readFileSync(join(m.dir, 'nspawn.log'), 'utf8'); } catch { return ''; }
  }

  async destroy(): Promise<void> {
    for (const m of this.machines) {
      const child = m.nspawn;
      await killCgroup(`${this.prefix}${m.name}`);
      if (child !== null && child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
      m.nspawn = null;
    }
    this.#etcd?.kill('SIGKILL');
    await killCgroup(`${this.prefix}etcd`);
    await cleanupStale(this.prefix);
    process.removeListener('exit', this.#onExit);
  }
}

/** Mount point check for the tests: nothing of the lab is left on the host. */
export function labLeftovers(prefix = PREFIX): string[] {
  const left: string[] = [];
  for (const t of CGROUP_TREES) if (existsSync(t)) for (const e of readdirSync(t)) if (e.startsWith(prefix)) left.push(join(t, e));
  for (const l of readFileSync('/proc/mounts', 'utf8').split('\n')) if (l.startsWith(prefix)) left.push(l.split(' ')[1] ?? l);
  if (run('ip', ['link', 'show', `${prefix}br0`], true) !== '') left.push(`${prefix}br0`);
  for (const e of readdirSync(WORK)) if (e.startsWith(prefix)) left.push(join(WORK, e));
  return left;
}
