// Properties of the HA decision over generated observations, and a multi-member simulation in
// which the leader key behaves like etcd's (create-if-absent, expires with the holder's lease).
import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { activeRequest, decide, leaseExpired } from '../../src/ha/decide.ts';
import { lagBehind, mayEverPromote } from '../../src/ha/candidates.ts';
import { guaranteeOf } from '../../src/ha/quorum.ts';
import { patroniReleasedLsn } from '../../src/ha/patroni-handover.ts';
import type { Action, Observation } from '../../src/ha/types.ts';
import { SYSID, observationArb } from '../support/observations.ts';

const has = (a: Action[], k: Action['kind']) => a.some((x) => x.kind === k);
const index = (a: Action[], k: Action['kind']) => a.findIndex((x) => x.kind === k);
const holdsKey = (o: Observation) => o.cluster?.leader?.name === o.self.name;
const cfgOf = (o: Observation) => o.cluster?.config ?? o.fallbackConfig;

describe('decide (properties)', () => {
  test.prop([observationArb], { numRuns: 3000 })('promotes only with the key, or right after acquiring it', (o) => {
    const { actions } = decide(o);
    if (!has(actions, 'promote')) return;
    const acquired = index(actions, 'acquire');
    expect(holdsKey(o) || (acquired >= 0 && acquired < index(actions, 'promote'))).toBe(true);
  });

  test.prop([observationArb], { numRuns: 3000 })('never starts PostgreSQL as primary without holding the key', (o) => {
    const starts = decide(o).actions.filter((a) => a.kind === 'start' && a.as === 'primary');
    if (starts.length > 0) expect(holdsKey(o)).toBe(true);
  });

  test.prop([observationArb], { numRuns: 3000 })('one plan has at most one acquire and one promote', (o) => {
    const { actions } = decide(o);
    expect(actions.filter((a) => a.kind === 'acquire').length).toBeLessThanOrEqual(1);
    expect(actions.filter((a) => a.kind === 'promote').length).toBeLessThanOrEqual(1);
  });

  test.prop([observationArb], { numRuns: 3000 })('never races for the key as nofailover, lagging or unhealthy', (o) => {
    const { actions } = decide(o);
    if (!(has(actions, 'acquire') && has(actions, 'promote'))) return;
    expect(mayEverPromote(o.self.tags)).toBe(true);
    expect(o.local.running && o.local.role === 'standby' && o.local.lsn !== null).toBe(true);
    // A named candidate is the operator's choice (decide.ts, "named in a ..."): a switchover
    // candidate is measured against the old leader's final position (its shutdown LSN), which is
    // what it must have; /status may be any older or (in generated data) inconsistent value. A
    // named candidate with no shutdown LSN to wait for (a manual failover, or a switchover whose
    // leader is gone) is not re-checked for lag, as in Patroni. Everyone else against /status.
    const req = o.cluster === null ? null : activeRequest(o, o.cluster);
    if (req !== null && req.candidate === o.self.name) {
      // A Patroni leader's switchover records none: its released /status optime stands in.
      const final = req.shutdownLsn ?? patroniReleasedLsn(req, o.cluster);
      if (final !== null) expect(o.local.lsn ?? 0).toBeGreaterThan(final);
      else expect(req.kind === 'failover' || req.leader === null).toBe(true);
      return;
    }
    expect(lagBehind(o.local.lsn ?? 0, o.cluster?.lastLeaderLsn ?? null)).toBeLessThanOrEqual(cfgOf(o).maximum_lag_on_failover);
  });

  test.prop([observationArb], { numRuns: 3000 })('a holder with nofailover never promotes', (o) => {
    if (has(decide(o).actions, 'promote')) expect(mayEverPromote(o.self.tags)).toBe(true);
  });

  test.prop([observationArb], { numRuns: 3000 })('a paused cluster never promotes, demotes, fences, restarts or races', (o) => {
    fc.pre(cfgOf(o).pause);
    const { actions } = decide(o);
    for (const k of ['promote', 'fence', 'rewind', 'reclone', 'acquire', 'release', 'step_down'] as const) expect(has(actions, k)).toBe(false);
    // The only start: an empty member's first, right after its clone (the clone started it before the steps were explicit).
    actions.forEach((a, i) => { if (a.kind === 'start') expect(actions[i - 1]?.kind).toBe('clone'); });
    for (const a of actions) if (a.kind === 'renew') expect(a.fenceOnFailure).toBe(false);
  });

  test.prop([observationArb], { numRuns: 3000 })('during a switchover only the named candidate races, never the old leader', (o) => {
    fc.pre(o.cluster !== null);
    const req = o.cluster === null ? null : activeRequest(o, o.cluster);
    fc.pre(req !== null);
    if (!has(decide(o).actions, 'acquire')) return;
    expect(o.self.name).not.toBe(req?.leader);
    if (req?.candidate != null) expect(o.self.name).toBe(req.candidate);
  });

  test.prop([observationArb], { numRuns: 3000 })('under synchronous mode only a member of a non-empty /sync record promotes without a shutdown position', (o) => {
    const c = o.cluster;
    fc.pre(c !== null && c.config.synchronous_mode !== 'off' && c.sync !== null && c.sync.members.length > 0 && c.sync.acks !== 0);
    const { actions } = decide(o);
    if (!has(actions, 'promote') || holdsKey(o)) return;
    const req = c === null ? null : activeRequest(o, c);
    if (req?.shutdownLsn != null) return;
    expect(c?.sync?.members).toContain(o.self.name);
  });

  // A running standby of the cluster, a free key, quorum mode: the race is decided by the record.
  const quorumRace = observationArb.map((o): Observation => ({
    ...o,
    local: { ...o.local, dataDir: 'initialized', systemId: SYSID, running: true, role: 'standby', lsn: o.local.lsn ?? 0, timeline: o.local.timeline ?? 1 },
    cluster: o.cluster === null ? null : { ...o.cluster, initialize: SYSID, leader: null, config: { ...o.cluster.config, synchronous_mode: 'quorum', pause: false } },
  }));

  test.prop([quorumRace], { numRuns: 3000 })('under quorum mode a promoting member sees |S| - k + 1 members of S at or behind it (itself included)', (o) => {
    const c = o.cluster;
    fc.pre(c !== null && c.config.synchronous_mode === 'quorum' && guaranteeOf(c.sync).acks > 0);
    const { actions } = decide(o);
    if (!has(actions, 'promote') || holdsKey(o) || c === null) return;
    if (activeRequest(o, c)?.shutdownLsn != null) return;
    const g = guaranteeOf(c.sync);
    const behind = c.members.filter((m) => m.name !== o.self.name && g.members.includes(m.name) && m.role === 'standby' && m.state === 'running'
      && m.lsn !== null && o.local.lsn !== null && m.lsn <= o.local.lsn && m.timeline === o.local.timeline);
    expect(g.members).toContain(o.self.name);
    expect(1 + behind.length).toBeGreaterThanOrEqual(g.members.length - g.acks + 1);
  });

  // A member whose agent started less than a ttl ago, with failsafe_mode on: half of them running
  // standbys of the cluster with the key free or held by themselves, where a race is likely.
  const fresh = fc.tuple(fc.oneof(observationArb, observationArb.map((o): Observation => ({
    ...o,
    local: { ...o.local, dataDir: 'initialized', systemId: SYSID, running: true, role: 'standby', lsn: o.local.lsn ?? 0, timeline: o.local.timeline ?? 1 },
    cluster: o.cluster === null ? null : { ...o.cluster, initialize: SYSID, leader: o.cluster.leader?.name === o.self.name ? o.cluster.leader : null, config: { ...o.cluster.config, pause: false } },
  }))), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })).map(([o, f]): Observation => {
    const on = (c: Observation['fallbackConfig']) => ({ ...c, failsafe_mode: true });
    const cluster = o.cluster === null ? null : { ...o.cluster, config: on(o.cluster.config) };
    return { ...o, cluster, fallbackConfig: on(o.fallbackConfig), self: { ...o.self, startedAt: o.now - Math.floor(f * cfgOf(o).ttl * 1000) } };
  });

  test.prop([fresh], { numRuns: 4000 })('failsafe_mode: a member started less than a ttl ago neither takes the key nor promotes', (o) => {
    const req = o.cluster === null ? null : activeRequest(o, o.cluster);
    // The named candidate of a handover its leader performed through etcd (src/ha/failsafe.ts startBlocksRace).
    if (req !== null && req.candidate === o.self.name && req.leader !== null && (req.shutdownLsn !== null || patroniReleasedLsn(req, o.cluster) !== null)) return;
    const { actions } = decide(o);
    expect(has(actions, 'promote')).toBe(false);
    // A primary that already runs may take back a key deleted under its live lease.
    if (!(o.local.running && o.local.role === 'primary')) expect(has(actions, 'acquire')).toBe(false);
  });

  // Observations of an initialised member running as primary, not paused, past its lease deadline.
  const latePrimary = observationArb.map((o): Observation => {
    const config = { ...cfgOf(o), pause: false };
    return {
      ...o,
      self: { ...o.self, leaseDeadline: o.self.leaseDeadline === null ? null : Math.min(o.self.leaseDeadline, o.now) },
      local: { ...o.local, dataDir: 'initialized', running: true, role: 'primary', systemId: 'S' },
      cluster: o.cluster === null ? null : { ...o.cluster, initialize: 'S', config },
      fallbackConfig: { ...o.fallbackConfig, pause: false },
    };
  });

  test.prop([latePrimary], { numRuns: 2000 })('a primary past its lease deadline fences or renews with fencing', (o) => {
    const first = decide(o).actions[0];
    const ok = first?.kind === 'fence' || (first?.kind === 'renew' && first.fenceOnFailure);
    expect(ok, JSON.stringify(decide(o))).toBe(true);
  });

  test.prop([latePrimary.map((o) => ({ o, other: o.self.name === 'n1' ? 'n2' : 'n1' }))], { numRuns: 2000 })(
    'a running primary for which another member holds the key is stopped',
    ({ o, other }) => {
      fc.pre(o.cluster !== null);
      const cluster = o.cluster === null ? null : { ...o.cluster, leader: { name: other, revision: '1', lease: '1' } };
      const withLive = { ...o, cluster, self: { ...o.self, leaseDeadline: o.now + 1000 } };
      expect(decide({ ...o, cluster }).actions.map((a) => a.kind)).toEqual(['fence']);
      expect(decide(withLive).actions.map((a) => a.kind)).toEqual(['fence']);
    },
  );
});
