// The pure parts of logical replication management: slot plans for leader and standby,
// publication plans, name clashes, the refusals of a configuration edit, and the decision's
// sync_logical action.
import { describe, expect, it } from 'vitest';
import { parseDynamicConfig } from '../../src/config/load.ts';
import { decide } from '../../src/ha/decide.ts';
import { checkSlotNames, logicalChanged, logicalProblems } from '../../src/slots/check.ts';
import { leaderPositions, memberSlotClashes, planLeaderSlots, planPublications, planStandbySlots, publicationSpecs, tableSql, type SlotRow } from '../../src/slots/plan.ts';
import { renderSlots, slotLines } from '../../src/cli/slots.ts';
import { clusterView, dyn, member, obs, request } from '../support/observations.ts';
import { renderMetrics } from '../../src/api/metrics.ts';
import { statusBody } from '../../src/api/health.ts';
import type { AgentSnapshot } from '../../src/api/types.ts';
import { AgentStats } from '../../src/agent/stats.ts';
import { buildApi } from '../../src/api/server.ts';
import { createLogger } from '../../src/log/logger.ts';
import { parseSlotState } from '../../src/postgres/slot-copy.ts';

const PARAMS = { wal_level: 'logical', hot_standby_feedback: 'on' };
const cfg = (extra: Record<string, unknown> = {}) => parseDynamicConfig({
  permanent_slots: { cdc: { type: 'logical', plugin: 'pgoutput', database: 'app' }, archiver: { type: 'physical' } },
  postgresql: { parameters: PARAMS }, ...extra,
}, 'test');
const want = [{ name: 'cdc', plugin: 'pgoutput', database: 'app' }];
const row = (name: string, o: Partial<SlotRow> = {}): SlotRow => ({
  name, type: 'logical', plugin: 'pgoutput', database: 'app', active: false, activePid: null, confirmedFlush: 1000, restartLsn: 900, ...o,
});

describe('leader slot plan', () => {
  it('creates a missing slot, keeps a matching one, re-creates one built otherwise', () => {
    expect(planLeaderSlots([], want, [])).toEqual({ create: want, drop: [] });
    expect(planLeaderSlots([row('cdc')], want, [])).toEqual({ create: [], drop: [] });
    const other = row('cdc', { plugin: 'test_decoding' });
    expect(planLeaderSlots([other], want, [])).toEqual({ create: [], drop: [other] });
  });

  it('drops retired slots only, never an operator\'s own logical slot', () => {
    const gone = row('old');
    const own = row('mine');
    expect(planLeaderSlots([row('cdc'), gone, own], want, ['old'])).toEqual({ create: [], drop: [gone] });
  });

  it('leaves a physical slot of that name to the physical slot code', () => {
    expect(planLeaderSlots([row('cdc', { type: 'physical', plugin: null, database: null })], want, [])).toEqual({ create: [], drop: [] });
  });

  it('publishes configured and still existing retired slots', () => {
    expect(leaderPositions([row('cdc', { confirmedFlush: 5 }), row('old', { confirmedFlush: 7 }), row('mine')], want, ['old'])).toEqual({ cdc: 5, old: 7 });
  });
});

describe('standby slot plan', () => {
  it('copies a slot the leader published and we lack; waits when the leader has not published it', () => {
    expect(planStandbySlots([], want, { cdc: 1000 })).toEqual({ drop: [], copy: ['cdc'], advance: [] });
    expect(planStandbySlots([], want, {})).toEqual({ drop: [], copy: [], advance: [] });
    expect(planStandbySlots([], want, null)).toEqual({ drop: [], copy: [], advance: [] });
  });

  it('advances a copy behind the leader, leaves one at its position', () => {
    expect(planStandbySlots([row('cdc', { confirmedFlush: 900 })], want, { cdc: 1000 })).toEqual({ drop: [], copy: [], advance: [{ name: 'cdc', database: 'app', to: 1000 }] });
    expect(planStandbySlots([row('cdc', { confirmedFlush: 1000 })], want, { cdc: 1000 })).toEqual({ drop: [], copy: [], advance: [] });
  });

  it('drops and copies again a copy ahead of the leader (it would skip what the consumer has not confirmed)', () => {
    expect(planStandbySlots([row('cdc', { confirmedFlush: 1200 })], want, { cdc: 1000 })).toEqual({ drop: ['cdc'], copy: ['cdc'], advance: [] });
  });

  it('drops copies no longer configured or built otherwise', () => {
    expect(planStandbySlots([row('old'), row('cdc', { database: 'other' })], want, { cdc: 1000 })).toEqual({ drop: ['old', 'cdc'], copy: ['cdc'], advance: [] });
    expect(planStandbySlots([row('old')], [], {})).toEqual({ drop: ['old'], copy: [], advance: [] });
  });
});

