// GET /metrics: the exact Prometheus text from a snapshot and the agent's counters (pure).
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.ts';
import { createLogger } from '../../src/log/logger.ts';
import { escapeHelp, escapeLabel, formatValue, paddedVersion, renderMetrics, type MetricsInput } from '../../src/api/metrics.ts';
import { AgentStats, instrumentDcs } from '../../src/agent/stats.ts';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import type { Logger } from '../../src/log/logger.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import { PgHaError } from '../../src/errors.ts';
import type { MemberInfo, PostgresStats } from '../../src/ha/types.ts';
import { clusterView, dyn, agentSnapshot, member } from '../support/observations.ts';

const NOW = 100_000;

const snap = (over: Partial<AgentSnapshot> = {}, m: Partial<MemberInfo> = {}): AgentSnapshot => agentSnapshot(NOW - 250, over, m);
const pgStats = (over: Partial<PostgresStats> = {}): PostgresStats => ({
  flushLsn: null, receivedLsn: null, replayedLsn: null, replayedAt: null, replayPaused: false,
  postmasterStart: 1700000000.5, serverVersion: 150014, standbys: [], ...over,
});
const input = (snapshot: AgentSnapshot | null, over: Partial<MetricsInput> = {}): MetricsInput => ({
  scope: 'demo', name: 'n2', version: '0.1.0', snapshot, now: NOW, staleAfterMs: 3000, leaseDeadline: null, stats: new AgentStats(), ...over,
});
const lines = (text: string) => text.split('\n');
const sample = (text: string, name: string) => lines(text).filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

