// The executor (src/agent/act.ts): one Outcome per step it ran, the first failure ends the plan,
// and the facts remember() needs come back in the outcomes rather than staying in the Actor.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import { PgHaError } from '../../src/errors.ts';
import { initialMemory, remember } from '../../src/ha/memory.ts';
import type { Action, Outcome } from '../../src/ha/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import { clusterView, localPg, obs } from '../support/observations.ts';

const silent = createLogger({ destination: new Writable({ write(_c, _e, cb) { cb(); } }) });

function actor(events: string[], pg: Partial<PostgresControl>, dcs: Record<string, unknown> = {}, config: Record<string, unknown> = { name: 'n2' }): { actor: Actor; fence: FenceTimer } {
  const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
  const a = new Actor({
    fence, logger: silent, now: () => 0, config,
    dynamic: () => ({ ttl: 2, fence_margin: 0.5, loop_wait: 60, synchronous_mode: 'on' }),
    dcs, pg: pg as PostgresControl, failsafeHold: () => null,
    setActivity: async (x: string | null) => { events.push(`activity ${x ?? '-'}`); },
    setLeadership: () => undefined,
  } as unknown as ActorDeps);
  return { actor: a, fence };
}

const brief = (outs: Outcome[]) => outs.map((o) => `${o.action.kind} ${o.ok ? 'ok' : `failed${o.retryable ? ' (retryable)' : ''}`}`);
const cluster = clusterView();

