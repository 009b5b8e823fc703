// A three-member loopback cluster whose members run Patroni (Debian's /usr/bin/patroni, 3.0.2) or
// pgha (`pgha --patroni-config`, on the same data directory with the same Patroni YAML), switched
// member by member: what a live migration from Patroni to pgha (and back) does. One etcd (v3 API),
// PostgreSQL 15 as the postgres OS user, optionally HAProxy checking /primary on each member's REST
// port. It is a lab Cluster (lab/cluster.ts): its health is lab's healthy() plus a caught-up check,
// and the tests' write probe through HAProxy is lab's WriteProbe (lab/probe.ts). `teardown()`
// kills everything it started and removes its directory, whatever state the cluster is in.
// The Patroni YAML follows scripts/bench-patroni.ts (which runs Patroni-only clusters).
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { lookupOsUser } from '../../src/postgres/instance.ts';
import { childPids } from '../../src/postgres/datadir.ts';
import { startHaproxy } from '../../lab/haproxy.ts';
import { patroniConfig } from '../../lab/patroni-config.ts';
import { waitHealthy, type Cluster } from '../../lab/cluster.ts';
import { allocatePorts } from '../../lab/ports.ts';
import { etcdGet } from '../../lab/etcd.ts';
import { startEtcd, type EtcdHandle } from './etcd.ts';
import { REPO, httpStatus, postmasterPid, queryOnce, sleep, superuserClient, waitFor } from './cluster.ts';

const PGHA_BIN = join(REPO, 'bin/pgha.js');
const COMPILE_CACHE = join(tmpdir(), 'pgha-test-compile-cache');
export const API_AUTH = { username: 'admin', password: 'admin-pw' };

export type Agent = 'patroni' | 'pgha';
export interface MixedNode {
  name: string; pgPort: number; apiPort: number; dir: string; dataDir: string; cfg: string; log: string;
  agent: Agent | null; proc: ChildProcess | null;
}
export interface MixedOptions {
  scope: string;
  /** First ports (member i on base + i; etcd on etcdPort and etcdPort + 1); each one left out is allocated (lab/ports.ts). */
  etcdPort?: number; pgPortBase?: number; apiPortBase?: number;
  /** Patroni's timing and any other bootstrap.dcs keys (synchronous_mode ...). */
  dcs: Record<string, unknown>;
  /** Tags of member i (1-based), read by both agents. */
  tags?: (i: number) => Record<string, unknown>;
}

export class MixedCluster implements Cluster<MixedNode> {
  readonly dir = mkdtempSync(join(tmpdir(), 'pgha-mixed-'));
  readonly nodes: MixedNode[];
  readonly etcdEndpoint: string;
  etcd: EtcdHandle | null = null;
  haproxy: ChildProcess | null = null;
  readonly #user = lookupOsUser('postgres');
  readonly #o: MixedOptions;
  readonly #etcdPort: number;

