// Patroni's DCS formats (issue 20): values Patroni 3.0.2 wrote (test/fixtures/patroni-3.0.2/) decode
// to what they mean, what pgha writes is Patroni's shape (fields Patroni's code reads, checked
// against patroni/dcs/__init__.py, ha.py, ctl.py, utils.py), and pgha's earlier formats still decode
// (a cluster upgraded in place).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decode, decodeFailover, decodeFailsafe, historySchema, memberValueSchema, statusSchema, storedConfigSchema, syncSchema } from '../../src/dcs/codec.ts';
import { PATRONI_FORMAT_VERSION, encodeFailover, encodeFailsafe, encodeHistory, encodeMember, encodeStatus, encodeSync } from '../../src/dcs/patroni.ts';
import { fromPatroniConfig, toPatroniConfig } from '../../src/dcs/patroni-config.ts';
import { dynamicConfigSchema } from '../../src/config/schema.ts';
import type { MemberInfo } from '../../src/ha/types.ts';

const snaps = JSON.parse(readFileSync(new URL('../fixtures/patroni-3.0.2/etcd-snapshots.json', import.meta.url), 'utf8')) as Record<string, Record<string, string>>;
const key = (snap: string, k: string): string => {
  const v = snaps[snap]?.[`/service/cap/${k}`];
  if (v === undefined) throw new Error(`no ${k} in ${snap}`);
  return v;
};
const ok = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

describe('values Patroni 3.0.2 wrote', () => {
  it('members: address, role, state, position, timeline', () => {
    const p2 = ok(decode(memberValueSchema('p2'), key('after-switchover', 'members/p2')));
    expect(p2).toEqual({
      name: 'p2', role: 'primary', state: 'running', timeline: 2, lsn: 50332416, apiUrl: 'http://127.0.0.1:9201',
      conn: '127.0.0.1:6201', tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, nostream: false, failover_priority: 1 },
      upstream: null, pendingRestart: false, agent: 'patroni', patroniRole: 'master',
    });
    // The old primary while stopping: Patroni's role `demoted`, no position (what a pgha
    // candidate reads as "the Patroni leader released the key": src/ha/patroni-handover.ts).
    const p1 = ok(decode(memberValueSchema('p1'), key('after-switchover', 'members/p1')));
    expect(p1).toMatchObject({ role: 'unknown', state: 'stopped', lsn: null, timeline: null, agent: 'patroni', patroniRole: 'demoted' });
    // A running replica (3.0.2 publishes no replication_state): a running standby, a failover candidate.
    expect(ok(decode(memberValueSchema('p1'), key('paused', 'members/p1')))).toMatchObject({ role: 'standby', state: 'running', lsn: 50332456, timeline: 2 });
    expect(ok(decode(memberValueSchema('p2'), key('scheduled-restart', 'members/p2')))).toMatchObject({ role: 'primary', lsn: 50332512 });
  });

  it('a member value whose key holds a name pgha cannot use is refused', () => {
    expect(decode(memberValueSchema('p 2'), key('final', 'members/p2')).ok).toBe(false);
  });

  it('/history: [ended timeline, lsn bytes, reason, timestamp, new leader]', () => {
    // Patroni's line names the timeline that ended (1); pgha's entry the one that began (2), on
    // which p2 runs in the same snapshot.
    expect(ok(decode(memberValueSchema('p2'), key('final', 'members/p2'))).timeline).toBe(2);
    expect(ok(decode(historySchema, key('final', 'history')))).toEqual([
      { timeline: 2, lsn: '0/30001E8', reason: 'no recovery target specified', time: '2026-11-30T07:07:51.369743+00:00', leader: 'p2' },
    ]);
  });

  it('/status: optime', () => {
    expect(ok(decode(statusSchema, key('final', 'status')))).toEqual({ lsn: 50332512 });
  });

  it('/sync: sync_standby as a list, null as none', () => {
    expect(ok(decode(syncSchema, key('final', 'sync')))).toEqual({ leader: 'p2', members: ['p1'] });
    expect(ok(decode(syncSchema, key('after-switchover', 'sync')))).toEqual({ leader: 'p2', members: [] });
    // Without a leader it tells nothing: unreadable (nobody races in synchronous mode), not "none".
    expect(decode(syncSchema, '{}').ok).toBe(false);
    expect(decode(syncSchema, '{"leader":null,"sync_standby":null}').ok).toBe(false);
    expect(decode(syncSchema, '[]').ok).toBe(false);
  });

  it('/failover: a scheduled switchover; `{}` asks for nothing', () => {
    expect(ok(decodeFailover(key('scheduled', 'failover'), 1234))).toEqual({
      kind: 'switchover', leader: 'p2', candidate: 'p1', scheduledAt: Date.parse('2026-11-30T09:08:24+00:00'), requestedAt: 1234, shutdownLsn: null,
    });
    expect(ok(decodeFailover(key('final', 'failover'), 1234))).toBeNull();
    // patronictl failover falling back to the DCS: {"member": ...} only.
    expect(ok(decodeFailover('{"member":"p1"}', 5))).toMatchObject({ kind: 'failover', leader: null, candidate: 'p1', requestedAt: 5 });
  });

  it('/failsafe: {name: api_url}, the leader from the leader key', () => {
    expect(ok(decodeFailsafe(key('final', 'failsafe'), 'p2'))).toEqual({ leader: 'p2', members: { p1: 'http://127.0.0.1:9200', p2: 'http://127.0.0.1:9201' } });
    expect(ok(decodeFailsafe(key('final', 'failsafe'), null))).toBeNull(); // nobody holds the leader key
    expect(decodeFailsafe('{"p1":42}', 'p1').ok).toBe(false);
  });

  it('/config: boolean synchronous_mode, pause only while paused', () => {
    const c = ok(decode(storedConfigSchema, key('final', 'config')));
    expect(c).toMatchObject({ ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: 'on', failsafe_mode: true, pause: false, maximum_lag_on_failover: 1048576 });
    expect(c.postgresql).toMatchObject({ use_pg_rewind: true, use_slots: true, parameters: { max_connections: 30, shared_buffers: '16MB', wal_log_hints: 'on' } });
    expect(ok(decode(storedConfigSchema, key('paused', 'config'))).pause).toBe(true);
    // patronictl resume sends {"pause": null}: Patroni's PATCH deletes the key; a stored null is "not paused" too.
    expect(ok(decode(storedConfigSchema, JSON.stringify({ ...JSON.parse(key('final', 'config')), pause: null }))).pause).toBe(false);
  });

  it('/config: settings only Patroni knows are read through, and survive a pgha write', () => {
    const stored = { ...JSON.parse(key('final', 'config')), primary_start_timeout: 300, check_timeline: true, postgresql: { ...JSON.parse(key('final', 'config')).postgresql, recovery_conf: { restore_command: 'cp /a/%f %p' } } };
    const c = ok(decode(storedConfigSchema, JSON.stringify(stored)));
    const written = toPatroniConfig({ ...c, pause: true, fence_margin: 0.75 }, stored);
    expect(written).toMatchObject({ primary_start_timeout: 300, check_timeline: true, synchronous_mode: true, pause: true, fence_margin: 0.75 });
    expect((written['postgresql'] as Record<string, unknown>)['recovery_conf']).toEqual({ restore_command: 'cp /a/%f %p' });
    // A key neither Patroni nor pgha knows is still a mistake.
    expect(decode(storedConfigSchema, JSON.stringify({ ...stored, tll: 5 })).ok).toBe(false);
  });
});