describe('the executor', () => {
  it('runs a rewind and its start, one outcome each; a failed start ends the plan and counts', async () => {
    const events: string[] = [];
    const { actor: a } = actor(events, {
      stop: async (m) => { events.push(`stop ${m}`); },
      rewind: async () => { events.push('pg_rewind'); },
      start: async () => { events.push('start'); throw new PgHaError('PGHA_PG_COMMAND', 'requested timeline 6 does not contain minimum recovery point'); },
    });
    const plan: Action[] = [{ kind: 'rewind', from: 'n1' }, { kind: 'start', as: 'standby', upstream: 'n1' }, { kind: 'follow', upstream: 'n1' }];
    const local = localPg({ running: true });
    const outs = await a.run(plan, { cluster, local });
    // The activity lasts through the start: the loop clears it once it has observed again.
    expect(events).toEqual(['stop fast', 'activity rewinding', 'pg_rewind', 'start']);
    expect(brief(outs)).toEqual(['rewind ok', 'start failed']);
    // The next loop clones afresh: decided from the memory, not by the executor.
    const o = obs({ local: { running: false, role: null, streaming: false } });
    const m = remember(initialMemory, o, outs);
    expect(m).toMatchObject({ rewindUnusable: true, startFailures: 1, rewindsWithoutStreaming: 1 });
  });

  it('a pg_rewind that could not reach the leader is transient: the data is kept', async () => {
    const events: string[] = [];
    const { actor: a } = actor(events, { rewind: async () => { throw new PgHaError('PGHA_PG_COMMAND', 'rewind source n1 unreachable', { retryable: true }); } });
    const outs = await a.run([{ kind: 'rewind', from: 'n1' }, { kind: 'start', as: 'standby', upstream: 'n1' }], { cluster, local: localPg({ running: false }) });
    expect(brief(outs)).toEqual(['rewind failed (retryable)']);
    // A failed step ends its activity at once: the member does not read "rewinding" meanwhile.
    expect(events).toEqual(['activity rewinding', 'activity -']);
    expect(remember(initialMemory, obs(), outs).rewindUnusable).toBe(false);
  });

  it('a re-clone stops, wipes and clones; the start is its own step', async () => {
    const events: string[] = [];
    const { actor: a } = actor(events, {
      stop: async (m) => { events.push(`stop ${m}`); },
      wipe: async () => { events.push('wipe'); },
      clone: async () => { events.push('pg_basebackup'); },
      start: async (as) => { events.push(`start ${as}`); },
    });
    const outs = await a.run([{ kind: 'reclone', from: 'n1' }, { kind: 'start', as: 'standby', upstream: 'n1' }], { cluster, local: localPg({ running: false }) });
    expect(brief(outs)).toEqual(['reclone ok', 'start ok']);
    expect(events).toEqual(['activity cloning', 'stop immediate', 'wipe', 'pg_basebackup', 'start standby']);
  });

  it('an unfinished data directory (rule U): stop a server running on it at once, then wipe; settle_data only drops the marker', async () => {
    const events: string[] = [];
    const { actor: a } = actor(events, {
      stop: async (m) => { events.push(`stop ${m}`); },
      wipe: async () => { events.push('wipe'); },
      settle: async () => { events.push('settle'); },
    });
    const outs = await a.run([{ kind: 'wipe_unfinished', step: 'bootstrap' }], { cluster, local: localPg({ running: true, role: 'primary', unfinished: 'bootstrap' }) });
    expect(brief(outs)).toEqual(['wipe_unfinished ok']);
    expect(events).toEqual(['stop immediate', 'wipe']);
    events.length = 0;
    expect(brief(await a.run([{ kind: 'settle_data' }], { cluster, local: localPg({ unfinished: 'bootstrap' }) }))).toEqual(['settle_data ok']);
    expect(events).toEqual(['settle']);
  });

  it('a bootstrap drops its unfinished marker only after /initialize holds the system id', async () => {
    const events: string[] = [];
    const { actor: a } = actor(events, {
      initdb: async () => { events.push('initdb'); },
      start: async (as) => { events.push(`start ${as}`); },
      createRoles: async () => { events.push('roles'); },
      observe: async () => localPg({ role: 'primary' }),
      settle: async () => { events.push('settle'); },
      stop: async (m) => { events.push(`stop ${m}`); },
      wipe: async () => { events.push('wipe'); },
    }, {
      releaseLeader: async () => undefined,
      abandonInitialize: async () => undefined,
      claimInitialize: async () => { events.push('claim'); return true; },
      acquireLeader: async () => { events.push('acquire'); return true; },
      renewLeader: async () => ({ sentAt: 0, ttl: 2 }),
      writeConfigIfAbsent: async () => { events.push('config'); },
      setInitialize: async () => { events.push('initialize'); },
    }, { name: 'n2', bootstrap: { dcs: {} } });
    const outs = await a.run([{ kind: 'bootstrap' }], { cluster: clusterView({ initialize: null, leader: null }), local: localPg({ dataDir: 'empty', running: false }) });
    expect(brief(outs)).toEqual(['bootstrap ok']);
    expect(events.filter((e) => !e.startsWith('activity'))).toEqual(['claim', 'initdb', 'start primary', 'roles', 'acquire', 'config', 'initialize', 'settle']);
    // A marker that cannot be removed never undoes a registered bootstrap (no stop, no wipe): decide() drops it later.
    events.length = 0;
    const { actor: b } = actor(events, {
      initdb: async () => undefined, start: async () => undefined, createRoles: async () => undefined, observe: async () => localPg({ role: 'primary' }),
      settle: async () => { throw new Error('EACCES'); },
      stop: async (m) => { events.push(`stop ${m}`); }, wipe: async () => { events.push('wipe'); },
    }, {
      claimInitialize: async () => true, acquireLeader: async () => true, renewLeader: async () => ({ sentAt: 0, ttl: 2 }),
      writeConfigIfAbsent: async () => undefined, setInitialize: async () => undefined, releaseLeader: async () => undefined, abandonInitialize: async () => undefined,
    }, { name: 'n2', bootstrap: { dcs: {} } });
    expect(brief(await b.run([{ kind: 'bootstrap' }], { cluster: clusterView({ initialize: null, leader: null }), local: localPg({ dataDir: 'empty', running: false }) }))).toEqual(['bootstrap ok']);
    expect(events.filter((e) => !e.startsWith('activity'))).toEqual([]);
  });

  it('set_sync_names reports the flushed position when the setting changed, or none was read yet', async () => {
    let changed = true;
    const { actor: a } = actor([], { setSyncNames: async () => changed, flushLsn: async () => 4096 });
    const step: Action = { kind: 'set_sync_names', names: ['n3'], count: 1 };
    expect((await a.run([step], { cluster, local: localPg({ role: 'primary', syncChangedAt: 100 }) }))[0]).toMatchObject({ ok: true, syncChangedAt: 4096 });
    changed = false;
    expect((await a.run([step], { cluster, local: localPg({ role: 'primary', syncChangedAt: 100 }) }))[0]).not.toHaveProperty('syncChangedAt');
    expect((await a.run([step], { cluster, local: localPg({ role: 'primary', syncChangedAt: null }) }))[0]).toMatchObject({ syncChangedAt: 4096 });
  });

  it('publish_leader_lsn writes /status only when it differs from what was published last', async () => {
    const writes: number[] = [];
    const { actor: a } = actor([], {}, { writeLeaderLsn: async (lsn: number) => { writes.push(lsn); } });
    const local = localPg({ role: 'primary', lsn: 5000 });
    const [first] = await a.run([{ kind: 'publish_leader_lsn', last: null }], { cluster, local });
    expect(first).toMatchObject({ ok: true, published: { lsn: 5000, slots: 'null' } });
    const [again] = await a.run([{ kind: 'publish_leader_lsn', last: { lsn: 5000, slots: 'null' } }], { cluster, local });
    expect(again).not.toHaveProperty('published');
    expect(writes).toEqual([5000]);
  });

  it('acquire arms the fence from the keepalive of this loop, and says so', async () => {
    const { actor: a, fence } = actor([], {}, { acquireLeader: async () => true });
    const [out] = await a.run([{ kind: 'acquire' }], { cluster: null, local: localPg(), keepalive: { sentAt: 1000, ttl: 2 } });
    expect(out).toMatchObject({ ok: true, lease: { sentAt: 1000, ttl: 2 } });
    expect(fence.deadline).toBe(2500);
    fence.disarm();
  });
});
