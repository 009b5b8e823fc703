// The one interface the fault-injection suite (runner.ts, faults.ts, report.ts) drives a cluster
// through. Two labs implement it:
// - netns (cluster.ts): agents as plain processes in network namespaces, systemd's watchdog
//   emulated outside each node (systemd-watchdog.py);
// - systemd (nspawn-cluster.ts): Debian containers booted with systemd as PID 1, each running the
//   shipped systemd/pgha.service unchanged, so the watchdog, KillMode=mixed and Restart=on-failure
//   are systemd's own.
// A backend says which fault kinds it can inject (`kinds`); the primitives behind the others are
// optional and faults.ts refuses a kind whose primitive is missing.

import type { Cluster } from '../cluster.ts';

export const BACKENDS = ['netns', 'systemd'] as const;
export type BackendName = (typeof BACKENDS)[number];

export type SyncMode = 'off' | 'on';

/** A link of a node the delay proxies can slow (lab/delay-proxy.ts): its agent's etcd traffic, or its connections with the other nodes. */
export type DelayLink = 'etcd' | 'peers';

/** A database member: its name in logs and reports, its address (PostgreSQL :pgPort, REST API :8008). */
export interface ChaosNode { name: string; ip: string }
/** An etcd member. */
export interface ChaosEtcd { name: string; ip: string }

export interface ChaosBackend extends Cluster<ChaosNode> {
  readonly backend: BackendName;
  /** One sentence for the report: what the nodes are and who plays systemd's watchdog. */
  readonly description: string;
  /** The fault kinds this backend can inject (faults.ts), in schedule order. */
  readonly kinds: readonly string[];
  /** A directory of the run's own files (logs); removed by destroy() unless kept. */
  readonly dir: string;
  readonly nodes: readonly ChaosNode[];
  readonly etcd: readonly ChaosEtcd[];
  /** HAProxy's read-write port on 127.0.0.1 (the clients 1-4). */
  readonly haproxyPort: number;
  readonly pgPort: number;

  start(): Promise<void>;
  destroy(): Promise<void>;
  /** The nodes whose API answers 200 on /primary. */
  primaries(): Promise<ChaosNode[]>;
  /** healthy() of lab/cluster.ts with primarySeesStandbys: one primary, the others streaming from it. */
  waitHealthy(timeoutMs: number): Promise<ChaosNode>;
  query<T = Record<string, unknown>>(n: ChaosNode, sql: string, timeoutMs?: number): Promise<T[]>;
  /** Every watchdog firing so far, as the name of the node whose unit it killed (in order). */
  watchdogKills(): Promise<string[]>;
  /** Copy the agents', PostgreSQL's and etcd's logs to `dir` (a failed run keeps them). */
  keepLogs(dir: string): void;

  // Faults every backend has.
  /** A host crash: every process of the node dies at once. */
  crashNode(n: ChaosNode): Promise<void>;
  /** Bring a crashed node back (its agent starts again; the data is still there). */
  restartNode(n: ChaosNode): Promise<void>;
  /** SIGSTOP the agent, its fencing process and PostgreSQL (not the node's systemd). */
  freezeNode(n: ChaosNode): void;
  thawNode(n: ChaosNode): void;
  /** SIGSTOP / SIGCONT the agent process alone. */
  freezeAgent(n: ChaosNode): void;
  thawAgent(n: ChaosNode): void;
  killPostmaster(n: ChaosNode): void;
  /** Drop traffic between `n` and `ips`: both ways, or only what `n` sends ('out'). */
  partition(n: ChaosNode, ips: string[], direction: 'both' | 'out'): void;
  /** `n`'s link goes down. */
  isolate(n: ChaosNode): void;
  /** Drop a share `p` of the packets on `n`'s link, both ways. */
  lossy(n: ChaosNode, p: number): void;
  /** Undo partition(), isolate() and lossy(). */
  healNetwork(n: ChaosNode): void;
  killEtcd(e: ChaosEtcd): void;
  startEtcd(e: ChaosEtcd): void;
  signalEtcd(e: ChaosEtcd, signal: NodeJS.Signals): void;
  /** The etcd member that reports itself the leader now (Maintenance Status), or null (kill-etcd-leader, freeze-etcd-and-node). */
  etcdLeader?(): Promise<ChaosEtcd | null>;
  /** SIGSTOP / SIGCONT the node's emulated systemd watchdog (freeze-thaw-node); backends with a real systemd have none. */
  signalWatchdog?(n: ChaosNode, signal: 'SIGSTOP' | 'SIGCONT'): void;

  // Faults only some backends have.
  fillDisk?(n: ChaosNode): void;
  freeDisk?(n: ChaosNode): void;
  /** Jump the agent's wall clock by `offsetMs` (0: back to the real clock). */
  shiftClock?(n: ChaosNode, offsetMs: number): void;
  /** The agent's log, to check a fault took effect. */
  agentLog?(n: ChaosNode): string;
  /** SIGKILL the agent alone (its unit's KillMode=mixed takes PostgreSQL with it). */
  killAgent?(n: ChaosNode): void;
  /** A clean power-off: the node's systemd stops pgha (a handover) and halts. */
  powerOff?(n: ChaosNode): Promise<void>;
  /** Freeze every process of the node, its systemd included (a hung virtual machine). */
  freezeMachine?(n: ChaosNode): void;
  thawMachine?(n: ChaosNode): void;
  /** Hold every chunk on `n`'s `link` for `ms` each way (0: no delay). */
  delayLink?(n: ChaosNode, link: DelayLink, ms: number): void;
}
