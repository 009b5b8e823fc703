// The delay proxies of the netns chaos lab (lab/delay-proxy.ts), present at delay 0 in every run
// so that a delay fault only changes a number:
// - one in each etcd member's namespace, on the member's address at ETCD_PROXY_PORT, forwarding
//   to its client port; the agents reach etcd only through these;
// - one in each database node's namespace, on the node's address at PG_PROXY_PORT and
//   API_PROXY_PORT, forwarding to its PostgreSQL and REST API; these are the addresses each node
//   publishes to its peers (connect_address), so replication, pg_rewind, base backups and the
//   agents' calls to each other go through them. HAProxy, the clients and the suite's own probes
//   keep the direct ports.
// Each proxy sits in the namespace of the host it fronts, so the iptables faults (partitions,
// one-way loss, a lossy link, a link down) act on its traffic as before, and a crash, freeze or
// watchdog kill of that host takes its proxy along, as the host's own network stack would stop
// answering; the host's (re)start starts it again. A proxy picks the delay by the connection's
// source address: a link is delayed by setting its far end's address on the proxies of its
// near end (and, for the peers link, the primary's address on the standbys' proxies).
import { createWriteStream } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { NetLab, Host } from '../netlab.ts';
import { REPO, waitFor } from '../util.ts';
import type { DelayLink } from './backend.ts';
import type { DelaySettings } from '../delay-proxy.ts';

export const ETCD_PROXY_PORT = 2390;
export const PG_PROXY_PORT = 5433;
export const API_PROXY_PORT = 8009;
const PROXY = join(REPO, 'lab/delay-proxy.ts');

interface Proxy { child: ChildProcess; listening: boolean }

export class DelayLinks {
  #proxies = new Map<string, Proxy>();
  #settings = new Map<string, DelaySettings>();
  readonly #lab: NetLab;
  readonly #dir: string;
  readonly #user: { uid: number; gid: number };

  constructor(lab: NetLab, dir: string, user: { uid: number; gid: number }) {
    this.#lab = lab;
    this.#dir = dir;
    this.#user = user;
  }

  /** The routes of a host's proxy: an etcd member's client port, or a node's PostgreSQL and REST API. */
  static routes(h: Host, kind: 'etcd' | 'node', ports: { pg: number; api: number }): string[] {
    return kind === 'etcd'
      ? [`${h.ip}:${ETCD_PROXY_PORT}=${h.ip}:2379`]
      : [`${h.ip}:${PG_PROXY_PORT}=${h.ip}:${ports.pg}`, `${h.ip}:${API_PROXY_PORT}=${h.ip}:${ports.api}`];
  }

  /** Start the host's proxy unless it runs (a crash or watchdog kill of the host killed it); it gets the delays in force. */
  ensure(h: Host, routes: string[]): void {
    if (this.#proxies.has(h.name)) return;
    const child = this.#lab.spawnIn(h, [process.execPath, PROXY, ...routes], { user: this.#user, stdio: ['pipe', 'pipe', 'pipe'] });
    const p: Proxy = { child, listening: false };
    this.#proxies.set(h.name, p);
    const log = createWriteStream(join(this.#dir, `${h.name}.proxy.log`), { flags: 'a' });
    child.stderr?.pipe(log);
    child.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('listening')) p.listening = true;
      log.write(b);
    });
    child.stdin?.on('error', () => undefined); // the proxy died with its host: 'exit' handles it
    child.on('exit', () => { if (this.#proxies.get(h.name) === p) this.#proxies.delete(h.name); });
    this.#send(h.name);
  }

  /** Every proxy listens. A Node start in a namespace takes well under a second; 30 s covers a loaded machine. */
  async ready(): Promise<void> {
    await waitFor('the delay proxies listening', async () => [...this.#proxies.values()].every((p) => p.listening), 30_000, 50);
  }

  /** Delay `n`'s `link` by `ms` each way (0: none), through the proxies of `etcd` or of `nodes`. */
  delay(n: Host, link: DelayLink, ms: number, etcd: readonly Host[], nodes: readonly Host[]): void {
    const on = (h: Host, source: string) => {
      const s = this.#settings.get(h.name) ?? { defaultMs: 0, bySource: {} };
      const bySource = { ...s.bySource };
      if (ms === 0) delete bySource[source]; else bySource[source] = ms;
      this.#settings.set(h.name, { defaultMs: s.defaultMs, bySource });
      this.#send(h.name);
    };
    if (link === 'etcd') {
      for (const e of etcd) on(e, n.ip);
      return;
    }
    for (const o of nodes.filter((x) => x.name !== n.name)) {
      on(n, o.ip); // the standbys' connections to the primary's PostgreSQL and REST API
      on(o, n.ip); // the primary's connections to the standbys' (failsafe and other REST calls)
    }
  }

  #send(name: string): void {
    const s = this.#settings.get(name);
    const p = this.#proxies.get(name);
    if (s !== undefined && p !== undefined && p.child.stdin?.writable === true) p.child.stdin.write(`${JSON.stringify(s)}\n`);
  }
}
