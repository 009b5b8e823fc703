// Live migration of a running Patroni 3.0.2 cluster to pgha, member by member, and back, under a
// write probe through HAProxy (checking /primary on each member's REST port); and a mixed cluster
// (two Patroni members, one pgha) surviving a crash of its leader. Real Patroni (Debian's
// /usr/bin/patroni), etcd 3.4 (v3 API), PostgreSQL 15, HAProxy. Synchronous mode throughout, so
// every acknowledged write must be on the final leader.
//
// Timing: Patroni's ttl 10 / loop_wait 2 / retry_timeout 3 (Patroni's rule loop_wait + 2 x
// retry_timeout <= ttl holds: 8 <= 10; pgha's split-brain rule loop_wait + retry_timeout +
// fence_margin (0.5) <= ttl holds: 5.5 <= 10). Outage bounds asserted:
// - the one switchover: under 15 s. A switchover stops the old primary cleanly, releases the key,
//   the candidate promotes, HAProxy sees its /primary within 250 ms; in Patroni's hands each of
//   these steps waits for a loop (loop_wait 2 s) at most, plus a checkpoint: a few seconds; 15 s
//   is ttl + a loop + slack for a loaded 2-core machine, and a regression to pgha's old 30 s
//   wait for a shutdown_lsn would fail it.
// - replacing a standby's agent: under 8 s. In synchronous mode, stopping the synchronous standby
//   holds commits until the leader names another one (Patroni: its next loop, loop_wait 2 s;
//   pgha: its next loop); 8 s = loop_wait + retry_timeout + slack.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, sleep, waitFor } from '../support/cluster.ts';
import { API_AUTH, MixedCluster, type Agent, type MixedNode } from '../support/patroni.ts';
import { WriteProbe, type Outcome } from '../../lab/probe.ts';
import { allocatePorts } from '../../lab/ports.ts';

const TIMING = { ttl: 10, loop_wait: 2, retry_timeout: 3 };
const SWITCHOVER_BOUND_MS = 15_000;
const REPLACE_BOUND_MS = 8_000;
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} migration: ${s}\n`);

function pghactl(c: MixedCluster, scope: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // pghactl reads etcd once; 30 s covers a loaded machine.
    execFile(process.execPath, [join(REPO, 'bin/pghactl.js'), '--etcd', c.etcdEndpoint, '--scope', scope, '--namespace', '/migration/', ...args],
      { timeout: 30_000, env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: c.dir } }, (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`pghactl ${args.join(' ')}: ${err.message} ${stdout} ${stderr}`))));
  });
}

/**
 * Lab's write probe through HAProxy's read-write port: ids 1, 2, ... into table probe, one at a
 * time on one session (reconnecting after any error), each write classified (lab/probe.ts).
 */
function writeProbe(port: number): WriteProbe {
  // 1 s to connect: HAProxy answers at once, a longer wait would hide an outage in one attempt;
  // 2 s per write; 20 ms between writes: ~50 a second, enough to time an outage to a few tens of ms.
  return new WriteProbe({ port, table: 'probe', connectMs: 1000, queryMs: 2000, pauseMs: 20 });
}
const ids = (p: WriteProbe, o: Outcome): number[] => p.attempts.filter((a) => a.outcome === o).map((a) => a.id);

const basic = `Basic ${Buffer.from(`${API_AUTH.username}:${API_AUTH.password}`).toString('base64')}`;

/** The synchronous standby named in /sync (Patroni's and pgha's format alike). */
async function syncStandby(c: MixedCluster, scope: string): Promise<string> {
  return waitFor('a synchronous standby in /sync', async () => {
    const v = await c.etcdGet(`/migration/${scope}/sync`);
    const s = v === null ? null : (JSON.parse(v) as { sync_standby?: string | null }).sync_standby;
    return typeof s === 'string' && s !== '' ? s.split(',')[0]! : null;
  }, 30_000, 200);
}

/** Ask the leader's agent (Patroni or pgha) for a switchover to `candidate`; both take Patroni's body. */
async function switchover(leader: MixedNode, candidate: string): Promise<void> {
  // Patroni answers once the new leader holds the key (it polls up to 30 s); pgha answers 202 at once.
  const r = await fetch(`http://127.0.0.1:${leader.apiPort}/switchover`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: basic },
    body: JSON.stringify({ leader: leader.name, candidate }), signal: AbortSignal.timeout(60_000),
  });
  const text = await r.text();
  if (r.status !== 200 && r.status !== 202) throw new Error(`POST /switchover to ${leader.name} (${leader.agent}): ${r.status} ${text}`);
}