const member: MemberInfo = {
  name: 'n2', role: 'standby', state: 'streaming', timeline: 3, lsn: 83886240, apiUrl: 'https://db2.example.com:8008', conn: 'db2.example.com:5432',
  tags: { nofailover: false, noloadbalance: true, clonefrom: false, nosync: false, nostream: false, failover_priority: 2 }, upstream: 'n1', pendingRestart: true,
};

describe('what pgha writes', () => {
  it('member values carry the fields patronictl and Patroni read, and decode back exactly', () => {
    const v = encodeMember(member, true);
    // utils.py cluster_as_json: host/port from conn_url, lag from xlog_location; ctl.py: api_url, pause.
    expect(v).toMatchObject({
      conn_url: 'postgres://db2.example.com:5432/postgres', api_url: 'https://db2.example.com:8008/patroni', state: 'running',
      role: 'replica', xlog_location: 83886240, replication_state: 'streaming', timeline: 3, version: PATRONI_FORMAT_VERSION,
      pending_restart: true, pause: true, tags: { noloadbalance: true, failover_priority: 2 }, upstream: 'n1', pgha_state: 'streaming',
    });
    expect(ok(decode(memberValueSchema('n2'), JSON.stringify(v)))).toEqual(member);
    const primary = encodeMember({ ...member, role: 'primary', state: 'running', pendingRestart: false, upstream: null });
    expect(primary).toMatchObject({ role: 'master', state: 'running' });
    expect(primary).not.toHaveProperty('pending_restart');
    expect(primary).not.toHaveProperty('pause');
    // Default tags are left out, as Patroni leaves out false ones (patronictl then shows no Tags column).
    expect(encodeMember({ ...member, tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, nostream: false, failover_priority: 1 } })).not.toHaveProperty('tags');
    expect(encodeMember({ ...member, state: 'cloning', lsn: null, timeline: null })).toMatchObject({ state: 'creating replica' });
  });

  it('/history, /status, /sync, /failover, /failsafe in Patroni shapes that decode back', () => {
    const h = [{ timeline: 2, lsn: '0/5000060', reason: 'switchover', time: '2026-11-30T07:00:00.000Z', leader: 'n2' }];
    expect(encodeHistory(h)).toEqual([[1, 83886176, 'switchover', '2026-11-30T07:00:00.000Z', 'n2']]);
    expect(ok(decode(historySchema, JSON.stringify(encodeHistory(h))))).toEqual(h);
    expect(encodeStatus(42)).toEqual({ optime: 42 });
    expect(encodeSync({ leader: 'n1', members: ['n3', 'n2'] })).toEqual({ leader: 'n1', sync_standby: 'n2,n3' });
    expect(encodeSync({ leader: 'n1', members: [] })).toEqual({ leader: 'n1', sync_standby: null });
    expect(ok(decode(syncSchema, JSON.stringify(encodeSync({ leader: 'n1', members: ['n2', 'n3'], acks: 1 }))))).toEqual({ leader: 'n1', members: ['n2', 'n3'], acks: 1 });
    const f = { kind: 'switchover' as const, leader: 'n1', candidate: 'n2', scheduledAt: Date.parse('2026-12-01T00:00:00Z'), requestedAt: 99, shutdownLsn: 7 };
    expect(encodeFailover(f)).toEqual({ leader: 'n1', member: 'n2', scheduled_at: '2026-12-01T00:00:00.000Z', kind: 'switchover', requested_at: 99, shutdown_lsn: 7 });
    expect(ok(decodeFailover(JSON.stringify(encodeFailover(f)), 0))).toEqual(f);
    const fs = { leader: 'n1', members: { n1: 'http://10.0.0.1:8008', n2: 'http://10.0.0.2:8008' } };
    expect(encodeFailsafe(fs)).toEqual({ n1: 'http://10.0.0.1:8008/patroni', n2: 'http://10.0.0.2:8008/patroni' });
    expect(ok(decodeFailsafe(JSON.stringify(encodeFailsafe(fs)), 'n1'))).toEqual(fs);
  });

  it('/config: Patroni booleans and pgha-only settings beside them', () => {
    const cfg = dynamicConfigSchema.parse({ synchronous_mode: 'on', fence_margin: 0.4 });
    const v = toPatroniConfig(cfg, undefined);
    expect(v).toMatchObject({ synchronous_mode: true, fence_margin: 0.4, ttl: 2 });
    expect(v).not.toHaveProperty('pause');
    expect(toPatroniConfig(dynamicConfigSchema.parse({ synchronous_mode: 'quorum' }), undefined)['synchronous_mode']).toBe('quorum');
    expect(ok(decode(storedConfigSchema, JSON.stringify(v)))).toEqual(cfg);
    expect(fromPatroniConfig({ synchronous_mode: 'on', pause: 'off' })).toEqual({ synchronous_mode: 'on' });
  });
});

