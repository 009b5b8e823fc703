// pghactl: rendering of `list`, exit codes, and the CI summary line.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildListRows, renderList, renderTopology } from '../../src/cli/format.ts';
import { mergeReports, summaryLine } from '../../scripts/summary.mjs';
import { clusterView, dyn, member, request, WALL } from '../support/observations.ts';

const view = clusterView({
  members: [member('n3', { lsn: 1000 - 2 * 1024 * 1024 }), member('n1', { role: 'primary', state: 'running', lsn: 1000 }), member('n2')],
});

describe('pghactl list rendering', () => {
  it('puts the leader first and computes lag in MB', () => {
    const rows = buildListRows(view);
    expect(rows.map((r) => `${r.member}:${r.role}`)).toEqual(['n1:Leader', 'n2:Replica', 'n3:Replica']);
    expect(rows[0]?.lag_mb).toBeNull();
    expect(rows[2]?.lag_mb).toBe(2);
  });
  it('renders JSON with stable keys and a pause banner in tables', () => {
    const json = JSON.parse(renderList('demo', view, buildListRows(view), 'json', false)) as object[];
    expect(Object.keys(json[0] ?? {})).toEqual(['member', 'host', 'role', 'state', 'tl', 'lag_mb', 'tags', 'pending_restart']);
    const paused = clusterView({ config: dyn({ pause: true }) });
    expect(renderList('demo', paused, buildListRows(paused), 'table', false)).toContain('Maintenance mode: on');
  });
  it('names quorum standbys and the quorum in quorum mode, sync standbys in on mode', () => {
    const q = clusterView({ config: dyn({ synchronous_mode: 'quorum' }), sync: { leader: 'n1', members: ['n2', 'n3'], acks: 1 } });
    expect(buildListRows(q).map((r) => `${r.member}:${r.role}`)).toEqual(['n1:Leader', 'n2:Quorum Standby', 'n3:Quorum Standby']);
    expect(renderList('demo', q, buildListRows(q), 'table', false)).toContain('Quorum: every acknowledged commit is on at least 1 of n2, n3');
    const on = clusterView({ config: dyn({ synchronous_mode: 'on' }), sync: { leader: 'n1', members: ['n2'] } });
    expect(buildListRows(on).map((r) => `${r.member}:${r.role}`)).toEqual(['n1:Leader', 'n2:Sync Standby', 'n3:Replica']);
    const gone = clusterView({ config: dyn({ synchronous_mode: 'quorum' }), sync: { leader: 'n1', members: [], acks: 0 } });
    expect(renderList('demo', gone, buildListRows(gone), 'table', false)).toContain('replication is asynchronous');
  });
});

function pghactl(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [new URL('../../bin/pghactl.js', import.meta.url).pathname, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

describe('pghactl topology and pending requests', () => {
  it('draws standbys under their upstream', () => {
    const cascade = clusterView({ members: [member('n1', { role: 'primary', state: 'running', upstream: null }), member('n2', { upstream: 'n1' }), member('n3', { upstream: 'n2' })] });
    expect(renderTopology('demo', cascade)).toBe('+ Cluster: demo\nn1 (Leader, running, TL 1) 127.0.0.1:5432\n    + n2 (Replica, streaming, TL 1, lag 0 MB) 127.0.0.1:5432\n        + n3 (Replica, streaming, TL 1, lag 0 MB) 127.0.0.1:5432\n');
  });
  it('shows a scheduled switchover in list', () => {
    const v = clusterView({ failover: request({ candidate: 'n2', scheduledAt: WALL }) });
    expect(renderList('demo', v, buildListRows(v), 'table', false)).toContain(`Switchover scheduled at ${new Date(WALL).toISOString()}: n1 -> n2`);
  });
});

describe('pghactl exit codes', () => {
  it('exits 2 on a usage error', async () => {
    expect((await pghactl(['list', '--no-such-option'])).code).toBe(2);
    expect((await pghactl(['list'])).code).toBe(2); // neither --config nor --etcd/--scope
  });
  it('exits 0 for --help and lists the commands', async () => {
    const r = await pghactl(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('list');
  });
  it('exits 1 with a PGHA_DCS code when etcd cannot be reached', async () => {
    const r = await pghactl(['--etcd', '127.0.0.1:1', '--scope', 'x', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PGHA_DCS_(UNAVAILABLE|TIMEOUT)/);
  });
});

describe('CI summary line', () => {
  it('counts passes, failures, skips and files that failed to load', () => {
    expect(summaryLine({ numPassedTests: 3, numFailedTests: 0, numPendingTests: 0, testResults: [] })).toBe('3 passed, 0 failed');
    expect(summaryLine({ numPassedTests: 3, numFailedTests: 1, numPendingTests: 2, testResults: [{ status: 'failed', assertionResults: [] }] })).toBe('3 passed, 2 failed, 2 skipped');
    // A beforeAll that threw: every test of the file skipped, the file failed.
    expect(summaryLine({ numPassedTests: 3, numFailedTests: 0, numPendingTests: 2, testResults: [{ status: 'failed', assertionResults: [{ status: 'skipped' }, { status: 'skipped' }] }] })).toBe('3 passed, 1 failed, 2 skipped');
    expect(summaryLine(mergeReports([{ numPassedTests: 2, numFailedTests: 0, testResults: [] }, { numPassedTests: 5, numFailedTests: 1, testResults: [] }]))).toBe('7 passed, 1 failed');
  });
});
