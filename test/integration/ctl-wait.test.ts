// pghactl's disruptive commands against a real cluster: each refuses without a terminal and names
// the flag to add, which it then accepts; switchover, failover, restart and reinit return only
// once the effect is visible (new leader answering /primary, member streaming again) and say so;
// a switchover that cannot happen exits 1; history names the reason; a promoted standby has no
// setting pending a restart. pghactl runs as a child process (stdin is a pipe, not a terminal).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, postmasterPid, sleep, waitFor } from '../../lab/util.ts';

const TTL_S = 3;
const cluster = new TestCluster({ ttl: TTL_S });
const tmp = mkdtempSync(join(tmpdir(), 'pgha-ctl-wait-'));

interface Run { code: number; stdout: string; stderr: string; ms: number }
function ctl(...args: string[]): Promise<Run> {
  const t = performance.now();
  return new Promise((resolve) => {
    // 100 s: above pghactl's own handover deadline (67 s at ttl 3), so pghactl reports first.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 100_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr, ms: performance.now() - t });
    });
  });
}
async function ctlJson<T>(...args: string[]): Promise<T> {
  const r = await ctl(...args, '--format', 'json');
  if (r.code !== 0) throw new Error(`pghactl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Runs the command without a confirmation flag, checks the refusal, and returns the flag it names. */
async function flagNamedByRefusal(...args: string[]): Promise<string> {
  const r = await ctl(...args);
  expect(r.code, r.stderr).toBe(1);
  const m = /Not confirmed: add (--[a-z-]+) to run without a terminal/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return m![1]!;
}

interface Row { member: string; role: string; state: string; pending_restart: boolean }
const list = () => ctlJson<Row[]>('list');
const node = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;
// Bootstrap plus two clones take seconds when idle; 110 s covers a loaded 2-core CI machine.
async function healthy(): Promise<string> {
  // Healthy by the agents' checks, and pghactl list agrees.
  return (await cluster.waitHealthy(110_000, {
    also: async (p) => {
      const rows = await list();
      const leader = rows.find((r) => r.role === 'Leader' && r.state === 'running');
      return leader?.member === p.name && rows.filter((r) => r.role !== 'Leader' && r.state === 'streaming').length === 2;
    },
  })).name;
}
/** A promoted member publishes pending_restart with each loop (0.5 s): 3 s is six loops. */
async function nothingPendingAfterPromotion(leader: string): Promise<void> {
  await sleep(3000);
  const status = await cluster.status(node(leader));
  expect(status?.pending_restart, `${leader} /status`).toBe(false);
  expect((await list()).filter((r) => r.pending_restart).map((r) => r.member)).toEqual([]);
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  await healthy();
});
afterAll(async () => {
  await cluster.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

describe('pghactl waits for what it asked', () => {
  it('switchover: the refusal names --force, which it accepts; returns once the candidate leads; history says switchover; nothing pending restart', async () => {
    const old = await healthy();
    const target = cluster.nodes.find((n) => n.name !== old)!.name;
    const flag = await flagNamedByRefusal('switchover', '--candidate', target);
    expect(flag).toBe('--force');
    const r = await ctl('switchover', '--candidate', target, flag);
    expect(r.code, r.stderr).toBe(0);
    // Already done when pghactl returns: no waiting here.
    expect((await cluster.primary())?.name).toBe(target);
    expect(await cluster.probe(node(target), '/primary')).toBe(200);
    expect(r.stdout).toMatch(new RegExp(`^switchover done: ${target} is the leader \\(was ${old}\\); the handover took (\\d+ ms|\\d+\\.\\d\\d s)\\n$`));
    const history = await ctlJson<Array<{ leader: string; reason: string }>>('history');
    expect(history.at(-1)).toMatchObject({ leader: target, reason: 'switchover' });
    await healthy();
    await nothingPendingAfterPromotion(target);
  });

  it('switchover --format json: the result with full precision; --no-wait returns before the handover', async () => {
    const old = await healthy();
    const target = cluster.nodes.find((n) => n.name !== old)!.name;
    const j = await ctlJson<{ candidate: string; result: { leader: string; previous: string; seconds: number } }>('switchover', '--candidate', target, '--yes');
    expect(j.result).toMatchObject({ leader: target, previous: old });
    expect(j.result.seconds).toBeGreaterThan(0);
    expect(j.result.seconds).toBeLessThan(30);
    const back = await healthy();
    const next = cluster.nodes.find((n) => n.name !== back)!.name;
    const nowait = await ctlJson<{ candidate: string; result?: unknown }>('switchover', '--candidate', next, '--force', '--no-wait');
    expect(nowait.candidate).toBe(next);
    expect(nowait.result).toBeUndefined();
    await waitFor('the switchover requested without waiting', async () => (await cluster.primary())?.name === next, 30_000);
    await healthy();
  });

  it('a switchover whose candidate never takes over exits 1 with PGHA_CLI_NOT_DONE', { timeout: 180_000 }, async () => {
    const old = await healthy();
    const target = cluster.nodes.find((n) => n.name !== old)!;
    // The candidate's agent hangs (its PostgreSQL streams on): the leader steps down for it, it
    // never takes the key, the request goes stale after 30 s and another member leads.
    const agent = target.agent!.pid!;
    process.kill(agent, 'SIGSTOP');
    let r: Run;
    try {
      r = await ctl('switchover', '--candidate', target.name, '--force');
    } finally {
      process.kill(agent, 'SIGCONT');
    }
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/PGHA_CLI_NOT_DONE: switchover did not (happen|complete)/);
    await healthy();
  });

  it('failover --force: waits for the candidate, history says manual failover', async () => {
    const old = await healthy();
    const target = cluster.nodes.find((n) => n.name !== old)!.name;
    expect(await flagNamedByRefusal('failover', '--candidate', target)).toBe('--force');
    const r = await ctl('failover', '--candidate', target, '--force');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: .* holds the leader key/);
    expect((await cluster.primary())?.name).toBe(target);
    expect(r.stdout).toMatch(new RegExp(`^failover done: ${target} is the leader \\(was ${old}\\)`));
    expect((await ctlJson<Array<{ leader: string; reason: string }>>('history')).at(-1)).toMatchObject({ leader: target, reason: 'manual failover' });
    await healthy();
    await nothingPendingAfterPromotion(target);
  });

  it('restart: the refusal names --force; returns once the standby streams again', async () => {
    const leader = await healthy();
    const standby = cluster.nodes.find((n) => n.name !== leader)!;
    const pid = postmasterPid(standby.dataDir);
    const flag = await flagNamedByRefusal('restart', standby.name);
    const j = await ctlJson<{ restart: string[]; members: Array<{ member: string; seconds: number }> }>('restart', standby.name, flag);
    expect(j.restart).toEqual([standby.name]);
    expect(j.members[0]?.seconds).toBeGreaterThan(0);
    expect(postmasterPid(standby.dataDir)).not.toBe(pid);
    expect(await cluster.probe(standby, '/replica')).toBe(200);
    expect((await cluster.status(standby))?.state).toBe('streaming');
  });

  it('reinit: the refusal names --force; returns once the rebuilt standby streams', async () => {
    const leader = await healthy();
    const standby = cluster.nodes.find((n) => n.name !== leader)!;
    const pid = postmasterPid(standby.dataDir);
    const flag = await flagNamedByRefusal('reinit', standby.name);
    const r = await ctl('reinit', standby.name, flag);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^reinit done: ${standby.name} streams again, rebuilt in`));
    expect(postmasterPid(standby.dataDir)).not.toBe(pid);
    expect(await cluster.probe(standby, '/replica')).toBe(200);
    expect(cluster.logs(standby)).toContain('"event":"clone"');
  });

  it('drill: the refusal names --force, which drill accepts; availability reads its kill-primary result and synchronous_mode', async () => {
    await healthy();
    const flag = await flagNamedByRefusal('drill', '--kind', 'kill-primary');
    const kill = await ctlJson<{ summary: { kind: string; median_outage_s: number; synchronous_mode: string } }>('drill', '--kind', 'kill-primary', flag);
    expect(kill.summary).toMatchObject({ kind: 'kill-primary', synchronous_mode: 'off' });
    const file = join(tmp, 'kill.json');
    writeFileSync(file, JSON.stringify(kill));
    const a = await ctl('availability', '--from-drill', file);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/per failover, from the kill-primary drill/);
    expect(a.stdout).toMatch(/synchronous_mode is off/);
    await healthy();
  });
});
