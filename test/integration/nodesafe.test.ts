// The node's own safety with real etcd, PostgreSQL and agents:
// - finding 10: a fencing process that is killed is started again and still fences a frozen
//   leader at its deadline; one that keeps dying makes the leader stop PostgreSQL and exit;
// - finding 14: a standby whose scope is mistyped does not adopt its data as a new cluster;
// - an agent SIGKILLed while its initdb (bootstrap) or pg_basebackup (clone) writes into the data
//   directory starts over on restart (the <data_dir>.unfinished marker) instead of refusing the
//   half-made directory forever (fault lab, seed 1).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { childPids } from '../../src/postgres/datadir.ts';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { postmasterPid, sleep, tryKill, waitFor } from '../../lab/util.ts';

const TTL_S = 3;
const cluster = new TestCluster({ ttl: TTL_S }) // ports allocated (lab/ports.ts);
const [node1, node2] = cluster.nodes as [NodeHandle, NodeHandle, NodeHandle];

/** The agent's fencing process: its child running bin/pgha-fencer.pl. */
function fencerPid(n: NodeHandle): number | null {
  const agent = n.agent?.pid;
  if (agent === undefined) return null;
  for (const c of childPids(agent)) {
    try {
      if (readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('pgha-fencer.pl')) return c;
    } catch { /* gone */ }
  }
  return null;
}

/** Every process below `pid` (the agent's children and theirs: initdb's postgres --boot ...). */
function descendants(pid: number): number[] {
  const kids = childPids(pid);
  return [...kids, ...kids.flatMap(descendants)];
}

function comm(pid: number): string {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; }
}

/**
 * SIGKILL `n`'s agent and everything it started (as systemd's watchdog kills the unit's control
 * group) while its `bin` child has written part of the data directory. Polls /proc every 5 ms:
 * initdb and a small pg_basebackup take a second or two here.
 */
async function killAgentDuring(n: NodeHandle, bin: string): Promise<void> {
  const agent = n.agent?.pid;
  if (agent === undefined) throw new Error(`${n.name}: no agent`);
  const child = await waitFor(`${n.name} running ${bin}`, async () => descendants(agent).find((p) => comm(p) === bin), 60_000, 5);
  // A kill before the first file would leave an empty directory, which never was the problem.
  await waitFor(`${bin} writing into ${n.dataDir}`, async () => (existsSync(n.dataDir) && readdirSync(n.dataDir).length > 0) || comm(child) !== bin, 30_000, 5);
  tryKill(child, 'SIGSTOP'); // hold it mid-write while the agent goes
  const tree = descendants(agent);
  n.agent?.kill('SIGKILL');
  for (const p of tree) tryKill(p, 'SIGKILL');
  await waitFor(`${n.name} agent gone`, async () => n.agent === null, 10_000);
}

const systemId = async (n: NodeHandle) => (await cluster.rows<{ id: string }>(n, 'select system_identifier::text as id from pg_control_system()'))[0]?.id;

beforeAll(async () => {
  await cluster.startEtcd();
});
afterAll(async () => {
  for (const n of cluster.nodes) n.agent?.kill('SIGCONT');
  await cluster.destroy();
});

describe('an agent killed while it writes a new data directory', () => {
  it('in initdb (bootstrap): the restarted agent empties its unfinished directory and bootstraps', async () => {
    cluster.startAgent(node1);
    await killAgentDuring(node1, 'initdb');
    expect(readFileSync(`${node1.dataDir}.unfinished`, 'utf8')).toBe('bootstrap\n');
    expect(readdirSync(node1.dataDir).length).toBeGreaterThan(0);
    cluster.startAgent(node1);
    await waitFor('node1 primary', async () => (await cluster.probe(node1, '/primary')) === 200, 60_000);
    expect(cluster.logs(node1)).toMatch(/"event":"unfinished data dir"[^\n]*"step":"bootstrap"/);
    expect(existsSync(`${node1.dataDir}.unfinished`)).toBe(false);
  });

  it('in pg_basebackup (clone): the restarted agent clones afresh; the primary\'s data is untouched', async () => {
    await cluster.query(node1, 'create table kept (v text)');
    await cluster.query(node1, "insert into kept values ('before the kill')");
    const id = await systemId(node1);
    cluster.startAgent(node2);
    await killAgentDuring(node2, 'pg_basebackup');
    expect(readFileSync(`${node2.dataDir}.unfinished`, 'utf8')).toBe('clone\n');
    cluster.startAgent(node2);
    await waitFor('node2 streaming', async () => (await cluster.probe(node2, '/replica')) === 200, 60_000);
    expect(cluster.logs(node2)).toMatch(/"event":"unfinished data dir"[^\n]*"step":"clone"/);
    expect(existsSync(`${node2.dataDir}.unfinished`)).toBe(false);
    expect(await cluster.probe(node1, '/primary')).toBe(200);
    for (const n of [node1, node2]) {
      expect(await systemId(n)).toBe(id);
      expect(await cluster.rows(n, 'select v from kept')).toEqual([{ v: 'before the kill' }]);
    }
  });
});

