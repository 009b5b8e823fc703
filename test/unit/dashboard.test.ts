// The example Grafana dashboard and the alert rules use only metrics GET /metrics produces.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderMetrics } from '../../src/api/metrics.ts';
import { AgentStats } from '../../src/agent/stats.ts';
import { clusterView, member } from '../support/observations.ts';

const REPO = new URL('../..', import.meta.url).pathname;

/** Every metric family name the renderer writes for a leader with a standby and every counter set. */
function producedNames(): Set<string> {
  const stats = new AgentStats();
  stats.loopDone(0.01);
  stats.etcdCall('keepalive', 0.01, false);
  stats.promoted('failover', 1);
  const standby = { name: 'n2', state: 'streaming', syncState: 'async', writeLsn: 1, flushLsn: 1, replayLsn: 1, writeLag: 0, flushLag: 0, replayLag: 0 };
  const postgres = { flushLsn: 1, receivedLsn: null, replayedLsn: null, replayedAt: null, replayPaused: false, postmasterStart: 1, serverVersion: 150014, standbys: [standby],
    archive: { enabled: true, archived: 3, failed: 1, lastArchivedAt: 1, lastFailedAt: 2 } };
  const leader = { member: member('n1', { role: 'primary', state: 'running' }), isLeader: true, cluster: clusterView(), paused: false, lagBytes: null, observedAt: 0, lastPlan: '', systemId: '1', version: '0.1.0', postgres };
  const replica = { ...leader, member: member('n2'), isLeader: false, lagBytes: 5 };
  const names = new Set<string>();
  for (const snapshot of [leader, replica]) {
    const text = renderMetrics({ scope: 's', name: 'n', version: '0.1.0', snapshot, now: 1, staleAfterMs: 3000, leaseDeadline: 2000, stats });
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m[1]}${s}`);
      if (m[2] === 'summary') for (const s of ['_sum', '_count']) names.add(`${m[1]}${s}`);
    }
  }
  return names;
}

const metricRefs = (expr: string) => [...expr.matchAll(/\b(?:patroni|pgha)_[a-z0-9_]+\b/g)].map((m) => m[0]);

describe('dashboard and alerts', () => {
  const produced = producedNames();

  it('the Grafana dashboard is JSON whose queries name only produced metrics', () => {
    const dash = JSON.parse(readFileSync(`${REPO}config/grafana/pgha-dashboard.json`, 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const exprs = dash.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    const refs = exprs.flatMap(metricRefs);
    expect(refs.filter((r) => !produced.has(r))).toEqual([]);
    for (const name of ['patroni_primary', 'pgha_standby_lag_bytes', 'pgha_ha_loop_duration_seconds_bucket', 'pgha_etcd_request_duration_seconds_bucket']) expect(refs).toContain(name);
  });

  it('the alert rules name only produced metrics', () => {
    const rules = parse(readFileSync(`${REPO}config/prometheus/pgha-alerts.yml`, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.map((r) => r.alert)).toEqual([
      'PghaNoLeader', 'PghaMultiplePrimaries', 'PghaReplicationLagOverFailoverLimit', 'PghaFailoverHappened', 'PghaFenceFired',
      'PghaPendingRestart', 'PghaPausedForLong', 'PghaFailsafeActive', 'PghaAgentStale', 'PghaArchiveFailing',
    ]);
    expect(all.flatMap((r) => metricRefs(r.expr)).filter((r) => !produced.has(r))).toEqual([]);
  });
});
