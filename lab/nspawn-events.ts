// Faults applied to the systemd lab (nspawn.ts) and measured the same way by its integration test
// (test/integration/systemd-unit.test.ts) and by `npm run bench:systemd`: a writer on the primary,
// the fault, the first moment another member takes a write, and the acknowledged writes checked
// on the new primary.
import { httpStatus, queryOnce, superuserClient, waitFor } from './util.ts';
import type { Machine, NspawnLab } from './nspawn.ts';
import { waitHealthy } from './cluster.ts';
import { sessionWriter, type Writer } from './probe.ts';

export type { Writer };

export const api = (m: Machine, path: string, timeoutMs = 500) => httpStatus(`http://${m.ip}:8008${path}`, timeoutMs);
export const client = (m: Machine) => superuserClient({ host: m.ip, port: 5432, connectMs: 500, queryMs: 1000 });

export async function primaryOf(ms: Machine[]): Promise<Machine | null> {
  const codes = await Promise.all(ms.map((m) => api(m, '/primary')));
  const p = ms.filter((_, k) => codes[k] === 200);
  return p.length === 1 ? p[0]! : null;
}

/** One primary and every other member a streaming standby; the primary. */
export async function waitCluster(lab: NspawnLab, timeoutMs: number): Promise<Machine> {
  return waitHealthy(lab, timeoutMs);
}

export function unitProp(lab: NspawnLab, m: Machine, prop: string): string {
  return lab.systemctl(m, 'show', '-p', prop, '--value', 'pgha').stdout.trim();
}

/** A writer on one session to `m` (10 ms apart) that ends at its first failure; acks on the monotonic clock. */
export function writer(m: Machine, table: string): Writer {
  return sessionWriter({ host: m.ip, port: 5432, table, connectMs: 500, queryMs: 1000, pauseMs: 10, clock: 'monotonic' });
}

/** The first moment one of `ms` takes a write (polled every 50 ms), and which member. */
export async function firstWritable(ms: Machine[], table: string, timeoutMs: number): Promise<{ m: Machine; at: number }> {
  return waitFor('a writable new primary', async () => {
    for (const m of ms) {
      const ok = await queryOnce(client(m), `insert into ${table}(id) values (-1) on conflict do nothing`).then(() => true, () => false);
      if (ok) return { m, at: performance.now() };
    }
    return null;
  }, timeoutMs, 50);
}

/** Acknowledged writes missing on `m`. */
export async function lostWrites(w: Writer, m: Machine, table: string): Promise<number[]> {
  const r = await queryOnce(client(m), `select id from ${table}`);
  const ids = new Set(r.rows.map((row: { id: number }) => row.id));
  return w.acks.filter((a) => !ids.has(a.id)).map((a) => a.id);
}

export interface FaultResult {
  /** The member that became writable, and when, from the fault (ms). */
  newPrimary: Machine;
  failoverMs: number;
  /** The old primary's last acknowledged write, from the fault (ms; negative: before it). */
  lastOldAckMs: number;
  lost: number[];
}

/**
 * Run `fault` on the current primary with a writer on it; measure until another member is writable.
 * `fault` may return extra measurements (e.g. when the unit's processes were gone).
 */
export async function measureFault(lab: NspawnLab, leader: Machine, table: string, fault: () => Promise<void>): Promise<FaultResult> {
  const others = lab.machines.filter((m) => m !== leader);
  const w = writer(leader, table);
  // The writer's first writes take a few ms; 10 s is a primary that does not answer at all.
  await waitFor('first writes', async () => w.acks.length > 5, 10_000);
  const t0 = performance.now();
  await fault();
  // A failover here takes 2-3 s (the ttl); 30 s is a cluster that does not fail over at all.
  const fresh = await firstWritable(others, table, 30_000);
  await w.stop();
  return {
    newPrimary: fresh.m, failoverMs: fresh.at - t0, lastOldAckMs: (w.acks.at(-1)?.at ?? 0) - t0,
    lost: await lostWrites(w, fresh.m, table),
  };
}

/** Wait until `m` is a streaming standby again. */
export async function waitStandby(m: Machine, timeoutMs: number): Promise<void> {
  await waitFor(`${m.name} streaming again`, async () => (await api(m, '/replica?replication_state=streaming')) === 200, timeoutMs, 200);
}

/**
 * SIGSTOP the leader's agent (the unit's main process) alone and wait until every process the unit
 * had is gone (the watchdog's SIGKILL, then KillMode=mixed's final SIGKILL). Returns that delay.
 */
export async function freezeAgent(lab: NspawnLab, leader: Machine): Promise<{ killedMs: number; before: Array<{ pid: number; cmd: string }> }> {
  const before = lab.unitProcesses(leader);
  const t0 = performance.now();
  lab.exec(leader, ['kill', '-STOP', unitProp(lab, leader, 'MainPID')]);
  // WatchdogSec=1000ms: gone in about a second; 15 s is a watchdog that never fires.
  const gone = await waitFor('the unit\'s old processes killed', async () => {
    const now = new Set(lab.unitProcesses(leader).map((p) => p.pid));
    return before.every((p) => !now.has(p.pid)) ? performance.now() : null;
  }, 15_000, 20);
  return { killedMs: gone - t0, before };
}

/** How many times systemd's watchdog fired for pgha.service in `m`'s journal. */
export function watchdogKills(lab: NspawnLab, m: Machine): number {
  return (lab.journal(m).match(/Watchdog timeout/g) ?? []).length;
}

/** Each watchdog firing in `m`'s journal with the lines before it (precise times): what the agent did last. */
export function watchdogContext(lab: NspawnLab, m: Machine, before = 4): string[] {
  const lines = lab.exec(m, ['journalctl', '-u', 'pgha', '--no-pager', '-o', 'short-precise'], true).stdout.split('\n');
  const out: string[] = [];
  lines.forEach((l, k) => { if (l.includes('Watchdog timeout')) out.push(lines.slice(Math.max(0, k - before), k + 1).map((x) => x.slice(0, 220)).join('\n')); });
  return out;
}
