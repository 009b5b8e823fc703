// Callbacks and live reload on a real cluster. Every node runs the same recording script as its
// on_* callbacks, before_stop and (node1, node2) pre_promote; node3's pre_promote always vetoes,
// and node3 has the highest failover_priority, so it is the first to try in a tie. Checks: the
// argv Patroni passes (action role scope), a switchover and a failover to node3 vetoed and taken
// by another member, SIGHUP with a good file (log level, tags, parameters applied; a restart-only
// field reported), POST /reload-agent, and SIGHUP with a bad file (agent keeps running, old config).
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, type NodeHandle } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';

const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
const dir = mkdtempSync(join(tmpdir(), 'pgha-cbit-'));
chmodSync(dir, 0o755);
chownSync(dir, uid, gid);
const record = join(dir, 'callbacks.log');
writeFileSync(record, '');
chownSync(record, uid, gid);
const script = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
};
const ok = script('record.sh', `echo "$*" >> ${record}`);
const veto = script('veto.sh', `echo "$*" >> ${record}; echo "cannot fence the old primary" >&2; exit 1`);
const ACTIONS = ['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'];

const AUTH = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`;
const cluster = new TestCluster({
  ttl: 3,
  tags: (i) => (i === 3 ? { failover_priority: 2 } : {}),
  configure: (i, cfg) => {
    cfg.postgresql.callbacks = Object.fromEntries(ACTIONS.map((a) => [a, [ok, `node${i}`]]));
    cfg.postgresql.pre_promote = [i === 3 ? veto : ok, `node${i}`];
    cfg.postgresql.before_stop = [ok, `node${i}`];
    cfg.postgresql.pre_promote_timeout = 5;
  },
});
const node = (name: string) => cluster.nodes.find((n) => n.name === name) as NodeHandle;
const recorded = () => readFileSync(record, 'utf8').split('\n').filter(Boolean);
async function primaryName(): Promise<string | null> { return (await cluster.primary())?.name ?? null; }
async function streaming(count: number): Promise<string> {
  return (await cluster.waitHealthy(110_000, { standbys: count })).name;
}
function editConfig(n: NodeHandle, edit: (cfg: Record<string, any>) => void): void {
  const cfg = parse(readFileSync(n.configPath, 'utf8')) as Record<string, any>;
  edit(cfg);
  writeFileSync(n.configPath, stringify(cfg), { mode: 0o600 });
  if (userInfo().uid === 0) chownSync(n.configPath, uid, gid);
}
const sinceLen = (n: NodeHandle) => cluster.logs(n).length;
function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

beforeAll(async () => {
  await cluster.startEtcd();
  // node3 joins last, so it never bootstraps the cluster (bootstrap runs no pre_promote).
  cluster.startAgent(node('node1'));
  cluster.startAgent(node('node2'));
  await streaming(1);
  cluster.startAgent(node('node3'));
  await streaming(2);
}, 120_000);
afterAll(async () => {
  await cluster.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('callbacks', () => {
  it('fire on start with Patroni\'s argv: fixed arguments, action, role, scope', async () => {
    const leader = (await primaryName())!;
    const standbys = cluster.nodes.map((n) => n.name).filter((n) => n !== leader);
    await waitFor('on_start of every member', async () => {
      const r = recorded();
      return r.includes(`${leader} on_start primary itest`) && standbys.every((s) => r.includes(`${s} on_start replica itest`));
    }, 10_000);
  });

  it('a switchover to a member whose pre_promote vetoes is taken by another member', async () => {
    const old = (await primaryName())!;
    const r = await fetch(`http://127.0.0.1:${node(old).apiPort}/switchover`, {
      method: 'POST', headers: { authorization: AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ leader: old, candidate: 'node3' }),
    });
    expect(r.status).toBe(202);
    await waitFor('node3 vetoes', async () => recorded().includes('node3 pre_promote replica itest'), 30_000);
    const now = await waitFor('a primary other than node3', async () => { const p = await primaryName(); return p !== null && p !== 'node3' ? p : null; }, 30_000);
    expect(cluster.logs(node('node3'))).toContain('pre_promote vetoed this promotion: it exited with 1');
    expect(cluster.logs(node('node3'))).toContain('cannot fence the old primary'); // its stderr, logged
    // The old leader stepped down (before_stop waited for), and whoever leads now ran its pre_promote.
    expect(recorded()).toContain(`${old} before_stop primary itest`);
    expect(recorded()).toContain(`${now} pre_promote replica itest`);
    await waitFor('on_role_change primary of the new leader', async () => recorded().includes(`${now} on_role_change primary itest`), 10_000);
    const history = await (await fetch(`http://127.0.0.1:${node(now).apiPort}/history`)).json() as Array<{ leader: string }>;
    expect(history.map((h) => h.leader)).not.toContain('node3');
    await streaming(2);
  }, 90_000);

  it('a failover: node3 (best priority) vetoes, the other standby promotes', async () => {
    const old = (await primaryName())!;
    const other = cluster.nodes.map((n) => n.name).find((n) => n !== old && n !== 'node3')!;
    const vetoesBefore = recorded().filter((l) => l === 'node3 pre_promote replica itest').length;
    cluster.killNode(node(old));
    const now = await waitFor('a new primary', async () => { const p = await primaryName(); return p !== null && p !== old ? p : null; }, 30_000);
    expect(now).toBe(other);
    expect(await primaryName()).toBe(other);
    // node3 may or may not have won the race first; if it did, it vetoed and let go.
    const vetoes = recorded().filter((l) => l === 'node3 pre_promote replica itest').length - vetoesBefore;
    expect(cluster.logs(node('node3')).split('\n').filter((l) => l.includes('"event":"promoted"'))).toEqual([]);
    console.log(`failover: node3 vetoed ${vetoes} time(s) before ${other} promoted`);
    cluster.startAgent(node(old));
    await streaming(2);
  }, 150_000);
});

