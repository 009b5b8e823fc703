// One fault-injection run: a fresh cluster on one of the backends (backend.ts), the client
// workload, a seeded schedule of faults (each applied to the primary of the moment, held, healed,
// then waited out until the cluster has converged), and the checker's verdict on the recorded
// history. Used by `npm run chaos` and by the short forms in test/integration/chaos.test.ts (netns)
// and test/integration/chaos-systemd.test.ts (systemd).
import type { BackendName, ChaosBackend, ChaosNode, SyncMode } from './backend.ts';
import { BACKEND_KINDS, FIXED_SCHEDULES, NETNS_FAULT_KINDS, applyFault, delayToleranceMs, rng, schedule, type FaultKind, type FaultSpec } from './faults.ts';
import { check, outageAround, parseHistory, type Outage, type Verdict } from './checker.ts';
import { CREATE_TABLE, TABLE, Workload, type Op } from './workload.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, waitFor } from '../util.ts';
import { dynamicConfigSchema } from '../../src/config/schema.ts';

export interface RunOptions {
  /** Where the cluster runs (default netns). */
  backend?: BackendName;
  seed: number;
  faults: number;
  /** Ignored with `scheduleName`: a fixed schedule names its own mode. */
  syncMode: SyncMode;
  kinds?: readonly FaultKind[];
  /** A named fixed schedule (FIXED_SCHEDULES) instead of a seeded one. */
  scheduleName?: string;
  log?: (line: string) => void;
  /** On failure, copy the agents' and etcd's logs to a directory kept after the run (npm run chaos). */
  keepLogsOnFailure?: boolean;
}

export interface FaultEvent extends FaultSpec {
  index: number;
  target: string;
  primaryBefore: string;
  primaryAfter: string | null;
  atMs: number;
  convergedMs: number | null;
  outage: Outage | null;
  /** Samples during the fault in which two members answered 200 on /primary. */
  doublePrimarySamples: number;
  /** The primary changed after the previous fault had converged, with no fault applied: a false failover. */
  unprovokedHandover: boolean;
  /** Nodes whose systemd watchdog (emulated or real, by backend) killed their unit from the previous fault's end to this one's. */
  watchdogKills: string[];
  /** etcd-quorum-loss only: a write was acknowledged on a newer timeline while etcd had no quorum. */
  promotedWithoutQuorum?: boolean;
  /** A delay fault: the link, the delay each way, and the largest delay at which no failover may happen (delayToleranceMs). */
  delay?: { link: 'etcd' | 'peers'; ms: number; toleranceMs: number };
}

/** A delay fault at or below its tolerance that moved the primary: a false failover. */
export function falseFailover(e: Pick<FaultEvent, 'delay' | 'primaryBefore' | 'primaryAfter'>): boolean {
  return e.delay !== undefined && e.delay.ms <= e.delay.toleranceMs && e.primaryAfter !== e.primaryBefore;
}

/** A write acknowledged on a timeline newer than any before the fault, executed while it was held. */
export function newTimelineDuring(ops: readonly Op[], fromMs: number, toMs: number): boolean {
  let before = 0;
  for (const o of ops) if (o.outcome === 'ok' && o.serverMs !== undefined && o.serverMs < fromMs) before = Math.max(before, o.tli ?? 0);
  return ops.some((o) => o.outcome === 'ok' && o.serverMs !== undefined && o.serverMs >= fromMs && o.serverMs <= toMs && (o.tli ?? 0) > before);
}

export interface RunResult {
  backend: BackendName;
  /** The backend's own description, for the report. */
  backendDescription: string;
  seed: number;
  syncMode: SyncMode;
  events: FaultEvent[];
  verdict: Verdict | null;
  converged: boolean;
  failure: string | null;
  ops: number;
  command: string;
  durationMs: number;
}

/** The default ttl: the chaos cluster runs at the default timing, and hold times scale with it. */
const DYNAMIC = dynamicConfigSchema.parse({});
const TTL_S = DYNAMIC.ttl;
// After a heal the cluster must be healthy again (one primary, both standbys streaming) within
// 90 s: a failover takes a few seconds, a pg_rewind or a fresh clone of this small database
// seconds more; 90 s leaves room for a busy 2-core machine and an etcd member catching up.
const CONVERGE_MS = 90_000;