interface Phase { name: string; from: number; to: number; gapMs: number; bound: number }

describe('live migration Patroni -> pgha -> Patroni under a write probe', () => {
  const SCOPE = 'mig';
  const RW = allocatePorts(2); // HAProxy's read-write port, and its read-only one
  const c = new MixedCluster({ scope: SCOPE, dcs: { ...TIMING, synchronous_mode: true } });
  const probe = writeProbe(RW);
  const phases: Phase[] = [];

  beforeAll(async () => {
    await c.startEtcd();
    c.start(c.nodes[0]!, 'patroni');
    // Patroni bootstraps (initdb) in a few seconds; 90 s covers a loaded machine.
    const first = await waitFor('m1 primary', async () => ((await c.primaries())[0] === c.nodes[0] ? true : null), 90_000, 250);
    expect(first).toBe(true);
    c.start(c.nodes[1]!, 'patroni');
    c.start(c.nodes[2]!, 'patroni');
    const p = await c.healthy();
    await c.query(p, 'create table probe (id int primary key, at timestamptz default clock_timestamp())');
    c.startHaproxy(RW);
    probe.start();
    // HAProxy needs one good check (250 ms) after it starts; 30 s is for a loaded machine.
    await waitFor('the probe writing through HAProxy', async () => probe.acked().length > 0, 30_000);
  }, 180_000);

  afterAll(async () => {
    await Promise.race([probe.stop(), sleep(5000)]);
    await c.teardown();
  }, 60_000);

  /** Replace n's agent by `to` on the same data directory and config file; time the write gap. */
  async function replace(n: MixedNode, to: Agent): Promise<void> {
    const from = performance.now();
    const was = n.agent;
    await c.stop(n);
    // The way back: pgha's settings file would stay included if Patroni kept postgresql.conf
    // (it does when pgha initialized the directory): remove it, as docs/migrating-from-patroni.md says.
    if (to === 'patroni') rmSync(join(n.dataDir, 'pgha.conf'), { force: true });
    c.start(n, to);
    await c.healthy();
    const to_ = performance.now();
    phases.push({ name: `${n.name}: ${was} -> ${to}`, from, to: to_, gapMs: 0, bound: REPLACE_BOUND_MS });
    log(`${n.name}: ${was} -> ${to} done in ${Math.round(to_ - from)} ms`);
  }

  async function switchTo(kind: Agent): Promise<void> {
    const leader = await c.healthy();
    const cand = await syncStandby(c, SCOPE);
    const target = c.nodes.find((n) => n.name === cand)!;
    expect(target.agent).toBe(kind);
    const from = performance.now();
    await switchover(leader, cand);
    // The new leader's /primary answers 200 once it has promoted: HAProxy follows within 250 ms.
    await waitFor(`${cand} primary`, async () => { const ps = await c.primaries(); return ps.length === 1 && ps[0] === target ? true : null; }, 60_000, 50);
    const promoted = performance.now();
    await waitFor('a write after the switchover', async () => probe.attempts.some((a) => a.ok && a.start > promoted), 30_000, 20);
    const to = performance.now();
    phases.push({ name: `switchover ${leader.name} (${leader.agent}) -> ${cand} (${kind})`, from, to, gapMs: 0, bound: SWITCHOVER_BOUND_MS });
    log(`switchover ${leader.name} -> ${cand} took ${Math.round(to - from)} ms`);
    // The old leader follows the new one before its agent is replaced: Patroni stopped while its
    // demotion still runs starts PostgreSQL again after it exited (seen here), leaving an orphan.
    await c.healthy();
  }

  /** The standbys, the asynchronous one first (stopping it holds no commit). */
  async function standbysAsyncFirst(): Promise<MixedNode[]> {
    const leader = await c.healthy();
    const sync = await syncStandby(c, SCOPE);
    return c.nodes.filter((n) => n !== leader).sort((a, b) => (a.name === sync ? 1 : 0) - (b.name === sync ? 1 : 0));
  }

  it('moves every member to pgha and back with one switchover each way, losing no acknowledged write', async () => {
    // Forward: the two standbys, then the leader moves to a pgha member, then the last Patroni member.
    const oldLeader = await c.healthy();
    for (const n of await standbysAsyncFirst()) await replace(n, 'pgha');
    const mixed = await pghactl(c, SCOPE, 'list');
    log(`pghactl list (mixed):\n${mixed}`);
    expect(mixed).toContain('is Patroni\'s while Patroni members remain');
    await switchTo('pgha');
    await replace(oldLeader, 'pgha');
    const after = await pghactl(c, SCOPE, 'list');
    log(`pghactl list (all pgha):\n${after}`);
    expect(after).toContain('pghactl edit-config --set ttl=2 --set loop_wait=0.5 --set retry_timeout=0.75');
    expect(c.nodes.every((n) => n.agent === 'pgha')).toBe(true);

    // Back: the same, towards Patroni.
    const pghaLeader = await c.healthy();
    for (const n of await standbysAsyncFirst()) await replace(n, 'patroni');
    await switchTo('patroni');
    await replace(pghaLeader, 'patroni');
    expect(c.nodes.every((n) => n.agent === 'patroni')).toBe(true);

    const final = await c.healthy();
    await sleep(1000);
    await probe.stop();
    const have = new Set((await c.query<{ id: number }>(final, 'select id from probe')).rows.map((r) => r.id));
    const acked = probe.acked();
    const lost = acked.filter((id) => !have.has(id));
    const failedPresent = ids(probe, 'fail').filter((id) => have.has(id));
    for (const p of phases) p.gapMs = probe.longestGapWithin(p.from, p.to);
    // Every other gap (between phases, while waiting for health) must be ordinary.
    const elsewhere = probe.longestGapWithin(-Infinity, Infinity, phases);
    const report = phases.map((p) => `  ${p.name}: longest write gap ${(p.gapMs / 1000).toFixed(2)} s (bound ${p.bound / 1000} s)`).join('\n') +
      `\n  outside these steps: longest write gap ${(elsewhere / 1000).toFixed(2)} s (bound ${REPLACE_BOUND_MS / 1000} s)`;
    log(`writes: ${acked.length} acknowledged, ${ids(probe, 'fail').length} failed, ${ids(probe, 'unknown').length} unknown; ` +
      `acknowledged lost: ${lost.length}; failed yet present: ${failedPresent.length}\n${report}`);
    expect(lost).toEqual([]);
    for (const p of phases) expect(p.gapMs, p.name).toBeLessThan(p.bound);
    expect(elsewhere).toBeLessThan(REPLACE_BOUND_MS);
  }, 360_000);
});