describe('publication plan', () => {
  const specs = publicationSpecs(parseDynamicConfig({
    logical: { publications: { p1: { database: 'app', tables: ['orders', 'sales.items', 'orders'] }, p2: { database: 'app', all_tables: true } } },
    postgresql: { parameters: PARAMS },
  }, 't'));

  it('qualifies and sorts tables once', () => {
    expect(specs[0]).toEqual({ name: 'p1', database: 'app', allTables: false, tables: ['public.orders', 'sales.items'] });
    expect(tableSql('sales.items')).toBe('"sales"."items"');
  });

  it('creates, re-points, re-creates, takes over and drops', () => {
    const have = [
      { name: 'p1', database: 'app', allTables: false, tables: ['public.orders'], managed: true },
      { name: 'p2', database: 'app', allTables: false, tables: ['public.x'], managed: false },
      { name: 'gone', database: 'app', allTables: true, tables: [], managed: true },
      { name: 'theirs', database: 'app', allTables: true, tables: [], managed: false },
    ];
    const p = planPublications(have, specs);
    expect(p.create).toEqual([]);
    expect(p.setTables.map((x) => x.name)).toEqual(['p1']);
    expect(p.recreate.map((x) => x.name)).toEqual(['p2']);
    expect(p.mark.map((x) => x.name)).toEqual(['p2']);
    expect(p.drop.map((x) => x.name)).toEqual(['gone']);
    expect(planPublications([], specs).create.map((x) => x.name)).toEqual(['p1', 'p2']);
  });
});

describe('refusals before a configuration edit is stored', () => {
  it('refuses a permanent slot named like a member\'s slot', () => {
    const c = cfg({ permanent_slots: { node_2: { type: 'physical' } } });
    expect(memberSlotClashes(c, ['node-1', 'Node-2'])).toEqual([{ slot: 'node_2', member: 'Node-2' }]);
    expect(() => checkSlotNames(c, ['node-1', 'Node-2'])).toThrow(expect.objectContaining({ code: 'PGHA_SLOT_NAME_CLASH' }));
    expect(() => checkSlotNames(c, ['node-1'])).not.toThrow();
  });

  it('refuses an unknown database, an unknown plugin, and wal_level not yet logical', () => {
    const c = cfg();
    const ok = { walLevel: 'logical', databases: ['postgres', 'app'], plugins: { pgoutput: true } };
    expect(logicalProblems(c, ok)).toBeNull();
    expect(logicalProblems(c, { ...ok, databases: ['postgres'] })?.code).toBe('PGHA_LOGICAL_DATABASE_UNKNOWN');
    expect(logicalProblems(c, { ...ok, plugins: { pgoutput: false } })?.code).toBe('PGHA_LOGICAL_PLUGIN_UNKNOWN');
    expect(logicalProblems(c, { ...ok, walLevel: 'replica' })?.code).toBe('PGHA_LOGICAL_UNCHECKED');
  });

  it('asks the leader only when slots or publications changed', () => {
    expect(logicalChanged(cfg(), cfg({ pause: true }))).toBe(false);
    expect(logicalChanged(cfg(), cfg({ permanent_slots: {} }))).toBe(true);
  });
});

describe('the decision plans sync_logical', () => {
  const logical = dyn({ permanent_slots: { cdc: { type: 'logical', plugin: 'pgoutput', database: 'app' } }, postgresql: { use_slots: true, use_pg_rewind: true, parameters: PARAMS } });

  it('on a running leader, last, and only physical permanent slots go to ensure_slots', () => {
    const p = decide(obs({ self: { name: 'n1' }, local: { role: 'primary' }, cluster: clusterView({ config: { ...logical, permanent_slots: { ...logical.permanent_slots, archiver: { type: 'physical' } } } }) }));
    expect(p.actions.at(-1)).toEqual({ kind: 'sync_logical', as: 'leader' });
    expect(p.actions.find((a) => a.kind === 'ensure_slots')).toMatchObject({ permanent: ['archiver'] });
  });

  it('on a streaming standby of the leader, without restarts while paused', () => {
    const o = obs({ cluster: clusterView({ config: logical }) });
    expect(decide(o).actions).toEqual([{ kind: 'sync_logical', as: 'standby', leader: 'n1', mayRestart: true }]);
    const paused = obs({ cluster: clusterView({ config: { ...logical, pause: true } }) });
    expect(decide(paused).actions).toEqual([{ kind: 'sync_logical', as: 'standby', leader: 'n1', mayRestart: false }]);
  });

  it('a switchover candidate advances its copies to the old leader\'s final positions before it takes the key', () => {
    const o = obs({ local: { lsn: 5001 }, cluster: clusterView({ leader: null, config: logical, logicalSlots: { cdc: 4000 }, failover: request({ candidate: 'n2', shutdownLsn: 5000 }) }) });
    expect(decide(o).actions.map((a) => a.kind)).toEqual(['advance_logical', 'acquire', 'promote', 'clear_failover']);
  });

  it('a failover winner advances its copies before it takes the key', () => {
    const o = obs({ cluster: clusterView({ leader: null, config: logical, logicalSlots: { cdc: 900 } }) });
    expect(decide(o).actions.map((a) => a.kind)).toEqual(['advance_logical', 'acquire', 'promote']);
  });

  it('keeps running after the last slot is removed while the leader still publishes positions', () => {
    expect(decide(obs({ cluster: clusterView({ logicalSlots: {} }) })).actions).toEqual([{ kind: 'sync_logical', as: 'standby', leader: 'n1', mayRestart: true }]);
    expect(decide(obs({})).actions).toEqual([]);
  });
});