export function reproduceCommand(o: Pick<RunOptions, 'seed' | 'faults' | 'syncMode' | 'scheduleName' | 'kinds' | 'backend'>): string {
  const backend = o.backend === undefined || o.backend === 'netns' ? '' : ` --backend ${o.backend}`;
  if (o.scheduleName !== undefined) return `npm run chaos --${backend} --schedule ${o.scheduleName} --seed ${o.seed}`;
  const kinds = o.kinds === undefined ? '' : ` --kinds ${o.kinds.join(',')}`;
  return `npm run chaos --${backend} --seed ${o.seed} --faults ${o.faults} --sync ${o.syncMode}${kinds}`;
}

/** A fresh, not yet started cluster on `backend` (the systemd one is loaded only when asked for). */
export async function createBackend(backend: BackendName, syncMode: SyncMode): Promise<ChaosBackend> {
  if (backend === 'systemd') {
    const { NspawnChaosCluster } = await import('./nspawn-cluster.ts');
    return new NspawnChaosCluster({ syncMode });
  }
  const { ChaosCluster } = await import('./cluster.ts');
  return new ChaosCluster({ syncMode });
}

/** Kinds of `kinds` that `backend` cannot inject. */
export function unsupportedKinds(backend: BackendName, kinds: readonly string[]): string[] {
  const can: readonly string[] = backend === 'netns' ? [...BACKEND_KINDS.netns, ...NETNS_FAULT_KINDS] : BACKEND_KINDS[backend];
  return kinds.filter((k) => !can.includes(k));
}

async function samplePrimaries(c: ChaosBackend, until: () => boolean, seen: Set<string>): Promise<number> {
  let doubles = 0;
  while (!until()) {
    const up = await c.primaries();
    for (const n of up) seen.add(n.name);
    if (up.length > 1) doubles++;
    await sleep(250); // the sampling interval: four looks a second for a second primary
  }
  return doubles;
}

/**
 * Wait until `clients` distinct clients of the workload (default all: the HAProxy clients and
 * the libpq one) each had a write acknowledged that it started at or after `sinceMs`
 * (Date.now()). A healthy cluster acknowledges within a second (HAProxy checks every 250 ms, a
 * libpq client reconnects at once); 30 s means the clients cannot write on it: the wait throws.
 */
async function writesAcknowledged(wl: Workload, sinceMs: number, clients = wl.o.clients + (wl.o.libpqHosts === undefined ? 0 : 1)): Promise<void> {
  await waitFor(`writes acknowledged from ${clients} client(s)`, async () =>
    new Set(wl.ops.filter((o) => o.outcome === 'ok' && o.invokeMs >= sinceMs).map((o) => o.client)).size >= clients, 30_000, 50);
}