describe('renderMetrics', () => {
  it('writes Patroni\'s metrics with HELP and TYPE lines and {scope, name} labels', () => {
    const s = snap({ postgres: pgStats({ receivedLsn: 5000, replayedLsn: 4000, replayedAt: 1700000100.25 }), dcsLastSeen: 1700000200999 });
    const text = renderMetrics(input(s));
    const at = lines(text).indexOf('# HELP patroni_primary Value is 1 if this node is the leader, 0 otherwise.');
    expect(lines(text).slice(at, at + 3)).toEqual([
      '# HELP patroni_primary Value is 1 if this node is the leader, 0 otherwise.',
      '# TYPE patroni_primary gauge',
      'patroni_primary{scope="demo",name="n2"} 0',
    ]);
    expect(lines(text).slice(0, 3)).toEqual([
      '# HELP patroni_version Patroni semver without periods.', '# TYPE patroni_version gauge', 'patroni_version{scope="demo",name="n2"} 100',
    ]);
    const want: Record<string, string> = {
      patroni_replica: '1', patroni_xlog_location: '0', patroni_xlog_received_location: '5000', patroni_xlog_replayed_location: '4000',
      patroni_xlog_replayed_timestamp: '1700000100.25', patroni_postgres_streaming: '1', patroni_postgres_in_archive_recovery: '0',
      patroni_postgres_server_version: '150014', patroni_cluster_unlocked: '0', patroni_postgres_timeline: '1',
      patroni_dcs_last_seen: '1700000200', patroni_postmaster_start_time: '1700000000.5', patroni_postgres_state: '5',
      patroni_standby_leader: '0', patroni_is_paused: '0', patroni_pending_restart: '0', pgha_leader: '0', pgha_lag_bytes: '0',
      pgha_snapshot_age_seconds: '0.25', pgha_maximum_lag_on_failover_bytes: '1048576',
    };
    for (const [name, v] of Object.entries(want)) expect(sample(text, name), name).toEqual([`${name}{scope="demo",name="n2"} ${v}`]);
    expect(text).toContain('# TYPE patroni_xlog_location counter\n');
    expect(text).toContain('# HELP patroni_postgres_state Numeric representation of Postgres state.\n# Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, 4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, 9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed\n# TYPE patroni_postgres_state gauge\n');
    expect(text).not.toContain('pgha_lease_remaining_seconds');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('a primary: its flushed position, the lease left, and each standby\'s lag with escaped labels', () => {
    const odd = 'we"ird\\na\nme';
    const standbys = [
      { name: 'n3', state: 'streaming', syncState: 'async', writeLsn: 9000, flushLsn: 8000, replayLsn: 7000, writeLag: 0.001, flushLag: 0.002, replayLag: null },
      { name: odd, state: 'catchup', syncState: 'async', writeLsn: null, flushLsn: null, replayLsn: null, writeLag: null, flushLag: null, replayLag: null },
    ];
    const s = snap({ isLeader: true, lagBytes: null, postgres: pgStats({ flushLsn: 9500, standbys }) }, { role: 'primary', state: 'running', upstream: null, lsn: 10_000 });
    const text = renderMetrics(input(s, { leaseDeadline: NOW + 1500, name: 'n1' }));
    expect(sample(text, 'patroni_primary')).toEqual(['patroni_primary{scope="demo",name="n1"} 1']);
    expect(sample(text, 'patroni_xlog_location')).toEqual(['patroni_xlog_location{scope="demo",name="n1"} 9500']);
    expect(sample(text, 'patroni_xlog_received_location')).toEqual(['patroni_xlog_received_location{scope="demo",name="n1"} 0']);
    expect(sample(text, 'pgha_leader')).toEqual(['pgha_leader{scope="demo",name="n1"} 1']);
    expect(sample(text, 'pgha_lease_remaining_seconds')).toEqual(['pgha_lease_remaining_seconds{scope="demo",name="n1"} 1.5']);
    expect(text).not.toContain('pgha_lag_bytes{');
    const esc = 'we\\"ird\\\\na\\nme';
    const at = lines(text).indexOf('# TYPE pgha_standby_lag_bytes gauge');
    expect(lines(text).slice(at - 1, at + 4)).toEqual([
      '# HELP pgha_standby_lag_bytes Primary only: bytes each standby (pg_stat_replication) has not yet written, flushed or replayed, behind pg_current_wal_lsn().',
      '# TYPE pgha_standby_lag_bytes gauge',
      'pgha_standby_lag_bytes{scope="demo",name="n1",standby="n3",stage="write"} 1000',
      'pgha_standby_lag_bytes{scope="demo",name="n1",standby="n3",stage="flush"} 2000',
      'pgha_standby_lag_bytes{scope="demo",name="n1",standby="n3",stage="replay"} 3000',
    ]);
    expect(sample(text, 'pgha_standby_lag_seconds')).toEqual([
      'pgha_standby_lag_seconds{scope="demo",name="n1",standby="n3",stage="write"} 0.001',
      'pgha_standby_lag_seconds{scope="demo",name="n1",standby="n3",stage="flush"} 0.002',
      'pgha_standby_lag_seconds{scope="demo",name="n1",standby="n3",stage="replay"} 0',
      `pgha_standby_lag_seconds{scope="demo",name="n1",standby="${esc}",stage="write"} 0`,
      `pgha_standby_lag_seconds{scope="demo",name="n1",standby="${esc}",stage="flush"} 0`,
      `pgha_standby_lag_seconds{scope="demo",name="n1",standby="${esc}",stage="replay"} 0`,
    ]);
  });

  it('before the first loop: state -1, unlocked, zeros, and no per-standby series', () => {
    const text = renderMetrics(input(null));
    expect(sample(text, 'patroni_postgres_state')).toEqual(['patroni_postgres_state{scope="demo",name="n2"} -1']);
    expect(sample(text, 'patroni_cluster_unlocked')).toEqual(['patroni_cluster_unlocked{scope="demo",name="n2"} 1']);
    expect(sample(text, 'patroni_postgres_running')).toEqual(['patroni_postgres_running{scope="demo",name="n2"} 0']);
    expect(sample(text, 'patroni_postgres_server_version')).toEqual(['patroni_postgres_server_version{scope="demo",name="n2"} 0']);
    expect(sample(text, 'pgha_snapshot_age_seconds')).toEqual(['pgha_snapshot_age_seconds{scope="demo",name="n2"} -1']);
    expect(text).not.toMatch(/pgha_standby_lag|pgha_maximum_lag_on_failover_bytes/);
  });

  it('maps the member states, pause, pending restart, sync and failsafe as Patroni does', () => {
    const sync = clusterView({ config: dyn({ synchronous_mode: 'on', pause: true }), sync: { leader: 'n1', members: ['n2'] } });
    const s = snap({ cluster: sync, paused: true, failsafeActive: true }, { pendingRestart: true });
    const text = renderMetrics(input(s));
    for (const n of ['patroni_sync_standby', 'patroni_is_paused', 'patroni_pending_restart', 'patroni_failsafe_mode_is_active']) {
      expect(sample(text, n), n).toEqual([`${n}{scope="demo",name="n2"} 1`]);
    }
    const state = (m: Partial<MemberInfo>) => sample(renderMetrics(input(snap({}, m))), 'patroni_postgres_state')[0]?.split(' ')[1];
    expect([state({ state: 'cloning' }), state({ state: 'starting' }), state({ state: 'stopped', role: 'unknown' }), state({ state: 'crashed', role: 'unknown' }), state({ state: 'bootstrapping' })])
      .toEqual(['4', '6', '12', '14', '0']);
    const unknown = renderMetrics(input(snap({}, { state: 'stopped', role: 'unknown' })));
    expect(sample(unknown, 'patroni_replica')).toEqual(['patroni_replica{scope="demo",name="n2"} 0']);
    expect(sample(unknown, 'patroni_postgres_timeline')).toEqual(['patroni_postgres_timeline{scope="demo",name="n2"} 0']);
  });

  it('writes the agent\'s counters: histograms, etcd errors, fences, pets, promotions with outages', () => {
    const stats = new AgentStats();
    stats.loopDone(0.003);
    stats.loopDone(0.2);
    stats.etcdCall('readCluster', 0.004, true);
    stats.etcdCall('keepalive', 0.5, false);
    stats.fenced();
    stats.pet('systemd'); stats.pet('systemd'); stats.pet('device');
    stats.promoted('switchover', 1.25);
    stats.promoted('failover', null);
    stats.promoted('switchover', 0.75);
    const text = renderMetrics(input(snap(), { stats }));
    const at = lines(text).indexOf('# TYPE pgha_ha_loop_duration_seconds histogram');
    expect(lines(text).slice(at - 1, at + 16)).toEqual([
      '# HELP pgha_ha_loop_duration_seconds Duration of HA loop iterations (observe, decide, act, publish).',
      '# TYPE pgha_ha_loop_duration_seconds histogram',
      ...['0.001:0', '0.005:1', '0.01:1', '0.025:1', '0.05:1', '0.1:1', '0.25:2', '0.5:2', '1:2', '2.5:2', '5:2', '10:2', '+Inf:2'].map((x) => {
        const [le, n] = x.split(':');
        return `pgha_ha_loop_duration_seconds_bucket{scope="demo",name="n2",le="${le}"} ${n}`;
      }),
      'pgha_ha_loop_duration_seconds_sum{scope="demo",name="n2"} 0.203',
      'pgha_ha_loop_duration_seconds_count{scope="demo",name="n2"} 2',
    ]);
    expect(sample(text, 'pgha_etcd_request_duration_seconds_count')).toEqual([
      'pgha_etcd_request_duration_seconds_count{scope="demo",name="n2",op="keepalive"} 1',
      'pgha_etcd_request_duration_seconds_count{scope="demo",name="n2",op="readCluster"} 1',
    ]);
    expect(sample(text, 'pgha_etcd_request_errors_total')).toEqual([
      'pgha_etcd_request_errors_total{scope="demo",name="n2",op="keepalive"} 1',
      'pgha_etcd_request_errors_total{scope="demo",name="n2",op="readCluster"} 0',
    ]);
    expect(sample(text, 'pgha_fence_events_total')).toEqual(['pgha_fence_events_total{scope="demo",name="n2"} 1']);
    expect(sample(text, 'pgha_watchdog_pets_total')).toEqual([
      'pgha_watchdog_pets_total{scope="demo",name="n2",watchdog="systemd"} 2',
      'pgha_watchdog_pets_total{scope="demo",name="n2",watchdog="device"} 1',
    ]);
    expect(sample(text, 'pgha_promotions_total')).toEqual([
      'pgha_promotions_total{scope="demo",name="n2",reason="failover"} 1',
      'pgha_promotions_total{scope="demo",name="n2",reason="manual failover"} 0',
      'pgha_promotions_total{scope="demo",name="n2",reason="switchover"} 2',
    ]);
    expect(text).toContain([
      '# TYPE pgha_promotion_outage_seconds summary',
      'pgha_promotion_outage_seconds_sum{scope="demo",name="n2",reason="failover"} 0',
      'pgha_promotion_outage_seconds_count{scope="demo",name="n2",reason="failover"} 0',
      'pgha_promotion_outage_seconds_sum{scope="demo",name="n2",reason="manual failover"} 0',
      'pgha_promotion_outage_seconds_count{scope="demo",name="n2",reason="manual failover"} 0',
      'pgha_promotion_outage_seconds_sum{scope="demo",name="n2",reason="switchover"} 2',
      'pgha_promotion_outage_seconds_count{scope="demo",name="n2",reason="switchover"} 2',
    ].join('\n'));
    expect(sample(text, 'pgha_last_promotion_outage_seconds')).toEqual(['pgha_last_promotion_outage_seconds{scope="demo",name="n2",reason="switchover"} 0.75']);
  });

  it('every family has HELP then TYPE, a unique name, and samples in the exposition syntax', () => {
    const stats = new AgentStats();
    stats.etcdCall('keepalive', 0.01, true);
    stats.promoted('failover', 2);
    const text = renderMetrics(input(snap({ postgres: pgStats() }), { stats, leaseDeadline: NOW + 10 }));
    const seen = new Set<string>();
    let current = '';
    for (const [k, l] of lines(text).slice(0, -1).entries()) {
      const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/.exec(l);
      if (help !== null) {
        expect(seen.has(help[1]!), help[1]).toBe(false);
        seen.add((current = help[1]!));
        expect(lines(text)[k + 1]).toMatch(new RegExp(`^# (TYPE ${current} (gauge|counter|histogram|summary)|Values: )`));
      } else if (!l.startsWith('# ')) {
        expect(l).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\} (?:-?\d+(?:\.\d+)?(?:e[-+]\d+)?|NaN|[+-]Inf)$/);
        expect(l.startsWith(current)).toBe(true);
      }
    }
    expect(seen.size).toBeGreaterThan(30);
  });
});