describe('pgha values written before the Patroni format (a cluster upgraded in place)', () => {
  it('still decode', () => {
    const { name: _, ...rest } = member;
    expect(ok(decode(memberValueSchema('n2'), JSON.stringify(member)))).toEqual(member);
    expect(decode(memberValueSchema('n3'), JSON.stringify({ ...rest, name: 'n2' })).ok).toBe(false);
    const h = [{ timeline: 1, lsn: '0/5000060', reason: 'failover', time: '2026-01-01T00:00:00.000Z', leader: 'n2' }];
    expect(ok(decode(historySchema, JSON.stringify(h)))).toEqual(h);
    expect(ok(decode(statusSchema, '{"lsn":77,"timeline":2}'))).toEqual({ lsn: 77 });
    expect(ok(decode(syncSchema, '{"leader":"n1","members":["n2"],"acks":1}'))).toEqual({ leader: 'n1', members: ['n2'], acks: 1 });
    const f = { kind: 'failover', leader: null, candidate: 'n2', scheduledAt: null, requestedAt: 5, shutdownLsn: null };
    expect(ok(decodeFailover(JSON.stringify(f), 0))).toEqual(f);
    expect(ok(decodeFailsafe('{"leader":"n1","members":{"n1":"http://10.0.0.1:8008"}}', null))).toEqual({ leader: 'n1', members: { n1: 'http://10.0.0.1:8008' } });
    expect(ok(decode(storedConfigSchema, JSON.stringify(dynamicConfigSchema.parse({ synchronous_mode: 'quorum', pause: true }))))).toMatchObject({ synchronous_mode: 'quorum', pause: true });
  });
});