async function runFault(c: ChaosBackend, spec: FaultSpec, index: number, pick: () => number, wl: Workload, log: (l: string) => void, prev: string | null): Promise<FaultEvent> {
  const firings = (await c.watchdogKills()).length;
  const p: ChaosNode = await c.waitHealthy(CONVERGE_MS);
  const unprovokedHandover = prev !== null && prev !== p.name;
  if (unprovokedHandover) log(`  primary changed from ${prev} to ${p.name} between faults`);
  const atMs = Date.now();
  const applied = await applyFault(c, spec.kind, p, pick);
  log(`fault ${index + 1}: ${spec.kind} on ${applied.target} (primary ${p.name}) for ${spec.holdMs} ms, at ${new Date(atMs).toISOString().slice(11, 23)} UTC`);
  let holding = true;
  const seen = new Set<string>();
  const sampler = samplePrimaries(c, () => !holding, seen);
  await sleep(spec.holdMs); // the point: the fault's duration
  await applied.heal();
  let convergedMs: number | null = null;
  let primaryAfter: string | null = null;
  try {
    const np = await c.waitHealthy(CONVERGE_MS);
    convergedMs = Date.now() - atMs;
    primaryAfter = np.name;
  } finally {
    holding = false;
  }
  const doublePrimarySamples = await sampler;
  // The outage of this fault ends with the first write acknowledged on the healed cluster: wait
  // for it. Without one within 30 s the outage is reported unknown ('?') and the run goes on.
  const healedMs = Date.now();
  await writesAcknowledged(wl, healedMs, 1).catch((e: Error) => log(`  ${e.message}`));
  const outage = outageAround(wl.ops, atMs, Date.now());
  const watchdogKills = (await c.watchdogKills()).slice(firings);
  const kills = watchdogKills.length === 0 ? '' : `, watchdog killed ${watchdogKills.join(', ')}`;
  log(`  converged after ${convergedMs} ms, primary ${primaryAfter}, write outage ${outage?.ms ?? '?'} ms${kills}`);
  const delay = applied.delay === undefined ? {} : { delay: { ...applied.delay, toleranceMs: delayToleranceMs(applied.delay.link, DYNAMIC) } };
  return { ...spec, index, target: applied.target, primaryBefore: p.name, primaryAfter, atMs, convergedMs, outage, doublePrimarySamples, unprovokedHandover, watchdogKills, ...delay };
}

async function finalState(c: ChaosBackend): Promise<{ ids: Set<number>; forks: ReturnType<typeof parseHistory>; tli: number }> {
  const p = await c.waitHealthy(CONVERGE_MS);
  const ids = new Set((await c.query<{ id: string }>(p, `select id::text from ${TABLE}`, 30_000)).map((r) => Number(r.id)));
  const hist = await c.query<{ name: string; body: string }>(p,
    "select name, pg_read_file('pg_wal/' || name) as body from pg_ls_waldir() where name like '%.history' order by name");
  const tliRow = await c.query<{ w: string }>(p, 'select pg_walfile_name(pg_current_wal_lsn()) as w');
  const tli = parseInt(tliRow[0]?.w.slice(0, 8) ?? '1', 16);
  const last = hist.at(-1);
  // The newest history file lists every ancestor's end; older files are its prefixes.
  const forks = last === undefined ? [] : parseHistory(last.body);
  // Every member must have converged on that timeline.
  for (const n of c.nodes.filter((x) => x !== p)) {
    const r = await c.query<{ tli: number }>(n, 'select received_tli as tli from pg_stat_wal_receiver');
    if (r[0]?.tli !== tli) throw new Error(`${n.name} streams timeline ${r[0]?.tli ?? 'none'}, the primary is on ${tli}`);
  }
  return { ids, forks, tli };
}