describe('text format helpers', () => {
  it('escapes label values and HELP text', () => {
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    expect(escapeHelp('a"b\\c\nd')).toBe('a"b\\\\c\\nd');
  });
  it('formats numbers, NaN and infinities; pads versions as Patroni', () => {
    expect([1, 0.5, -1, NaN, Infinity, -Infinity, 2 ** 40].map(formatValue)).toEqual(['1', '0.5', '-1', 'NaN', '+Inf', '-Inf', '1099511627776']);
    expect([paddedVersion('0.1.0'), paddedVersion('3.0.2'), paddedVersion('4.1.12-rc1'), paddedVersion('x')]).toEqual([100, 30002, 40112, 0]);
  });
});

describe('instrumentDcs', () => {
  it('times every call under its method name, failures too, and passes results and errors through', async () => {
    let t = 0;
    const stats = new AgentStats();
    const fake = {
      secret: 42,
      async keepalive() { t += 20; return { sentAt: 1, ttl: 2 }; },
      async readCluster() { t += 5; throw new Error('etcd down'); },
      async writeSync() { t += 3; throw new PgHaError('PGHA_DCS_CONFLICT', '/sync changed since it was read'); },
      watchLeader: async () => () => undefined,
    } as unknown as Dcs & { secret: number };
    const dcs = instrumentDcs(fake, stats, () => t);
    await expect(dcs.keepalive()).resolves.toEqual({ sentAt: 1, ttl: 2 });
    await expect(dcs.readCluster(dyn())).rejects.toThrow('etcd down');
    await expect(dcs.writeSync({ leader: 'n1', members: [] }, '0')).rejects.toThrow('changed since');
    await dcs.watchLeader(() => undefined);
    expect(dcs.secret).toBe(42);
    expect(stats.etcd.get('writeSync')).toMatchObject({ count: 1 });
    expect(stats.etcdErrors.has('writeSync')).toBe(false); // a lost compare-and-set: etcd answered
    expect(stats.etcd.get('keepalive')).toMatchObject({ count: 1, sum: 0.02 });
    expect(stats.etcd.get('readCluster')).toMatchObject({ count: 1, sum: 0.005 });
    expect(stats.etcdErrors.get('readCluster')).toBe(1);
    expect(stats.etcdErrors.has('keepalive')).toBe(false);
    expect(stats.etcd.has('watchLeader')).toBe(false);
  });
});

