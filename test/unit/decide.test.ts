// Table-driven cases of the HA decision: one row per rule in src/ha/decide.ts.
import { describe, expect, it } from 'vitest';
import { decide, MAX_START_FAILURES, REWIND_AFTER_MS } from '../../src/ha/decide.ts';
import { MAX_REWINDS_WITHOUT_STREAMING } from '../../src/ha/memory.ts';
import type { Action } from '../../src/ha/types.ts';
import { SYSID, clusterView, defaultTags, dyn, member, obs, request, WALL } from '../support/observations.ts';

const kinds = (a: Action[]) => a.map((x) => x.kind);
const noLeader = (over = {}) => clusterView({ leader: null, ...over });

const cases: Array<{ name: string; o: ReturnType<typeof obs>; expect: string[] }> = [
  { name: 'etcd down, standby: wait', o: obs({ cluster: null }), expect: [] },
  { name: 'etcd down, primary with live lease: keep running', o: obs({ cluster: null, local: { role: 'primary' } }), expect: [] },
  { name: 'etcd down, primary past deadline: fence', o: obs({ cluster: null, now: 13_000, local: { role: 'primary' } }), expect: ['fence'] },
  { name: 'no initialize key, empty: bootstrap', o: obs({ local: { dataDir: 'empty', running: false }, cluster: noLeader({ initialize: null }) }), expect: ['bootstrap'] },
  { name: 'no initialize key, nofailover: wait', o: obs({ self: { tags: { ...defaultTags, nofailover: true } }, local: { dataDir: 'empty', running: false }, cluster: noLeader({ initialize: null }) }), expect: [] },
  // Finding 14: existing data never becomes a new cluster on its own (a scope typo on a standby).
  { name: 'no initialize key, standby data: refuse to adopt', o: obs({ cluster: noLeader({ initialize: null }) }), expect: [] },
  { name: 'no initialize key, stopped primary data: refuse to adopt', o: obs({ local: { running: false, role: null, controlState: 'primary-clean' }, self: { leaseDeadline: null }, cluster: noLeader({ initialize: null }) }), expect: [] },
  { name: 'no initialize key, running primary without a live lease: refuse to adopt', o: obs({ now: 13_000, local: { role: 'primary' }, cluster: noLeader({ initialize: null }) }), expect: [] },
  { name: 'no initialize key, running primary leading it (etcd lost its keys): adopt', o: obs({ local: { role: 'primary' }, cluster: noLeader({ initialize: null }) }), expect: ['adopt_cluster'] },
  { name: 'no initialize key, adopt_system_id names our data: adopt', o: obs({ self: { adoptSystemId: SYSID }, local: { running: false, role: null }, cluster: noLeader({ initialize: null }) }), expect: ['adopt_cluster'] },
  { name: 'no initialize key, adopt_system_id names other data: refuse', o: obs({ self: { adoptSystemId: '42' }, cluster: noLeader({ initialize: null }) }), expect: [] },
  // Finding 1: files that are no PostgreSQL data directory: never bootstrap or clone into them.
  { name: 'foreign files, no initialize key: no bootstrap', o: obs({ local: { dataDir: 'foreign', systemId: null, running: false, role: null }, cluster: noLeader({ initialize: null }) }), expect: [] },
  { name: 'foreign files, running leader: no clone', o: obs({ local: { dataDir: 'foreign', systemId: null, running: false, role: null } }), expect: [] },
  // An agent killed in initdb / pg_basebackup / a wipe (fault lab, seed 1): its marker makes the half-made directory its own.
  { name: 'unfinished bootstrap, no PG_VERSION, no initialize key: wipe it', o: obs({ local: { dataDir: 'foreign', unfinished: 'bootstrap', systemId: null, running: false, role: null }, cluster: noLeader({ initialize: null }) }), expect: ['wipe_unfinished'] },
  { name: 'unfinished bootstrap, running primary, our old claim still held: wipe it', o: obs({ local: { unfinished: 'bootstrap', role: 'primary' }, cluster: noLeader({ initialize: 'claim:n2' }) }), expect: ['wipe_unfinished'] },
  { name: 'unfinished bootstrap, another member bootstrapped since: wipe it', o: obs({ local: { unfinished: 'bootstrap', systemId: '42', running: false, role: null } }), expect: ['wipe_unfinished'] },
  { name: 'finished bootstrap (initialize holds our id), marker left: keep the data, drop the marker, go on', o: obs({ local: { unfinished: 'bootstrap', running: false, role: null, controlState: 'primary-clean' }, cluster: noLeader() }), expect: ['settle_data', 'start'] },
  { name: 'unfinished clone with the cluster\'s system id: wipe it (never started)', o: obs({ local: { unfinished: 'clone', running: false, role: null } }), expect: ['wipe_unfinished'] },
  { name: 'unfinished clone, no PG_VERSION: wipe it', o: obs({ local: { dataDir: 'foreign', unfinished: 'clone', systemId: null, running: false, role: null } }), expect: ['wipe_unfinished'] },
  { name: 'unfinished wipe: finish it', o: obs({ local: { dataDir: 'foreign', unfinished: 'wipe', systemId: null, running: false, role: null } }), expect: ['wipe_unfinished'] },
  { name: 'marker but empty directory: clone as usual (the clone rewrites it)', o: obs({ local: { dataDir: 'empty', unfinished: 'clone', systemId: null, running: false, role: null } }), expect: ['clone', 'start', 'clear_unsafe'] },
  { name: 'marker but etcd down: wait', o: obs({ cluster: null, local: { dataDir: 'foreign', unfinished: 'bootstrap', systemId: null, running: false, role: null } }), expect: [] },
  { name: 'claimed initialize: wait', o: obs({ local: { dataDir: 'empty', running: false }, cluster: noLeader({ initialize: 'claim:n1' }) }), expect: [] },
  { name: 'empty data, running leader: clone, start, clear the unsafe mark', o: obs({ local: { dataDir: 'empty', running: false } }), expect: ['clone', 'start', 'clear_unsafe'] },
  { name: 'empty data, no leader: wait', o: obs({ local: { dataDir: 'empty', running: false }, cluster: noLeader() }), expect: [] },
  { name: 'foreign system id: refuse', o: obs({ local: { systemId: '42' } }), expect: [] },
  { name: 'leader running primary: renew, publish, slots', o: obs({ self: { name: 'n1' }, local: { role: 'primary' } }), expect: ['renew', 'publish_leader_lsn', 'ensure_slots', 'set_sync_names', 'write_failsafe'] },
  { name: 'leader without slots', o: obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView({ config: dyn({ postgresql: { use_slots: false, use_pg_rewind: true, parameters: {} } }) }) }), expect: ['renew', 'publish_leader_lsn', 'set_sync_names', 'write_failsafe'] },
  { name: 'leader standby: promote', o: obs({ self: { name: 'n1' } }), expect: ['renew', 'promote'] },
  { name: 'leader standby, paused: renew only', o: obs({ self: { name: 'n1' }, cluster: clusterView({ config: dyn({ pause: true }) }) }), expect: ['renew'] },
  { name: 'leader down: restart in place', o: obs({ self: { name: 'n1' }, local: { running: false, role: null, controlState: 'primary-crashed' } }), expect: ['renew', 'start'] },
  { name: 'leader down too often: release', o: obs({ self: { name: 'n1' }, memory: { startFailures: MAX_START_FAILURES }, local: { running: false, role: null, controlState: 'primary-crashed' } }), expect: ['release'] },
  { name: 'leader down, paused: renew only', o: obs({ self: { name: 'n1' }, local: { running: false, role: null }, cluster: clusterView({ config: dyn({ pause: true }) }) }), expect: ['renew'] },
  { name: 'follower running primary: fence', o: obs({ local: { role: 'primary' } }), expect: ['fence'] },
  { name: 'follower running primary, paused: nothing', o: obs({ local: { role: 'primary' }, cluster: clusterView({ config: dyn({ pause: true }) }) }), expect: [] },
  { name: 'standby following old leader: follow', o: obs({ local: { upstream: 'n3' } }), expect: ['follow'] },
  { name: 'standby streaming: nothing', o: obs(), expect: [] },
  { name: 'standby stuck on old timeline: rewind', o: obs({ local: { streaming: false }, memory: { notStreamingSince: 10_000 - REWIND_AFTER_MS }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running', timeline: 2 })] }) }), expect: ['rewind', 'start'] },
  { name: 'standby that saw the new timeline but replays the old one: rewind', o: obs({ local: { streaming: false, timeline: 2, replayTimeline: 1 }, memory: { notStreamingSince: 10_000 - REWIND_AFTER_MS }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running', timeline: 2 })] }) }), expect: ['rewind', 'start'] },
  { name: 'standby briefly not streaming: wait', o: obs({ local: { streaming: false }, memory: { notStreamingSince: 9_000 }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running', timeline: 2 })] }) }), expect: [] },
  { name: 'standby that keeps failing to start: rewind (clone if still unusable)', o: obs({ memory: { startFailures: MAX_START_FAILURES }, local: { running: false, role: null, controlState: 'standby' } }), expect: ['rewind', 'start'] },
  { name: 'standby that failed to start once: start again', o: obs({ memory: { startFailures: 1 }, local: { running: false, role: null, controlState: 'standby' } }), expect: ['start'] },
  { name: 'rewound data that did not start: clone afresh, start', o: obs({ memory: { rewindUnusable: true, startFailures: 1 }, local: { running: false, role: null, controlState: 'standby' } }), expect: ['reclone', 'start'] },
  { name: 'rewound data that did not start, paused: nothing', o: obs({ memory: { rewindUnusable: true }, local: { running: false, role: null, controlState: 'standby' }, cluster: clusterView({ config: dyn({ pause: true }) }) }), expect: [] },
  { name: 'third rewind without streaming since: clone afresh instead', o: obs({ memory: { rewindsWithoutStreaming: MAX_REWINDS_WITHOUT_STREAMING - 1 }, local: { running: false, role: null, controlState: 'primary-clean', streaming: false } }), expect: ['reclone', 'start'] },
  { name: 'second rewind without streaming since: rewind', o: obs({ memory: { rewindsWithoutStreaming: MAX_REWINDS_WITHOUT_STREAMING - 2 }, local: { running: false, role: null, controlState: 'primary-clean', streaming: false } }), expect: ['rewind', 'start'] },
  { name: 'stuck standby rewound twice already: clone afresh', o: obs({ local: { streaming: false }, memory: { rewindsWithoutStreaming: MAX_REWINDS_WITHOUT_STREAMING - 1, notStreamingSince: 10_000 - REWIND_AFTER_MS }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running', timeline: 2 })] }) }), expect: ['reclone', 'start'] },
  { name: 'standby that just stopped streaming: the clock starts now', o: obs({ local: { streaming: false }, memory: { notStreamingSince: null }, cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running', timeline: 2 })] }) }), expect: [] },
  { name: 'down former primary: rewind', o: obs({ local: { running: false, role: null, controlState: 'primary-clean' } }), expect: ['rewind', 'start'] },
  { name: 'down former primary without rewind: start standby', o: obs({ local: { running: false, role: null, controlState: 'primary-crashed' }, cluster: clusterView({ config: dyn({ postgresql: { use_pg_rewind: false, use_slots: true, parameters: {} } }) }) }), expect: ['start'] },
  { name: 'down standby: start as standby', o: obs({ local: { running: false, role: null } }), expect: ['start'] },
  { name: 'no leader, best standby: acquire and promote', o: obs({ local: { lsn: 2000 }, cluster: noLeader() }), expect: ['acquire', 'promote'] },
  { name: 'no leader, better peer: wait', o: obs({ cluster: noLeader({ members: [member('n3', { lsn: 5000 })] }) }), expect: [] },
  { name: 'no leader, equal lsn, higher priority peer: wait', o: obs({ cluster: noLeader({ members: [member('n3', { tags: { ...defaultTags, failover_priority: 2 } })] }) }), expect: [] },
  { name: 'no leader, equal lsn and priority: smaller name wins', o: obs({ cluster: noLeader({ members: [member('n3')] }) }), expect: ['acquire', 'promote'] },
  { name: 'no leader, peer nofailover ahead: we race', o: obs({ cluster: noLeader({ members: [member('n3', { lsn: 9000, tags: { ...defaultTags, nofailover: true } })] }) }), expect: ['acquire', 'promote'] },
  { name: 'no leader, we are lagging: wait', o: obs({ local: { lsn: 0 }, cluster: noLeader({ lastLeaderLsn: 5_000_000 }) }), expect: [] },
  { name: 'no leader, nofailover: wait', o: obs({ self: { tags: { ...defaultTags, nofailover: true } }, cluster: noLeader() }), expect: [] },
  { name: 'no leader, priority 0: wait', o: obs({ self: { tags: { ...defaultTags, failover_priority: 0 } }, cluster: noLeader() }), expect: [] },
  { name: 'no leader, paused: wait', o: obs({ cluster: noLeader({ config: dyn({ pause: true }) }) }), expect: [] },
  { name: 'no leader, primary with live lease: take the key back', o: obs({ local: { role: 'primary' }, cluster: noLeader() }), expect: ['acquire', 'renew'] },
  { name: 'no leader, primary with expired lease: fence', o: obs({ now: 20_000, local: { role: 'primary' }, cluster: noLeader() }), expect: ['fence'] },
  { name: 'no leader, down: start as standby', o: obs({ local: { running: false, role: null, controlState: 'primary-crashed' }, cluster: noLeader() }), expect: ['start'] },
];

const leaderObs = (over: Parameters<typeof clusterView>[0] = {}) => obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView(over) });
const switchover: typeof cases = [
  { name: 'switchover to the best standby: step down', o: leaderObs({ failover: request() }), expect: ['renew', 'step_down', 'start'] },
  { name: 'switchover to a named healthy standby: step down', o: leaderObs({ failover: request({ candidate: 'n3' }) }), expect: ['renew', 'step_down', 'start'] },
  { name: 'switchover to a nofailover standby: drop the request', o: leaderObs({ failover: request({ candidate: 'n3' }), members: [member('n1', { role: 'primary', state: 'running' }), member('n3', { tags: { ...defaultTags, nofailover: true } })] }), expect: ['renew', 'clear_failover'] },
  { name: 'switchover to a lagging standby: drop the request', o: leaderObs({ failover: request({ candidate: 'n3' }), members: [member('n3', { lsn: 0 })], lastLeaderLsn: 10_000_000 }), expect: ['renew', 'clear_failover'] },
  { name: 'scheduled switchover not due: keep leading', o: leaderObs({ failover: request({ scheduledAt: WALL + 60_000 }) }), expect: ['renew', 'publish_leader_lsn', 'ensure_slots', 'set_sync_names', 'write_failsafe'] },
  { name: 'scheduled switchover due: step down', o: leaderObs({ failover: request({ scheduledAt: WALL - 10 }) }), expect: ['renew', 'step_down', 'start'] },
  { name: 'stale request: drop it', o: leaderObs({ failover: request({ requestedAt: WALL - 120_000 }) }), expect: ['renew', 'clear_failover'] },
  { name: 'request for another leader: drop it', o: leaderObs({ failover: request({ leader: 'n3' }) }), expect: ['renew', 'clear_failover'] },
  { name: 'request while paused: keep leading', o: leaderObs({ failover: request(), config: dyn({ pause: true }) }), expect: ['renew', 'publish_leader_lsn', 'ensure_slots', 'set_sync_names', 'write_failsafe'] },
  { name: 'named candidate, key free: take over', o: obs({ cluster: noLeader({ failover: request({ candidate: 'n2', shutdownLsn: 10 }) }) }), expect: ['acquire', 'promote', 'clear_failover'] },
  { name: 'named candidate before the old leader recorded its last WAL: wait', o: obs({ cluster: noLeader({ failover: request({ candidate: 'n2' }) }) }), expect: [] },
  { name: 'named candidate without the leader\'s last WAL: wait', o: obs({ cluster: noLeader({ failover: request({ candidate: 'n2', shutdownLsn: 5000 }) }) }), expect: [] },
  { name: 'named candidate with the leader\'s last WAL: take over', o: obs({ local: { lsn: 5001 }, cluster: noLeader({ failover: request({ candidate: 'n2', shutdownLsn: 5000 }) }) }), expect: ['acquire', 'promote', 'clear_failover'] },
  { name: 'not the named candidate: wait', o: obs({ local: { lsn: 9999 }, cluster: noLeader({ failover: request({ candidate: 'n3' }) }) }), expect: [] },
  { name: 'the leader that stepped down: not racing', o: obs({ self: { name: 'n1' }, local: { lsn: 9999 }, cluster: noLeader({ failover: request() }) }), expect: [] },
  { name: 'unnamed switchover: the old leader is not a rival', o: obs({ cluster: noLeader({ failover: request(), members: [member('n1', { lsn: 99999 })] }) }), expect: ['acquire', 'promote'] },
  { name: 'manual failover to a nofailover member: refused', o: obs({ self: { tags: { ...defaultTags, nofailover: true } }, cluster: noLeader({ failover: request({ kind: 'failover', leader: null, candidate: 'n2' }) }) }), expect: [] },
  { name: 'manual failover to a lagging member: the operator decides', o: obs({ local: { lsn: 0 }, cluster: noLeader({ lastLeaderLsn: 10_000_000, failover: request({ kind: 'failover', leader: null, candidate: 'n2' }) }) }), expect: ['acquire', 'promote', 'clear_failover'] },
  { name: 'a keyless primary during a switchover to another member: fence', o: obs({ local: { role: 'primary' }, cluster: noLeader({ failover: request({ candidate: 'n3' }) }) }), expect: ['fence'] },
];

// Issue 10 finding 13: values in etcd that do not match their schema.
const syncOn = dyn({ synchronous_mode: 'on' });
const unreadable: typeof cases = [
  { name: 'no leader, sync on, /sync unreadable: not racing (not "no record")', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ config: syncOn, sync: null, syncUnreadable: true }) }), expect: [] },
  { name: 'no leader, sync on, strict off, no /sync at all: racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ config: syncOn, sync: null }) }), expect: ['acquire', 'promote'] },
  { name: 'no leader, quorum, /sync unreadable: not racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ config: dyn({ synchronous_mode: 'quorum' }), sync: null, syncUnreadable: true }) }), expect: [] },
  { name: 'named candidate, sync on, /sync unreadable: not racing', o: obs({ local: { lsn: 5001 }, cluster: noLeader({ config: syncOn, syncUnreadable: true, failover: request({ candidate: 'n2', shutdownLsn: 5000 }) }) }), expect: [] },
  { name: 'no leader, sync off, stale /sync unreadable: racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ syncUnreadable: true }) }), expect: ['acquire', 'promote'] },
  { name: 'leader, sync on, /sync unreadable: rewrites it', o: leaderObs({ config: syncOn, sync: null, syncUnreadable: true }), expect: ['renew', 'publish_leader_lsn', 'ensure_slots', 'write_sync', 'set_sync_names', 'write_failsafe'] },
  { name: 'no leader, /config invalid, last valid kept: racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ configInvalid: { error: 'ttl: too small', kept: true } }) }), expect: ['acquire', 'promote'] },
  { name: 'no leader, /config invalid, none known: not racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ configInvalid: { error: 'ttl: too small', kept: false } }) }), expect: [] },
  { name: 'no leader, /config invalid but the kept one says paused: not racing', o: obs({ local: { lsn: 2000 }, cluster: noLeader({ config: dyn({ pause: true }), configInvalid: { error: 'x', kept: true } }) }), expect: [] },
];

// The agent started 1 s ago (now 10 000, ttl 2 s): with failsafe_mode on it may have promised a
// leader before a restart and forgotten it, so it takes the key by no path for one ttl.
const fresh = { startedAt: 9_000 };
const restarted: typeof cases = [
  { name: 'started < ttl ago, no leader, best standby: waits', o: obs({ self: fresh, local: { lsn: 2000 }, cluster: noLeader() }), expect: [] },
  { name: 'started < ttl ago, failsafe_mode off: races', o: obs({ self: fresh, local: { lsn: 2000 }, cluster: noLeader({ config: dyn({ failsafe_mode: false }) }) }), expect: ['acquire', 'promote'] },
  { name: 'started exactly a ttl ago: races', o: obs({ self: { startedAt: 8_000 }, local: { lsn: 2000 }, cluster: noLeader() }), expect: ['acquire', 'promote'] },
  { name: 'started < ttl ago, holding the key as a standby: renews, does not promote', o: obs({ self: { ...fresh, name: 'n2' }, cluster: clusterView({ leader: { name: 'n2', revision: '10', lease: '1' } }) }), expect: ['renew'] },
  { name: 'started < ttl ago, named candidate of a handover the leader performed: takes over', o: obs({ self: fresh, cluster: noLeader({ failover: request({ candidate: 'n2', shutdownLsn: 10 }) }) }), expect: ['acquire', 'promote', 'clear_failover'] },
  { name: 'started < ttl ago, named candidate of a manual failover with the leader gone: waits', o: obs({ self: fresh, cluster: noLeader({ failover: request({ kind: 'failover', leader: null, candidate: 'n2' }) }) }), expect: [] },
  { name: 'started < ttl ago, named candidate, the leader recorded no last WAL position: waits', o: obs({ self: fresh, cluster: noLeader({ failover: request({ kind: 'failover', candidate: 'n2' }) }) }), expect: [] },
  { name: 'started < ttl ago, unnamed switchover: waits (another member may take over)', o: obs({ self: fresh, local: { lsn: 2000 }, cluster: noLeader({ failover: request({ shutdownLsn: 10 }) }) }), expect: [] },
  { name: 'started < ttl ago, cluster not initialised: bootstraps at once', o: obs({ self: fresh, local: { dataDir: 'empty', running: false }, cluster: noLeader({ initialize: null }) }), expect: ['bootstrap'] },
  { name: 'started < ttl ago, leader running primary: keeps leading', o: obs({ self: { ...fresh, name: 'n1' }, local: { role: 'primary' } }), expect: ['renew', 'publish_leader_lsn', 'ensure_slots', 'set_sync_names', 'write_failsafe'] },
  { name: 'started < ttl ago, leader with PostgreSQL down: restarts it in place', o: obs({ self: { ...fresh, name: 'n1' }, local: { running: false, role: null, controlState: 'primary-crashed' } }), expect: ['renew', 'start'] },
  { name: 'started < ttl ago, follower: follows at once', o: obs({ self: fresh, local: { upstream: 'n3' } }), expect: ['follow'] },
];

describe('decide (table)', () => {
  it.each(restarted)('$name', ({ o, expect: want }) => {
    const p = decide(o);
    expect(kinds(p.actions), p.reason).toEqual(want);
  });

  it('says why a member started less than a ttl ago waits, and looks again when the ttl has passed', () => {
    const p = decide(obs({ self: fresh, local: { lsn: 2000 }, cluster: noLeader() }));
    expect(p.reason).toMatch(/started less than a ttl ago .*a failsafe promise given before the restart may still hold/);
    expect(p.retryAfterMs).toBe(1000);
  });

  it.each(unreadable)('$name', ({ o, expect: want }) => {
    const p = decide(o);
    expect(kinds(p.actions), p.reason).toEqual(want);
  });

  it.each(switchover)('$name', ({ o, expect: want }) => {
    const p = decide(o);
    expect(kinds(p.actions), p.reason).toEqual(want);
  });

  it.each(cases)('$name', ({ o, expect: want }) => {
    const p = decide(o);
    expect(kinds(p.actions), p.reason).toEqual(want);
    expect(p.reason.length).toBeGreaterThan(0);
  });

  it('records why it promotes: switchover, manual failover, or an automatic failover', () => {
    const reason = (o: ReturnType<typeof obs>) => decide(o).actions.find((a) => a.kind === 'promote');
    expect(reason(obs({ cluster: noLeader({ failover: request({ candidate: 'n2', shutdownLsn: 10 }) }) }))).toEqual({ kind: 'promote', reason: 'switchover' });
    expect(reason(obs({ cluster: noLeader({ failover: request(), members: [member('n1', { lsn: 99999 })] }) }))).toEqual({ kind: 'promote', reason: 'switchover' });
    expect(reason(obs({ cluster: noLeader({ failover: request({ kind: 'failover', leader: null, candidate: 'n2' }) }) }))).toEqual({ kind: 'promote', reason: 'manual failover' });
    expect(reason(obs({ local: { lsn: 2000 }, cluster: noLeader() }))).toEqual({ kind: 'promote', reason: 'failover' });
  });

  it('starts a former primary as a standby of the leader, never as primary', () => {
    const p = decide(obs({ local: { running: false, role: null, controlState: 'standby' } }));
    expect(p.actions).toEqual([{ kind: 'start', as: 'standby', upstream: 'n1' }]);
  });

  it('leader renew asks for fencing on failure only when the deadline has passed', () => {
    const live = decide(obs({ self: { name: 'n1' }, local: { role: 'primary' } }));
    expect(live.actions[0]).toEqual({ kind: 'renew', fenceOnFailure: false });
    const late = decide(obs({ now: 12_000, self: { name: 'n1' }, local: { role: 'primary' } }));
    expect(late.actions[0]).toEqual({ kind: 'renew', fenceOnFailure: true });
  });

  it('takes the key back as a running primary whose lease lives, leaving a failed renewal to the deadline', () => {
    const p = decide(obs({ self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: clusterView({ leader: null }) }));
    expect(p.actions).toEqual([{ kind: 'acquire' }, { kind: 'renew', fenceOnFailure: false }]);
    const late = decide(obs({ now: 12_000, self: { name: 'n1' }, local: { role: 'primary', upstream: null }, cluster: clusterView({ leader: null }) }));
    expect(late.actions).toEqual([{ kind: 'fence' }]);
  });

  it('keeps permanent slots besides one slot per member', () => {
    const p = decide(obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView({ config: dyn({ permanent_slots: { archiver: { type: 'physical' } } }) }) }));
    expect(p.actions.find((a) => a.kind === 'ensure_slots')).toEqual({ kind: 'ensure_slots', members: ['n2', 'n3'], permanent: ['archiver'] });
  });

  it('clones from a clonefrom standby when there is one', () => {
    const p = decide(obs({
      local: { dataDir: 'empty', running: false },
      cluster: clusterView({ members: [member('n1', { role: 'primary', state: 'running' }), member('n3', { tags: { ...defaultTags, clonefrom: true } })] }),
    }));
    expect(p.actions).toEqual([{ kind: 'clone', from: 'n3' }, { kind: 'start', as: 'standby', upstream: 'n3' }, { kind: 'clear_unsafe' }]);
  });
});
