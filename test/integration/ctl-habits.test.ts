// pghactl habits against a real cluster: version (with the agents'), query on the leader and on a
// named standby (json, tsv, a failing statement), list -W (a reprint every 2 s), edit-config in
// an editor (refused without a terminal, applied with --force, "no changes"), and remove
// (refused without a terminal, then with --force after the agents stopped: the keys are gone).
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';

const cluster = new TestCluster({ ttl: 3 });
const PGHACTL = `${REPO}bin/pghactl.js`;
const pkgVersion = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

interface Run { code: number; stdout: string; stderr: string }
function ctl(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    // Each call is one etcd read plus at most a query or an agent round: 60 s bounds a hang.
    const child = execFile(process.execPath, [PGHACTL, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 60_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
    child.stdin?.end(); // not a terminal: questions are refused, not waited for
  });
}
async function json<T>(...args: string[]): Promise<T> {
  const r = await ctl([...args, '--format', 'json']);
  if (r.code !== 0) throw new Error(`pghactl ${args.join(' ')}: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

let leader = '';
let replica = '';

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  // Bootstrap plus two clones: seconds when idle; 110 s (inside the hook timeout) covers a loaded 2-core machine.
  leader = (await cluster.waitHealthy(110_000)).name;
  replica = (await cluster.replicas(true))[0]!.name;
});
afterAll(async () => { await cluster.destroy(); });

describe('pghactl habits', () => {
  it('version: its own and every agent\'s', async () => {
    const v = await json<{ pghactl: string; agents: Array<{ member: string; version: string | null }> }>('version');
    expect(v.pghactl).toBe(pkgVersion);
    expect(v.agents.map((a) => a.member).sort()).toEqual(['node1', 'node2', 'node3']);
    expect(v.agents.every((a) => a.version === pkgVersion)).toBe(true);
    const tsv = (await ctl(['version', '--format', 'tsv'])).stdout.split('\n');
    expect(tsv[0]).toBe('Member\tAPI\tpgha version');
    expect(tsv[1]).toBe(`(pghactl)\t\t${pkgVersion}`);
  });

  it('query: on the leader by default, on a named member, as json and tsv; a failing statement exits 1 with its SQLSTATE', async () => {
    const sql = "select pg_is_in_recovery() as standby, E'a\\tb' as t, 12345678901234567::bigint as big";
    expect(await json('query', sql)).toEqual([{ standby: 'f', t: 'a\tb', big: '12345678901234567' }]);
    expect(await json('query', sql, '--member', replica)).toEqual([{ standby: 't', t: 'a\tb', big: '12345678901234567' }]);
    expect((await json<Array<{ standby: string }>>('query', sql, '--role', 'replica'))[0]?.standby).toBe('t');
    const tsv = await ctl(['query', sql, '--format', 'tsv']);
    expect(tsv.stdout).toBe('standby\tt\tbig\nf\ta\\tb\t12345678901234567\n');
    const table = await ctl(['query', 'select 1 as one']);
    expect(table.stdout).toMatch(/one[\s\S]*1[\s\S]*\(1 row\)/);
    const bad = await ctl(['query', 'select * from no_such_table']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`PGHA_CLI_NOT_DONE: ${leader} .*SQLSTATE 42P01`));
  });

  it('list -W reprints every 2 seconds', async () => {
    const child = spawn(process.execPath, [PGHACTL, '-c', cluster.nodes[0]!.configPath, 'list', '-W'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    // Three tables take a little over 4 s (start, +2 s, +4 s); 15 s allows a slow start.
    try {
      await waitFor('three tables', async () => (out.match(/\+ Cluster: itest/g) ?? []).length >= 3, 15_000, 100);
    } finally {
      child.kill('SIGTERM');
    }
    expect(out).toContain(leader);
  });

  it('edit-config in the editor: refused without a terminal, applied with --force after a diff, "no changes" when untouched', async () => {
    const script = join(cluster.dir, 'edit.py');
    writeFileSync(script, [
      'import re, sys',
      'p = sys.argv[1]',
      's = open(p).read()',
      "s = re.sub(r'(?m)^maximum_lag_on_failover: .*$', 'maximum_lag_on_failover: 2097152', s)",
      'open(p, "w").write(s)',
    ].join('\n'));
    const editor = { EDITOR: `python3 ${script}`, VISUAL: '' };
    const refused = await ctl(['edit-config'], editor);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('-maximum_lag_on_failover: 1048576');
    expect(refused.stderr).toContain('+maximum_lag_on_failover: 2097152');
    expect(refused.stderr).toMatch(/Apply these changes\? Not confirmed: add --force/);
    expect((await json<{ maximum_lag_on_failover: number }>('show-config')).maximum_lag_on_failover).toBe(1048576);
    const applied = await ctl(['edit-config', '--force', '--format', 'json'], editor);
    expect(applied.code, applied.stderr).toBe(0);
    expect((JSON.parse(applied.stdout) as { maximum_lag_on_failover: number }).maximum_lag_on_failover).toBe(2097152);
    expect((await json<{ maximum_lag_on_failover: number }>('show-config')).maximum_lag_on_failover).toBe(2097152);
    const same = await ctl(['edit-config', '--force'], editor); // the value is already 2097152
    expect(same.stdout).toBe('no changes\n');
    const broken = join(cluster.dir, 'broken.py');
    writeFileSync(broken, 'import re, sys\np = sys.argv[1]\ns = open(p).read()\nopen(p, "w").write(re.sub(r"(?m)^ttl: .*$", "ttl: -5", s))\n');
    const invalid = await ctl(['edit-config', '--force'], { EDITOR: `python3 ${broken}`, VISUAL: '' });
    expect(invalid.code).toBe(1); // refused by validation, nothing written
    expect(invalid.stderr).toMatch(/PGHA_CONFIG_INVALID.*ttl/);
    const dup = join(cluster.dir, 'dup.py');
    writeFileSync(dup, 'import sys\nopen(sys.argv[1], "a").write("ttl: 9\\n")\n');
    const notYaml = await ctl(['edit-config', '--force'], { EDITOR: `python3 ${dup}`, VISUAL: '' });
    expect(notYaml.code).toBe(1);
    expect(notYaml.stderr).toMatch(/PGHA_CONFIG_INVALID: the edited configuration is not valid YAML, nothing changed: Map keys must be unique/);
    expect((await json<{ ttl: number }>('show-config')).ttl).toBe(3);
  });

  it('remove: refused without a terminal or with another name; with --force the cluster\'s keys are gone', async () => {
    const refused = await ctl(['remove', 'itest']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Not confirmed: add --force/);
    expect((await json<unknown[]>('list'))).toHaveLength(3);
    const wrong = await ctl(['remove', 'other', '--force']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('pghactl points at cluster itest, not other');
    // Stopped agents do not register again: the removal sticks.
    for (const n of cluster.nodes) await cluster.stopAgent(n);
    const r = await json<{ removed: string; keys: number }>('remove', 'itest', '--force');
    expect(r.removed).toBe('itest');
    expect(r.keys).toBeGreaterThanOrEqual(3);
    expect(await json<unknown[]>('list')).toEqual([]);
    expect(await json<unknown[]>('history')).toEqual([]);
  });
});