describe('GET /metrics', () => {
  it('answers the rendered text as text/plain version 0.0.4, and logs no line for it', async () => {
    const logged: string[] = [];
    const destination = new Writable({ write(chunk: Buffer, _e, cb) { logged.push(chunk.toString()); cb(); } });
    const s = snap();
    const app = buildApi({
      logger: createLogger({ destination }), scope: 'demo', snapshot: () => s, now: () => NOW, staleAfterMs: () => 3000,
      metrics: () => renderMetrics(input(s)),
    });
    const r = await app.inject({ url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.body).toBe(renderMetrics(input(s)));
    await app.inject({ url: '/metrics?x=1' });
    expect(logged).toEqual([]);
    await app.close();
  });
});

describe('the actor reports fences and promotions', () => {
  it('calls fencing before it stops PostgreSQL, and promoted after pg_promote succeeded (not after a failure)', async () => {
    const events: string[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as Logger;
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
    let promoteFails = false;
    const actor = new Actor({
      fence, logger, now: () => 0, config: { name: 'n1' },
      pg: {
        stop: async () => { events.push('stop'); },
        promote: async () => { if (promoteFails) throw new Error('no'); events.push('pg_promote'); return { timeline: 2, lsn: '0/3000000' }; },
      } as unknown as PostgresControl,
      dcs: { appendHistory: async () => { events.push('history'); } },
      setLeadership: () => undefined,
      fencing: (why: string) => events.push(`fencing: ${why}`),
      promoted: (reason: string) => events.push(`promoted: ${reason}`),
    } as unknown as ActorDeps);
    fence.arm(60_000);
    await actor.promote('switchover');
    promoteFails = true;
    await expect(actor.promote('failover')).rejects.toThrow('no');
    await actor.fenceNow('lease deadline passed');
    expect(events).toEqual(['pg_promote', 'promoted: switchover', 'history', 'fencing: lease deadline passed', 'stop']);
    fence.disarm();
  });
});

describe('archive metrics (pg_stat_archiver)', () => {
  const archive = (over: Partial<NonNullable<PostgresStats['archive']>> = {}) => ({ enabled: true, archived: 7, failed: 0, lastArchivedAt: 1700000100, lastFailedAt: null, ...over });
  const render = (a: NonNullable<PostgresStats['archive']>) => renderMetrics(input(snap({ postgres: pgStats({ archive: a }) }), { wallNow: 1700000160 }));

  it('exports the counters, the times and the age of the last archive', () => {
    const text = render(archive());
    expect(sample(text, 'pgha_archive_archived_total')).toEqual(['pgha_archive_archived_total{scope="demo",name="n2"} 7']);
    expect(sample(text, 'pgha_archive_failed_total')).toEqual(['pgha_archive_failed_total{scope="demo",name="n2"} 0']);
    expect(sample(text, 'pgha_archive_last_archived_age_seconds')).toEqual(['pgha_archive_last_archived_age_seconds{scope="demo",name="n2"} 60']);
    expect(sample(text, 'pgha_archive_last_failed_timestamp_seconds')).toEqual(['pgha_archive_last_failed_timestamp_seconds{scope="demo",name="n2"} 0']);
    expect(sample(text, 'pgha_archive_failing')).toEqual(['pgha_archive_failing{scope="demo",name="n2"} 0']);
  });

  it('is failing while the last attempt failed after the last success, and not once one succeeds again', () => {
    expect(sample(render(archive({ failed: 3, lastFailedAt: 1700000150 })), 'pgha_archive_failing')[0]).toMatch(/ 1$/);
    expect(sample(render(archive({ failed: 3, lastArchivedAt: null, lastFailedAt: 1700000150 })), 'pgha_archive_failing')[0]).toMatch(/ 1$/);
    expect(sample(render(archive({ failed: 3, lastFailedAt: 1700000050 })), 'pgha_archive_failing')[0]).toMatch(/ 0$/);
    // A member that does not archive (a standby without archive_mode = always) never alerts.
    expect(sample(render(archive({ enabled: false, failed: 3, lastFailedAt: 1700000150 })), 'pgha_archive_failing')[0]).toMatch(/ 0$/);
    expect(sample(render(archive({ lastArchivedAt: null })), 'pgha_archive_last_archived_age_seconds')).toEqual([]);
  });

  it('writes none without archiver statistics', () => {
    expect(renderMetrics(input(snap({ postgres: pgStats() })))).not.toContain('pgha_archive_');
  });
});
