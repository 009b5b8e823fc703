// A small network lab for fault injection: one Linux network namespace per host, each joined to a
// bridge in the root namespace by a veth pair. The root namespace (where the test, its clients
// and HAProxy run) reaches every host at 10.231.0.x through the bridge at 10.231.0.1; no traffic
// leaves the machine. Faults are applied with iptables inside a host's namespace (partitions),
// `ip link` (isolation) and signals to the processes `ip netns pids` lists (crash, freeze).
// Everything this creates carries the prefix `pghac-`, and `destroy()` (also run for leftovers of
// a crashed earlier run by `cleanupStale()`) removes it all.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export const PREFIX = 'pghac-';
const BRIDGE = `${PREFIX}br0`;
export const SUBNET = '10.231.0';
export const BRIDGE_IP = `${SUBNET}.1`;

export interface Host {
  /** Short name: n1..n3 for database nodes, e1..e3 for etcd members. */
  name: string;
  ns: string;
  ip: string;
}

function run(cmd: string, args: string[], allowFail = false): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    if (allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

export function nsExec(ns: string, args: string[], allowFail = false): string {
  return run('ip', ['netns', 'exec', ns, ...args], allowFail);
}

/** Pids of every process inside a namespace (what a crash or freeze of that host affects). */
export function nsPids(ns: string): number[] {
  return run('ip', ['netns', 'pids', ns], true).split('\n').filter(Boolean).map(Number).filter((p) => p > 0);
}

export function signalHost(h: Host, signal: NodeJS.Signals): number {
  const pids = nsPids(h.ns);
  for (const pid of pids) { try { process.kill(pid, signal); } catch { /* already gone */ } }
  return pids.length;
}

/** SIGKILL every process in a namespace; SIGCONT first, as the fault-injection code leaves some stopped. */
function killNamespace(ns: string): void {
  for (const pid of nsPids(ns)) { try { process.kill(pid, 'SIGCONT'); process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
}

/** Remove everything a previous run may have left: processes, namespaces, veths, the bridge. */
export function cleanupStale(): void {
  for (const line of run('ip', ['netns', 'list'], true).split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    if (!ns.startsWith(PREFIX)) continue;
    killNamespace(ns);
    run('ip', ['netns', 'del', ns], true);
  }
  // tmpfs mounts a chaos cluster made for its nodes (device name pghac-...).
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => (f[0] ?? '').startsWith(PREFIX));
  for (const f of mounts) if (f[1] !== undefined) run('umount', ['-l', f[1]], true);
  // A deleted namespace goes away only when nothing in the kernel holds it any more; delete the
  // root end of each veth pair explicitly, which removes both ends at once.
  for (const line of run('ip', ['-o', 'link', 'show'], true).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '';
    if (name.startsWith(PREFIX)) run('ip', ['link', 'del', name], true);
  }
}

const LOCK = '/run/pgha-netlab.lock';

/** One lab per machine: the names are fixed. A lock file holds the owner's pid. */
function takeLock(): void {
  try {
    const pid = Number(readFileSync(LOCK, 'utf8'));
    if (pid > 0 && pid !== process.pid) {
      try { process.kill(pid, 0); throw new Error(`another fault-injection run (pid ${pid}) is using the network lab; wait for it or stop it`); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  writeFileSync(LOCK, String(process.pid));
}

export class NetLab {
  readonly hosts = new Map<string, Host>();

  constructor() {
    takeLock();
    cleanupStale();
    run('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${BRIDGE_IP}/24`, 'dev', BRIDGE]);
    run('ip', ['link', 'set', BRIDGE, 'up']);
  }

  /** Create a host namespace with address 10.231.0.<octet>. */
  addHost(name: string, octet: number): Host {
    const ns = `${PREFIX}${name}`;
    const veth = `${PREFIX}${name}`;
    const ip = `${SUBNET}.${octet}`;
    run('ip', ['netns', 'add', ns]);
    run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run('ip', ['link', 'set', veth, 'master', BRIDGE]);
    run('ip', ['link', 'set', veth, 'up']);
    nsExec(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    nsExec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    nsExec(ns, ['ip', 'link', 'set', 'lo', 'up']);
    const h = { name, ns, ip };
    this.hosts.set(name, h);
    return h;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`no host ${name}`);
    return h;
  }

  /** Spawn a program inside a host's namespace, optionally as another OS user (setpriv). */
  spawnIn(h: Host, argv: string[], opts: SpawnOptions & { user?: { uid: number; gid: number } } = {}): ChildProcess {
    const drop = opts.user ? ['setpriv', `--reuid=${opts.user.uid}`, `--regid=${opts.user.gid}`, '--clear-groups', '--'] : [];
    const { user: _u, ...rest } = opts;
    return spawn('ip', ['netns', 'exec', h.ns, ...drop, ...argv], rest);
  }

  /**
   * Drop traffic between host `h` and the given addresses. `direction` 'both' drops in and out;
   * 'out' only what `h` sends (a one-way partition: h's packets are lost, it still hears the rest).
   */
  partition(h: Host, peers: string[], direction: 'both' | 'out' | 'in' = 'both'): void {
    for (const ip of peers) {
      if (direction !== 'in') nsExec(h.ns, ['iptables', '-A', 'OUTPUT', '-d', ip, '-j', 'DROP']);
      if (direction !== 'out') nsExec(h.ns, ['iptables', '-A', 'INPUT', '-s', ip, '-j', 'DROP']);
    }
  }

  /** Cut the host off from every other host (its link goes down; local loopback keeps working). */
  isolate(h: Host): void {
    nsExec(h.ns, ['ip', 'link', 'set', 'eth0', 'down']);
  }

  /**
   * Drop each packet on the host's link (eth0, not its loopback) with probability `p`, both ways:
   * a lossy network without `tc netem` (not in this kernel), by iptables' statistic match.
   */
  lossy(h: Host, p: number): void {
    for (const [chain, dir] of [['INPUT', '-i'], ['OUTPUT', '-o']] as const) {
      nsExec(h.ns, ['iptables', '-A', chain, dir, 'eth0', '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP']);
    }
  }

  /** Undo partition(), lossy() and isolate(). */
  heal(h: Host): void {
    nsExec(h.ns, ['iptables', '-F', 'INPUT'], true);
    nsExec(h.ns, ['iptables', '-F', 'OUTPUT'], true);
    nsExec(h.ns, ['ip', 'link', 'set', 'eth0', 'up'], true);
  }

  destroy(): void {
    for (const h of this.hosts.values()) {
      killNamespace(h.ns);
    }
    for (const h of this.hosts.values()) {
      run('ip', ['link', 'del', `${PREFIX}${h.name}`], true);
      run('ip', ['netns', 'del', h.ns], true);
    }
    run('ip', ['link', 'del', BRIDGE], true);
    this.hosts.clear();
    rmSync(LOCK, { force: true });
  }
}

export function hasNetnsSupport(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const bin of ['/usr/sbin/ip', '/usr/sbin/iptables', '/usr/bin/setpriv', '/usr/bin/fallocate', '/usr/bin/python3', '/usr/bin/systemd-notify']) {
    if (!existsSync(bin)) return `${bin} is missing (apt-get install iproute2 iptables util-linux python3 systemd)`;
  }
  return null;
}