export async function runChaos(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? (() => undefined);
  const started = Date.now();
  const fixed = o.scheduleName === undefined ? undefined : FIXED_SCHEDULES[o.scheduleName];
  if (o.scheduleName !== undefined && fixed === undefined) throw new Error(`no schedule ${o.scheduleName}; known: ${Object.keys(FIXED_SCHEDULES).join(', ')}`);
  const backend = o.backend ?? 'netns';
  const specs = fixed?.faults ?? schedule(o.seed, o.faults, TTL_S, o.kinds ?? BACKEND_KINDS[backend]);
  const bad = unsupportedKinds(backend, specs.map((s) => s.kind));
  if (bad.length > 0) throw new Error(`the ${backend} backend cannot inject ${[...new Set(bad)].join(', ')}`);
  const syncMode = fixed?.syncMode ?? o.syncMode;
  const pick = rng(o.seed ^ 0x5bd1e995);
  const c = await createBackend(backend, syncMode);
  const wl = new Workload({ port: c.haproxyPort, clients: 4, intervalMs: 15, libpqHosts: c.nodes.map((n) => n.ip), libpqPort: c.pgPort });
  const events: FaultEvent[] = [];
  let verdict: Verdict | null = null;
  let failure: string | null = null;
  let converged = false;
  let current = 'start-up';
  try {
    log(`chaos: ${backend} backend, seed ${o.seed}, ${specs.length} faults, synchronous_mode ${syncMode}, dir ${c.dir}`);
    await c.start();
    log(`chaos: cluster up after ${Math.round((Date.now() - started) / 1000)} s`);
    const p = await c.waitHealthy(CONVERGE_MS);
    await c.query(p, CREATE_TABLE);
    wl.start();
    // Every client writing before the first fault (each outage is measured from an acknowledgement).
    await writesAcknowledged(wl, 0);
    for (const [i, spec] of specs.entries()) {
      current = `fault ${i + 1} (${spec.kind}, hold ${spec.holdMs} ms)`;
      events.push(await runFault(c, spec, i, pick, wl, log, events.at(-1)?.primaryAfter ?? null));
    }
    current = 'the final check';
    // Every client writes on the final cluster before the history is checked.
    await writesAcknowledged(wl, Date.now());
    await wl.stop();
    const fin = await finalState(c);
    converged = true;
    verdict = check(wl.ops, fin.ids, fin.forks, fin.tli);
    for (const e of events) if (e.kind === 'etcd-quorum-loss') e.promotedWithoutQuorum = newTimelineDuring(wl.ops, e.atMs, e.atMs + e.holdMs);
  } catch (e) {
    failure = `during ${current}: ${(e as Error).message}`;
    log(`chaos: FAILED: ${failure}`);
    await wl.stop();
  } finally {
    const violated = failure !== null || (verdict !== null && (verdict.splitBrain.length > 0 || (syncMode !== 'off' && verdict.lost.length > 0)));
    if (violated && o.keepLogsOnFailure === true) {
      const kept = mkdtempSync(join(tmpdir(), `pgha-chaos-failed-seed${o.seed}-`));
      try { c.keepLogs(kept); } catch (e) { log(`chaos: keeping the logs failed: ${(e as Error).message}`); }
      if (failure !== null) failure += ` (logs kept in ${kept})`;
      log(`chaos: logs kept in ${kept}`);
    }
    await c.destroy();
  }
  return { backend, backendDescription: c.description, seed: o.seed, syncMode, events, verdict, converged, failure, ops: wl.ops.length,
    command: reproduceCommand({ ...o, faults: specs.length }), durationMs: Date.now() - started };
}

/** The reasons a run fails: an error, lost acknowledged writes in a synchronous mode, split brain. */
export function violations(r: RunResult): string[] {
  const v: string[] = [];
  if (r.failure !== null) v.push(`run failed: ${r.failure}`);
  if (r.verdict === null) return v;
  for (const e of r.events) if (e.promotedWithoutQuorum === true) v.push(`fault ${e.index + 1}: a member was promoted while etcd had no quorum`);
  for (const e of r.events) {
    if (falseFailover(e)) v.push(`fault ${e.index + 1}: ${e.kind} (${e.delay!.ms} ms each way, tolerance ${e.delay!.toleranceMs} ms) moved the primary from ${e.primaryBefore} to ${e.primaryAfter ?? '?'}: a false failover`);
  }
  if (r.verdict.splitBrain.length > 0) v.push(`split brain: ${JSON.stringify(r.verdict.splitBrain)}`);
  if (r.syncMode !== 'off' && r.verdict.lost.length > 0) v.push(`${r.verdict.lost.length} acknowledged writes lost in synchronous mode: ${r.verdict.lost.slice(0, 5).map((x) => x.id).join(', ')}`);
  return v;
}

/** A failed run explained: the broken rules, the schedule and the command that reproduces it. */
export function explain(r: RunResult): string {
  return `${violations(r).join('\n')}\nschedule:\n${formatSchedule(r)}\nreproduce: ${r.command}`;
}

export function formatSchedule(r: RunResult): string {
  return r.events.map((e) => `${e.index + 1}. ${e.kind} on ${e.target} (primary ${e.primaryBefore}) hold ${e.holdMs} ms -> ${e.primaryAfter ?? '?'} in ${e.convergedMs ?? '?'} ms${e.watchdogKills.length > 0 ? `, watchdog killed ${e.watchdogKills.join(', ')}` : ''}`).join('\n');
}

export type { Op };
