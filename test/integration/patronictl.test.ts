// Debian's patronictl (Patroni 3.0.2) against a pgha cluster (issue 20): its read commands show
// what pgha wrote in Patroni's formats, and its write commands do what they say: switchover and
// failover move the leader, edit-config/pause/resume change /config, restart restarts PostgreSQL,
// reinit re-clones a replica. patronictl reads and writes etcd itself and calls the members'
// REST API (ctl.py), exactly as it does against Patroni.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { postmasterPid, waitFor } from '../../lab/util.ts';

const cluster = new TestCluster({ ttl: 3 });
const ctlConfig = join(cluster.dir, 'patronictl.yml');

interface Run { code: number; stdout: string; stderr: string }
function patronictl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // patronictl answers within seconds; 60 s covers a loaded 2-core machine.
    execFile('/usr/bin/patronictl', ['-c', ctlConfig, ...args], { timeout: 60_000, env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: cluster.dir } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}
async function ok(...args: string[]): Promise<string> {
  const r = await patronictl(...args);
  if (r.code !== 0) throw new Error(`patronictl ${args.join(' ')} failed (${r.code}): ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
interface Row { Cluster: string; Member: string; Host: string; Role: string; State: string; TL: number | string; 'Lag in MB': number | string }
const list = async (): Promise<Row[]> => JSON.parse(await ok('list', '--format', 'json')) as Row[];
const node = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;
async function dynamicConfig(n: NodeHandle): Promise<Record<string, unknown>> {
  return (await fetch(`${cluster.apiBase(n)}/config`)).json() as Promise<Record<string, unknown>>;
}

/** One leader (per patronictl and per the /primary checks), two replicas streaming with a known lag. */
async function healthy(): Promise<string> {
  // Bootstrap plus two clones take seconds when idle; 110 s covers a loaded 2-core machine.
  return (await cluster.waitHealthy(110_000, {
    intervalMs: 300,
    // patronictl list agrees: the same leader running, two replicas running with a known lag.
    also: async (p) => {
      const rows = await list();
      const leader = rows.find((r) => r.Role === 'Leader' && r.State === 'running');
      return leader?.Member === p.name && rows.filter((r) => r.Role !== 'Leader' && r.State === 'running' && typeof r['Lag in MB'] === 'number').length === 2;
    },
  })).name;
}

beforeAll(async () => {
  writeFileSync(ctlConfig, stringify({ scope: 'itest', namespace: '/pgha-test/', etcd3: { hosts: cluster.etcdEndpoint }, ctl: { auth: 'admin:admin-pw' } }), { mode: 0o600 });
  await cluster.startEtcd();
  cluster.startAll();
  await healthy();
}, 120_000);
afterAll(async () => { await cluster.destroy(); });

describe('patronictl 3.0.2 against pgha', () => {
  it('list: hosts, roles, states, timelines and lag', async () => {
    const rows = await list();
    expect(rows.map((r) => r.Member)).toEqual(['node1', 'node2', 'node3']);
    for (const r of rows) {
      expect(r.Cluster).toBe('itest');
      expect(r.Host).toBe(`127.0.0.1:${node(r.Member).pgPort}`);
      expect(r.TL).toBe(1);
    }
    expect(rows.filter((r) => r.Role === 'Leader')).toHaveLength(1);
    expect(rows.filter((r) => r.Role === 'Replica').every((r) => typeof r['Lag in MB'] === 'number')).toBe(true);
  });

  it('topology: the replicas under the leader', async () => {
    const leader = await healthy();
    const out = await ok('topology');
    const lines = out.split('\n').filter((l) => /node\d/.test(l));
    expect(lines[0]).toContain(leader);
    expect(lines.slice(1).every((l) => /\+ node\d/.test(l))).toBe(true);
  });

  it('switchover: the leader moves to the candidate, and history shows it', async () => {
    const old = await healthy();
    const target = old === 'node1' ? 'node2' : 'node1';
    const out = await ok('switchover', '--candidate', target, '--force');
    expect(out).not.toMatch(/failed/i);
    // pgha answers once the request is stored; the handover itself takes about a second.
    await waitFor(`${target} leads`, async () => (await cluster.primary())?.name === target, 30_000);
    expect(await healthy()).toBe(target);
    const history = JSON.parse(await ok('history', '--format', 'json')) as Array<Record<string, unknown>>;
    expect(history.at(-1)).toMatchObject({ TL: 1, Reason: 'switchover', 'New Leader': target });
    expect(typeof history.at(-1)?.['LSN']).toBe('number');
    expect((await list()).find((r) => r.Member === target)?.TL).toBe(2);
  });

  it('a switchover to the leader itself fails clearly', async () => {
    const leader = await healthy();
    const r = await patronictl('switchover', '--leader', leader, '--candidate', leader, '--force');
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/target and source are the same/);
  });

  it('show-config and edit-config: Patroni\'s view of /config, edits reach the agents', async () => {
    const shown = await ok('show-config');
    expect(shown).toMatch(/^ttl: 3$/m);
    expect(shown).toMatch(/^fence_margin: 0.75$/m);
    expect(shown).toMatch(/^synchronous_mode: false$/m);
    await ok('edit-config', '--set', 'maximum_lag_on_failover=2097152', '--force');
    await waitFor('the agents run with the edit', async () => {
      const cs = await Promise.all(cluster.nodes.map(dynamicConfig));
      return cs.every((c) => c['maximum_lag_on_failover'] === 2097152);
    }, 10_000);
    expect(await ok('show-config')).toMatch(/^maximum_lag_on_failover: 2097152$/m);
  });

  it('pause and resume: maintenance mode on every agent', async () => {
    await healthy();
    expect(await ok('pause')).toMatch(/Success: cluster management is paused/);
    await waitFor('the agents see pause', async () => (await Promise.all(cluster.nodes.map(dynamicConfig))).every((c) => c['pause'] === true), 10_000);
    expect(await ok('list')).toMatch(/Maintenance mode: on/);
    expect(await ok('resume')).toMatch(/Success: cluster management is resumed/);
    await waitFor('the agents see resume', async () => (await Promise.all(cluster.nodes.map(dynamicConfig))).every((c) => c['pause'] === false), 10_000);
  });

  it('failover: the named candidate takes over', async () => {
    const old = await healthy();
    const target = cluster.nodes.map((n) => n.name).find((n) => n !== old) as string;
    const out = await ok('failover', '--candidate', target, '--force');
    expect(out).not.toMatch(/failed/i);
    await waitFor(`${target} leads`, async () => (await cluster.primary())?.name === target, 30_000);
    expect(await healthy()).toBe(target);
  });

  it('restart: PostgreSQL of the named member restarts', async () => {
    const leader = await healthy();
    const replica = cluster.nodes.find((n) => n.name !== leader) as NodeHandle;
    const before = postmasterPid(replica.dataDir);
    const out = await ok('restart', 'itest', replica.name, '--force');
    expect(out).toMatch(new RegExp(`Success: restart on member ${replica.name}`));
    const after = postmasterPid(replica.dataDir);
    expect(after).not.toBeNull();
    expect(after).not.toBe(before);
    await healthy();
  });

  it('reinit: the named replica is cloned again from the leader', async () => {
    const leader = await healthy();
    const replica = cluster.nodes.find((n) => n.name !== leader) as NodeHandle;
    const clones = () => cluster.logs(replica).split('\n').filter((l) => l.includes('"event":"reinitialize"')).length;
    const before = clones();
    const out = await ok('reinit', 'itest', replica.name, '--force');
    expect(out).toMatch(new RegExp(`Success: reinitialize for member ${replica.name}`));
    expect(clones()).toBe(before + 1);
    await healthy();
    // --wait polls GET /patroni every 2 s until the state is no longer "creating replica"
    // (Patroni's word; pgha's /status says "cloning"): when it returns, the clone is done.
    const states = new Set<string>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const body = await fetch(`${cluster.apiBase(replica)}/patroni`, { signal: AbortSignal.timeout(1000) }).then((x) => x.json() as Promise<{ state: string }>, () => null);
        if (body !== null) states.add(body.state);
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const waited = await ok('reinit', 'itest', replica.name, '--force', '--wait');
    polling = false;
    await poller;
    expect(waited).toMatch(new RegExp(`Reinitialize is completed on: ${replica.name}`));
    expect(states).toContain('creating replica');
    expect(states).not.toContain('cloning');
    // PostgreSQL is up by then (the member reads "cloning" until its start is done and observed):
    // "running" until its WAL receiver connects, then "streaming".
    const st = await cluster.status(replica);
    expect(['running', 'streaming']).toContain(st?.state);
    await healthy();
    // patronictl itself offers only replicas (ctl.py get_members with role replica).
    const r = await patronictl('reinit', 'itest', leader, '--force');
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/No replica among provided members/);
  });
});