  constructor(o: MixedOptions) {
    this.#o = o;
    this.#etcdPort = o.etcdPort ?? allocatePorts(2);
    const pgBase = o.pgPortBase ?? allocatePorts(3) - 1;
    const apiBase = o.apiPortBase ?? allocatePorts(3) - 1;
    chownSync(this.dir, this.#user.uid, this.#user.gid);
    mkdirSync(COMPILE_CACHE, { recursive: true, mode: 0o700 });
    chownSync(COMPILE_CACHE, this.#user.uid, this.#user.gid);
    this.etcdEndpoint = `127.0.0.1:${this.#etcdPort}`;
    this.nodes = [1, 2, 3].map((i) => {
      const dir = join(this.dir, `m${i}`);
      return {
        name: `m${i}`, pgPort: pgBase + i, apiPort: apiBase + i, dir, dataDir: join(dir, 'data'),
        cfg: join(this.dir, `m${i}.yml`), log: join(this.dir, `m${i}.log`), agent: null, proc: null,
      };
    });
    for (const n of this.nodes) this.#writeConfig(n);
  }

  /** One Patroni YAML per member, used by both agents (pgha through --patroni-config). */
  #writeConfig(n: MixedNode): void {
    mkdirSync(n.dir, { mode: 0o700 });
    chownSync(n.dir, this.#user.uid, this.#user.gid);
    const tags = this.#o.tags?.(Number(n.name.slice(1)));
    writeFileSync(n.cfg, stringify(patroniConfig(n, {
      scope: this.#o.scope, namespace: '/migration/', etcdHosts: [this.etcdEndpoint], dcs: this.#o.dcs, auth: API_AUTH,
      ...(tags === undefined ? {} : { tags }),
    })), { mode: 0o600 });
    chownSync(n.cfg, this.#user.uid, this.#user.gid);
  }

  async startEtcd(): Promise<void> {
    this.etcd = await startEtcd({ clientPort: this.#etcdPort, peerPort: this.#etcdPort + 1, name: this.#o.scope });
  }

  /** Start `agent` on n's data directory, as the postgres OS user; its output goes to n.log. */
  start(n: MixedNode, agent: Agent): void {
    if (n.proc !== null) throw new Error(`${n.name} already runs ${n.agent}`);
    const out = createWriteStream(n.log, { flags: 'a' });
    out.write(`\n===== ${new Date().toISOString()} starting ${agent} =====\n`);
    const [cmd, args] = agent === 'patroni' ? ['/usr/bin/patroni', [n.cfg]] : [process.execPath, [PGHA_BIN, '--patroni-config', n.cfg]];
    const child = spawn(cmd, args, {
      uid: this.#user.uid, gid: this.#user.gid, cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin', HOME: this.dir, LANG: 'C.UTF-8', PGHA_COMPILE_CACHE: COMPILE_CACHE },
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    n.proc = child;
    n.agent = agent;
    child.on('exit', () => { if (n.proc === child) { n.proc = null; n.agent = null; } });
  }

  /**
   * Stop n's agent as an operator would (SIGTERM: `systemctl stop`). Both stop their PostgreSQL
   * on the way out (Patroni always; pgha for a standby; a pgha leader hands nothing over).
   */
  async stop(n: MixedNode): Promise<void> {
    const child = n.proc;
    if (child === null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    // Patroni stops PostgreSQL (fast) and leaves within seconds; 60 s covers a loaded machine.
    await Promise.race([exited, sleep(60_000)]);
    if (n.proc === child) { child.kill('SIGKILL'); await exited; }
    // Whoever stopped, no postmaster may survive it (the next agent starts its own).
    await waitFor(`${n.name}'s postmaster gone`, async () => postmasterPid(n.dataDir) === null, 30_000, 100);
  }

  /** SIGKILL the agent and its postmaster with its children (a process-level host crash). */
  kill(n: MixedNode): void {
    n.proc?.kill('SIGKILL');
    const pm = postmasterPid(n.dataDir);
    if (pm !== null) { for (const c of childPids(pm)) tryKill(c); tryKill(pm); }
  }

  startHaproxy(rw: number): void {
    this.haproxy = startHaproxy({
      dir: this.dir, readWritePort: rw, readOnlyPort: rw + 1,
      members: this.nodes.map((n) => ({ name: n.name, pgHost: '127.0.0.1', pgPort: n.pgPort, apiHost: '127.0.0.1', apiPort: n.apiPort })),
    }).child;
  }

  async probe(n: MixedNode, path: string): Promise<number> {
    // Both agents answer from memory; 1 s keeps a dead agent from stalling a poll.
    return httpStatus(`http://127.0.0.1:${n.apiPort}${path}`, 1000);
  }

  async rows<T = Record<string, unknown>>(n: MixedNode, sql: string, timeoutMs = 5000): Promise<T[]> {
    // A local query; the timeouts only keep a dying server from blocking a poll.
    return (await queryOnce(superuserClient({ host: '127.0.0.1', port: n.pgPort, connectMs: 2000, queryMs: timeoutMs }), sql)).rows as T[];
  }

  async primaries(): Promise<MixedNode[]> {
    const codes = await Promise.all(this.nodes.map((n) => this.probe(n, '/primary')));
    return this.nodes.filter((_, i) => codes[i] === 200);
  }

  async query<R extends pg.QueryResultRow>(n: MixedNode, sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    // A local query; the timeouts only keep a dying server from blocking a poll.
    return queryOnce(superuserClient({ host: '127.0.0.1', port: n.pgPort, connectMs: 2000, queryMs: 5000 }), sql, params) as Promise<pg.QueryResult<R>>;
  }

  /** The member holding the leader key in etcd (null: none). */
  async leaderKey(): Promise<string | null> {
    const r = await this.etcdGet(`/migration/${this.#o.scope}/leader`);
    return r;
  }

  async etcdGet(key: string): Promise<string | null> {
    // etcd answers a read at once; 2 s means it is stuck.
    return etcdGet(this.etcdEndpoint, key, 2000);
  }

  /**
   * lab/cluster.ts's healthy cluster (one member answers 200 on /primary, the two others on
   * /replica?replication_state=streaming: pgha checks its WAL receiver, Patroni 3.0.2 ignores the
   * parameter and answers for any running replica), and the primary's pg_stat_replication shows
   * both streaming with everything it had written when the wait began replayed: a Patroni replica
   * that runs but does not stream yet would otherwise count (its slot may not exist until the
   * leader's next loop).
   */
  async healthy(timeoutMs = 120_000): Promise<MixedNode> {
    let target: { node: MixedNode; lsn: string } | null = null;
    const caughtUp = async (p: MixedNode): Promise<boolean> => {
      const reps = this.nodes.filter((n) => n !== p);
      if (target?.node !== p) target = { node: p, lsn: (await this.query<{ lsn: string }>(p, 'select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn };
      const r = await this.query<{ n: string }>(p, "select count(*) as n from pg_stat_replication where state = 'streaming' and application_name = any($1) and replay_lsn >= $2::pg_lsn", [reps.map((n) => n.name), target.lsn]);
      return Number(r.rows[0]?.n) === 2;
    };
    return waitHealthy(this, timeoutMs, { also: caughtUp, intervalMs: 250 });
  }

  async teardown(): Promise<void> {
    for (const n of this.nodes) this.kill(n);
    this.haproxy?.kill('SIGKILL');
    // Anything else started under this directory (pg_rewind, pg_basebackup, a detached postmaster).
    for (const pid of pidsMentioning(this.dir)) tryKill(pid);
    await this.etcd?.stop();
    if (process.env.PGHA_KEEP_TEST_DIRS !== '1') rmSync(this.dir, { recursive: true, force: true });
  }

  logs(n: MixedNode): string {
    return existsSync(n.log) ? readFileSync(n.log, 'utf8') : '';
  }
}

function tryKill(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

function pidsMentioning(text: string): number[] {
  const out: number[] = [];
  for (const d of readdirSafe('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try { if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text)) out.push(Number(d)); } catch { /* gone */ }
  }
  return out;
}
function readdirSafe(p: string): string[] {
  try { return readdirSync(p); } catch { return []; }
}