describe('pghactl slots', () => {
  it('one row per slot per member', () => {
    const rows = slotLines([
      { member: 'n1', leader: true, slots: [{ name: 'cdc', plugin: 'pgoutput', database: 'app', active: true, confirmed_flush_lsn: '0/100', restart_lsn: '0/90', lag_bytes: 12 }] },
      { member: 'n2', leader: false, slots: [] },
    ]);
    expect(rows).toEqual([{ member: 'n1', role: 'leader', slot: 'cdc', plugin: 'pgoutput', database: 'app', active: true, confirmed_flush_lsn: '0/100', lag_bytes: 12 }]);
    expect(renderSlots(rows, 'tsv')).toBe('member\trole\tslot\tplugin\tdatabase\tactive\tconfirmed_flush_lsn\tlag_bytes\nn1\tleader\tcdc\tpgoutput\tapp\ttrue\t0/100\t12\n');
  });
});

describe('slot state files', () => {
  it('reads name, database and confirmed_flush from a PostgreSQL 15 state file', () => {
    // od of pg_replslot/xs/state after CHECKPOINT: confirmed_flush 0/1500800, restart_lsn 0/15007C8, database 5.
    const b = Buffer.alloc(200);
    b.writeUInt32LE(0x1051ca1, 0); b.writeUInt32LE(2, 8); b.writeUInt32LE(0xb8, 12);
    b.write('xs', 16); b.writeUInt32LE(5, 80); b.writeUInt32LE(0x15007c8, 96); b.writeUInt32LE(0x1500800, 112); b.write('test_decoding', 129);
    expect(parseSlotState(b)).toEqual({ name: 'xs', database: 5, confirmedFlush: 0x1500800 });
    expect(parseSlotState(Buffer.alloc(200))).toBeNull();
    expect(parseSlotState(Buffer.alloc(10))).toBeNull();
  });
});

describe('logical slots in GET /metrics and GET /status', () => {
  const logical = {
    role: 'leader' as const, checkedAt: 0,
    slots: [{ name: 'cdc', plugin: 'pgoutput', database: 'app', active: true, confirmed_flush_lsn: '0/100', restart_lsn: '0/90', lag_bytes: 64 }],
  };
  const snapshot: AgentSnapshot = {
    member: member('n1', { role: 'primary', state: 'running' }), isLeader: true, cluster: clusterView(), paused: false, lagBytes: null,
    observedAt: 0, lastPlan: 'leader', systemId: '1', version: '0.1.0', logical,
  };

  it('exports lag, confirmed position and activity per slot', () => {
    const text = renderMetrics({ scope: 'demo', name: 'n1', version: '0.1.0', snapshot, now: 10, staleAfterMs: 3000, leaseDeadline: null, stats: new AgentStats() });
    const labels = 'scope="demo",name="n1",slot="cdc",plugin="pgoutput",database="app",role="leader"';
    expect(text).toContain(`pgha_logical_slot_lag_bytes{${labels}} 64`);
    expect(text).toContain(`pgha_logical_slot_confirmed_flush_lsn{${labels}} 256`);
    expect(text).toContain(`pgha_logical_slot_active{${labels}} 1`);
    expect(renderMetrics({ scope: 'demo', name: 'n1', version: '0.1.0', snapshot: { ...snapshot, logical: null }, now: 10, staleAfterMs: 3000, leaseDeadline: null, stats: new AgentStats() })).not.toContain('pgha_logical_slot');
  });

  it('lists the slots in /status only once logical replication is managed', () => {
    expect(statusBody(snapshot, 10, 3000, 'demo').logical_slots).toEqual(logical.slots);
    expect('logical_slots' in statusBody({ ...snapshot, logical: null }, 10, 3000, 'demo')).toBe(false);
  });

  it('GET /status serializes them (the response schema lists the field)', async () => {
    const app = buildApi({ logger: createLogger({ level: 'error' }), scope: 'demo', snapshot: () => snapshot, now: () => 10, staleAfterMs: () => 3000 });
    try {
      const r = await app.inject({ method: 'GET', url: '/status' });
      expect((r.json() as { logical_slots: unknown }).logical_slots).toEqual(logical.slots);
    } finally {
      await app.close();
    }
  });
});