describe('live reload', () => {
  it('SIGHUP with a good file applies log level, tags and parameters, and reports restart-only fields', async () => {
    const n = node('node3');
    const from = sinceLen(n);
    editConfig(n, (cfg) => {
      cfg.log = { level: 'debug' };
      cfg.tags.noloadbalance = true;
      cfg.postgresql.parameters = { work_mem: '8MB' };
      cfg.postgresql.pg_ctl_timeout = 40; // needs an agent restart: reported, not applied
    });
    n.agent!.kill('SIGHUP');
    await waitFor('tags in /status', async () => ((await cluster.status(n))?.tags as Record<string, unknown> | undefined)?.noloadbalance === true, 10_000);
    expect(await cluster.probe(n, '/replica')).toBe(503);
    const log = cluster.logs(n).slice(from);
    expect(log).toContain('configuration reloaded: applied log.level, postgresql.parameters.work_mem, tags.noloadbalance');
    expect(log).toContain('take effect only after an agent restart (not applied): postgresql.pg_ctl_timeout');
    await waitFor('on_reload after the new parameters', async () => recorded().includes('node3 on_reload replica itest'), 10_000);
    const r = await cluster.query(n, 'show work_mem');
    expect(r.rows[0].work_mem).toBe('8MB');
    // Debug level: an operator restart logs its pg_ctl commands at debug, and fires on_restart only.
    const restart = await fetch(`http://127.0.0.1:${n.apiPort}/restart`, { method: 'POST', headers: { authorization: AUTH, 'x-pgha-member': n.name } });
    expect(restart.status).toBe(200);
    expect(cluster.logs(n).slice(from)).toMatch(/"level":"debug",[^\n]*"event":"pg command"/);
    await waitFor('on_restart', async () => recorded().includes('node3 on_restart replica itest'), 10_000);
    expect(recorded()).toContain('node3 before_stop replica itest');
    expect(n.agent).not.toBeNull();
  }, 90_000);

  it('POST /reload-agent answers with what it applied and what needs a restart', async () => {
    const n = node('node3');
    editConfig(n, (cfg) => { cfg.tags.noloadbalance = false; cfg.log = { level: 'info' }; });
    const unauth = await fetch(`http://127.0.0.1:${n.apiPort}/reload-agent`, { method: 'POST' });
    expect(unauth.status).toBe(401);
    const r = await fetch(`http://127.0.0.1:${n.apiPort}/reload-agent`, { method: 'POST', headers: { authorization: AUTH } });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ member: 'node3', applied: ['log.level', 'tags.noloadbalance'], restart_needed: ['postgresql.pg_ctl_timeout'] });
    await waitFor('/replica back in service', async () => (await cluster.probe(n, '/replica')) === 200, 10_000);
    editConfig(n, (cfg) => { cfg.tags.nosync = true; });
    const viaCtl = await ctl('reload', '--agent', 'node3', '--format', 'json');
    expect(viaCtl.code).toBe(0);
    expect(JSON.parse(viaCtl.stdout)).toEqual({ reload_agent: [{ member: 'node3', applied: ['tags.nosync'], restart_needed: ['postgresql.pg_ctl_timeout'] }] });
  });

  it('SIGHUP with a bad file keeps the agent running on the old configuration and logs the file and field', async () => {
    const n = node('node3');
    const from = sinceLen(n);
    editConfig(n, (cfg) => { cfg.log = { level: 'loud' }; cfg.tags.noloadbalance = true; });
    n.agent!.kill('SIGHUP');
    await waitFor('the error', async () => cluster.logs(n).slice(from).includes(`${n.configPath}: log.level:`), 10_000);
    expect(cluster.logs(n).slice(from)).toContain('configuration not reloaded; the running configuration stays');
    // The point: a second of loops after the refused reload, the agent is still up and unchanged.
    await new Promise((res) => setTimeout(res, 1000));
    expect(n.agent).not.toBeNull();
    expect(((await cluster.status(n))?.tags as Record<string, unknown>).noloadbalance).toBe(false);
    expect(await cluster.probe(n, '/replica')).toBe(200);
    const viaCtl = await ctl('reload', '--agent', 'node3');
    expect(viaCtl.code).toBe(1);
    expect(viaCtl.stderr).toContain(`${n.configPath}: log.level:`);
  });
});

describe('shutdown', () => {
  it('runs before_stop, then on_stop, before the agent exits (SIGTERM)', async () => {
    const n = node('node3');
    editConfig(n, (cfg) => { cfg.log = { level: 'info' }; });
    const before = recorded().length;
    await cluster.stopAgent(n);
    expect(recorded().slice(before)).toEqual(['node3 before_stop replica itest', 'node3 on_stop replica itest']);
  });
});