describe('finding 14: a mistyped scope', () => {
  it('does not turn standby data into a new cluster', async () => {
    await cluster.stopAgent(node2);
    const cfg = parse(readFileSync(node2.configPath, 'utf8')) as { scope: string };
    writeFileSync(node2.configPath, stringify({ ...cfg, scope: `${cfg.scope}-typo` }));
    cluster.startAgent(node2);
    await waitFor('node2 refusing to adopt', async () => /is not adopted without bootstrap.adopt_system_id/.test(cluster.logs(node2)), 30_000);
    // Several loops later it still neither started its PostgreSQL nor took any leader key.
    await sleep(TTL_S * 1000);
    expect(await cluster.probe(node2, '/primary')).not.toBe(200);
    expect(postmasterPid(node2.dataDir)).toBeNull();
    expect(cluster.logs(node2)).not.toMatch(/"event":"adopted"|"event":"promoted"/);
    await cluster.stopAgent(node2);
    writeFileSync(node2.configPath, stringify(cfg));
  });
});

describe('finding 10: the fencing process', () => {
  it('is started again when killed, and still fences a frozen leader at its deadline', async () => {
    const first = await waitFor('node1 fencer', async () => fencerPid(node1), 10_000);
    process.kill(first, 'SIGKILL');
    const second = await waitFor('a new fencer', async () => { const p = fencerPid(node1); return p !== null && p !== first ? p : null; }, 10_000);
    expect(cluster.logs(node1)).toContain('the fencing process died (exit SIGKILL): starting it again');
    // Frozen agent: only the new fencing process can stop PostgreSQL, at the lease deadline.
    const pm = postmasterPid(node1.dataDir);
    expect(pm).not.toBeNull();
    node1.agent?.kill('SIGSTOP');
    const fencedAt = await waitFor('the new fencer fencing', async () => (postmasterPid(node1.dataDir) === null ? Date.now() : null), (TTL_S + 5) * 1000);
    expect(fencedAt).toBeGreaterThan(0);
    expect(fencerPid(node1)).toBe(second);
    node1.agent?.kill('SIGCONT');
    await waitFor('node1 primary again', async () => (await cluster.probe(node1, '/primary')) === 200, 60_000);
  });

  it('that keeps dying makes the leader stop PostgreSQL and exit with PGHA_FENCER_LOST', async () => {
    const agent = node1.agent;
    expect(agent).not.toBeNull();
    const exited = new Promise<number | null>((resolve) => agent?.once('exit', (code) => resolve(code)));
    // More deaths within a minute than the agent restarts (fencer-client.ts MAX_RESTARTS: 3); the
    // one in the test above counts too, so the agent may give up before the fourth kill here.
    let kills = 0;
    for (; kills < 4; kills++) {
      const pid = await waitFor('a fencer, or the agent gone', async () => fencerPid(node1) ?? (node1.agent === null ? -1 : null), 10_000);
      if (pid === -1) break;
      process.kill(pid, 'SIGKILL');
      await waitFor('it is gone', async () => fencerPid(node1) !== pid, 10_000);
    }
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(await Promise.race([exited, sleep(30_000).then(() => 'timeout')])).toBe(1);
    expect(postmasterPid(node1.dataDir)).toBeNull();
    expect(cluster.logs(node1)).toContain('PGHA_FENCER_LOST');
  });
});