describe('a mixed cluster (two Patroni members, one pgha) survives a crash of its Patroni leader', () => {
  const SCOPE = 'mixcrash';
  const RW = allocatePorts(2); // HAProxy's read-write port, and its read-only one
  // m2 (Patroni) is tagged nosync, so the Patroni leader names m3 (pgha) its synchronous standby:
  // after the crash only m3 may promote, and the other Patroni member must respect its key.
  const c = new MixedCluster({ scope: SCOPE, dcs: { ...TIMING, synchronous_mode: true }, tags: (i) => (i === 2 ? { nosync: true } : {}) });
  const probe = writeProbe(RW);

  afterAll(async () => {
    await Promise.race([probe.stop(), sleep(5000)]);
    await c.teardown();
  }, 60_000);

  it('elects exactly one primary (the pgha synchronous standby) and keeps every acknowledged write', async () => {
    await c.startEtcd();
    c.start(c.nodes[0]!, 'patroni');
    // Patroni bootstraps in a few seconds; 90 s covers a loaded machine.
    await waitFor('m1 primary', async () => ((await c.primaries())[0] === c.nodes[0] ? true : null), 90_000, 250);
    c.start(c.nodes[1]!, 'patroni');
    c.start(c.nodes[2]!, 'patroni');
    let p = await c.healthy();
    await c.query(p, 'create table probe (id int primary key, at timestamptz default clock_timestamp())');
    // m3 moves to pgha (a standby: m1 bootstrapped and leads).
    await c.stop(c.nodes[2]!);
    c.start(c.nodes[2]!, 'pgha');
    p = await c.healthy();
    c.startHaproxy(RW);
    probe.start();
    await waitFor('the probe writing through HAProxy', async () => probe.acked().length > 0, 30_000);
    // The Patroni leader names m3 in /sync once PostgreSQL reports it synchronous (a loop or two
    // after m3 came back under pgha); until then /sync is empty and any member may race.
    await waitFor('m3 in /sync', async () => (await syncStandby(c, SCOPE)) === 'm3', 60_000, 250);
    await sleep(1000);

    const at = performance.now();
    const agent = p.agent!;
    log(`crashing leader ${p.name} (${agent})`);
    c.kill(p);
    // The key expires after ttl (10 s); a standby's next loop races and promotes: ttl + loops + slack.
    const next = await waitFor('another primary', async () => { const ps = await c.primaries(); return ps.length === 1 && ps[0] !== p ? ps[0] : null; }, 60_000, 100);
    log(`new leader ${next.name} (${next.agent})`);
    expect([next.name, next.agent]).toEqual(['m3', 'pgha']);
    // Exactly one primary, for several checks in a row (no second one appears): by the agents'
    // /primary, and by PostgreSQL itself on every server that answers.
    for (let i = 0; i < 10; i++) {
      const ps = await c.primaries();
      expect(ps.map((n) => n.name)).toEqual([next.name]);
      const writable = await Promise.all(c.nodes.map((n) => c.query<{ r: boolean }>(n, 'select pg_is_in_recovery() as r').then((q) => !q.rows[0]!.r, () => false)));
      expect(c.nodes.filter((_, k) => writable[k]).map((n) => n.name)).toEqual([next.name]);
      await sleep(300);
    }
    await waitFor('a write after the failover', async () => probe.attempts.some((a) => a.ok && a.start > at), 30_000, 50);
    await sleep(1000);
    await probe.stop();
    const have = new Set((await c.query<{ id: number }>(next, 'select id from probe')).rows.map((r) => r.id));
    const acked = probe.acked();
    const lost = acked.filter((id) => !have.has(id));
    log(`crash of ${p.name} (${agent}): new leader ${next.name} (${next.agent}), write gap ${(probe.longestGapWithin(at, performance.now()) / 1000).toFixed(2)} s; ` +
      `${acked.length} acknowledged, ${ids(probe, 'unknown').length} unknown, acknowledged lost: ${lost.length}`);
    expect(lost).toEqual([]);
    // The old leader comes back under its agent and follows (rewinding if needed).
    await waitFor(`${p.name}'s agent gone`, async () => p.proc === null, 10_000, 50);
    c.start(p, agent);
    await c.healthy();
  }, 240_000);
});
