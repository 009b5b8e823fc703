// Monitoring against a real cluster: Debian's Prometheus scrapes the three agents' GET /metrics
// every second (with the alert rules loaded), `patroni_primary == 1` names the leader and then,
// after `pghactl switchover --force`, the new one; the promotion's counters and the
// PghaFailoverHappened alert follow. promtool checks the scraped text and the rule files. The
// agents' log lines carry level names and the scope; node3 writes journald priority prefixes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { TestCluster } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';
import { allocatePorts } from '../../lab/ports.ts';

const PROM_PORT = allocatePorts(1);
const PROM = `http://127.0.0.1:${PROM_PORT}`;
const RULES = join(REPO, 'config/prometheus/pgha-alerts.yml');
const cluster = new TestCluster({
  ttl: 3,
  configure: (i, cfg) => { if (i === 3) cfg['log'] = { ...(cfg['log'] as object), journald_prefix: true }; },
});
const promDir = mkdtempSync(join(tmpdir(), 'pgha-prometheus-'));
let prometheus: ChildProcess | null = null;

interface Run { code: number; stdout: string; stderr: string }
function run(bin: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    // promtool and pghactl answer in seconds; a switchover waits for its outcome (under a minute).
    const child = execFile(bin, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}
const ctl = (...args: string[]) => run(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args]);

interface Series { metric: Record<string, string>; value: [number, string] }
async function promQuery(q: string): Promise<Series[]> {
  // An instant query on a few hundred series answers in milliseconds; 2 s means Prometheus is stuck.
  const r = await fetch(`${PROM}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(2000) });
  const body = (await r.json()) as { status: string; data: { result: Series[] } };
  if (body.status !== 'success') throw new Error(`query ${q}: ${JSON.stringify(body)}`);
  return body.data.result;
}
const names = (s: Series[]) => s.map((x) => x.metric['name']).sort();

function startPrometheus(): ChildProcess {
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [RULES],
    scrape_configs: [{ job_name: 'pgha', static_configs: [{ targets: cluster.nodes.map((n) => `127.0.0.1:${n.apiPort}`) }] }],
  };
  writeFileSync(join(promDir, 'prometheus.yml'), stringify(config));
  const log = openSync(join(promDir, 'prometheus.log'), 'a');
  const child = spawn('/usr/bin/prometheus', [
    `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${PROM_PORT}`,
  ], { stdio: ['ignore', log, log] });
  closeSync(log);
  return child;
}

/** The leader, once all three run and two stream (lab/cluster.ts healthy()). */
async function healthy(): Promise<string> {
  // Bootstrap plus two clones take seconds when idle; 110 s (inside the hook timeout) covers a loaded CI machine.
  return (await cluster.waitHealthy(110_000)).name;
}

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  prometheus = startPrometheus();
  await healthy();
  // Prometheus starts in about a second; 30 s covers a loaded machine (each probe: 1 s, a local HTTP call).
  await waitFor('prometheus ready', async () => (await fetch(`${PROM}/-/ready`, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.ok, 30_000, 200);
});

afterAll(async () => {
  const p = prometheus;
  if (p !== null && p.exitCode === null) {
    const exited = new Promise((resolve) => p.once('exit', resolve));
    p.kill('SIGTERM');
    // Prometheus flushes its head block on SIGTERM in well under a second; 10 s, then SIGKILL.
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
  }
  await cluster.destroy();
  rmSync(promDir, { recursive: true, force: true });
});

describe('monitoring', () => {
  it('Prometheus finds one primary, the leader, and it moves with a switchover', async () => {
    const leader = await healthy();
    // Three targets up, scraped at 1 s: within a few seconds the query settles.
    const first = await waitFor('patroni_primary == 1 names the leader', async () => {
      const up = await promQuery('up{job="pgha"} == 1');
      const r = await promQuery('patroni_primary == 1');
      return up.length === 3 && r.length === 1 && r[0]?.metric['name'] === leader ? r : null;
    }, 30_000, 500);
    expect(first[0]?.metric).toMatchObject({ scope: 'itest', name: leader, job: 'pgha' });
    // The leader reports each standby's lag (next loop and next scrape: about 1.5 s; 15 s under load).
    await waitFor('per-standby lag from the leader', async () => (await promQuery(`pgha_standby_lag_bytes{name="${leader}",stage="replay"}`)).length === 2, 15_000, 500);
    // A clone that just started streaming may still show its last scrape from before (1 s).
    const standbys = cluster.nodes.map((n) => n.name).filter((n) => n !== leader);
    await waitFor('patroni_replica == 1 names both standbys', async () =>
      JSON.stringify(names(await promQuery('patroni_replica == 1'))) === JSON.stringify(standbys), 15_000, 500);

    const sw = await ctl('switchover', '--force', '--format', 'json');
    expect(sw.code, sw.stderr).toBe(0);
    const next = await healthy();
    expect(next).not.toBe(leader);
    // The switchover is done: the next scrape (1 s) shows it; 30 s covers a loaded machine.
    await waitFor('patroni_primary == 1 names the new leader', async () => {
      const r = await promQuery('patroni_primary == 1');
      return r.length === 1 && r[0]?.metric['name'] === next;
    }, 30_000, 500);
    // Counted at pg_promote, long before the cluster was healthy again: the next scrape has it.
    const promos = await waitFor('the switchover counted', async () => {
      const r = await promQuery('pgha_promotions_total{reason="switchover"} > 0');
      return r.length > 0 ? r : null;
    }, 15_000, 500);
    expect(names(promos)).toEqual([next]);
    const outage = await promQuery('pgha_last_promotion_outage_seconds{reason="switchover"}');
    expect(names(outage)).toEqual([next]);
    const seconds = Number(outage[0]?.value[1]);
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(30);
    console.log(`switchover ${leader} -> ${next}: outage measured by ${next}: ${seconds.toFixed(3)} s`);
    // Rules are evaluated every second and this alert has no `for`: a few seconds at most.
    await waitFor('the PghaFailoverHappened alert fires', async () =>
      (await promQuery('ALERTS{alertname="PghaFailoverHappened",alertstate="firing",reason="switchover"}')).length === 1, 15_000, 500);
    // Scrapes of the old and the new primary can straddle the handover, so the rule may be pending
    // for a moment (its `for: 10s` is there for that); it must never fire.
    expect(await promQuery('ALERTS{alertname="PghaMultiplePrimaries",alertstate="firing"}')).toEqual([]);
  });

  it('each agent\'s /metrics passes promtool check metrics (but the counter names Patroni chose)', async () => {
    for (const n of cluster.nodes) {
      const text = await (await fetch(`${cluster.apiBase(n)}/metrics`)).text();
      const r = await run('/usr/bin/promtool', ['check', 'metrics'], text);
      const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
      const patroniNames = /^patroni_(postgres_timeline|xlog_location|xlog_received_location|xlog_replayed_location) counter metrics should have "_total" suffix$/;
      expect(problems.filter((l) => !patroniNames.test(l)), n.name).toEqual([]);
      expect(text).toMatch(/^pgha_ha_loop_duration_seconds_count\{scope="itest",name="node\d"\} [1-9]\d*$/m);
      expect(text).toMatch(/^pgha_etcd_request_duration_seconds_count\{scope="itest",name="node\d",op="readCluster"\} [1-9]\d*$/m);
    }
  });

  it('the alert rules pass promtool check rules and their unit tests', async () => {
    const check = await run('/usr/bin/promtool', ['check', 'rules', RULES]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/SUCCESS: 10 rules found/);
    const tests = await run('/usr/bin/promtool', ['test', 'rules', join(REPO, 'config/prometheus/pgha-alerts.test.yml')]);
    expect(tests.code, tests.stdout + tests.stderr).toBe(0);
  });

  it('log lines carry level names and the scope; node3\'s start with journald priorities', () => {
    const plain = cluster.logs(cluster.nodes[0]!).split('\n').filter((l) => l.startsWith('{'));
    expect(plain.length).toBeGreaterThan(5);
    for (const l of plain) expect(l).toMatch(/^\{"level":"(trace|debug|info|warn|error|fatal)","time":"[^"]+","scope":"itest","member":"node1",/);
    const prefixed = cluster.logs(cluster.nodes[2]!).split('\n').filter((l) => l.startsWith('<'));
    expect(prefixed.length).toBeGreaterThan(5);
    for (const l of prefixed) {
      const m = /^<(\d)>(\{.*\})$/.exec(l);
      expect(m, l).not.toBeNull();
      const level = (JSON.parse(m![2]!) as { level: string }).level;
      expect(Number(m![1])).toBe({ fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 }[level]);
    }
    expect(readFileSync(cluster.nodes[2]!.logPath, 'utf8')).toMatch(/^<6>\{"level":"info",.*"scope":"itest","member":"node3".*"msg":"pgha agent started"/m);
  });
});
