// The conditional writes from the caller's side (pure, the etcd side is in
// test/integration/dcs.test.ts): the actor passes the revisions of the view its plan came from and
// moves them on after its own writes; a lost compare ends the plan; pghactl's and the REST API's
// requests lose a race with PGHA_DCS_CONFLICT.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import { PgHaError, isPgHaError } from '../../src/errors.ts';
import type { Action, ClusterView, SyncRecord } from '../../src/ha/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { cancelHandover, requestHandover } from '../../src/ops/store.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import { clusterView, dyn, localPg, member, request } from '../support/observations.ts';

const silent = createLogger({ destination: new Writable({ write(_c, _e, cb) { cb(); } }) });
const conflict = () => new PgHaError('PGHA_DCS_CONFLICT', 'changed since it was read');

/** An actor over a fake etcd whose every conditional write is recorded with the revision it expected. */
function actor(opts: { loseAt?: string } = {}) {
  const writes: string[] = [];
  let rev = 100;
  const cas = (what: string, expected: string): string => {
    writes.push(`${what}@${expected}`);
    if (opts.loseAt === `${what}@${expected}`) throw conflict();
    return String(++rev);
  };
  const dcs = {
    writeSync: async (r: SyncRecord, expected: string) => cas(`sync ${r.members.join(',')}`, expected),
    writeFailsafe: async (_r: unknown, expected: string) => cas('failsafe', expected),
    clearFailover: async (expected: string) => { cas('clear failover', expected); },
    writeLeaderLsn: async (lsn: number, _s: unknown, expected: string) => cas(`status ${lsn}`, expected),
  };
  const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
  const a = new Actor({
    fence, logger: silent, now: () => 0, config: { name: 'n1' }, dcs,
    dynamic: () => ({ ttl: 2, fence_margin: 0.5, loop_wait: 60, synchronous_mode: 'on' }),
    pg: { setSyncNames: async (names: string[] | null) => { writes.push(`names ${String(names)}`); return true; }, flushLsn: async () => 0 } as unknown as PostgresControl,
  } as unknown as ActorDeps);
  return { a, writes };
}

const view = (over: Partial<ClusterView> = {}) => clusterView({ revisions: { sync: '7', failsafe: '0', failover: '9', status: '5' }, ...over });
const narrowThenWiden: Action[] = [
  { kind: 'write_sync', members: ['n2'] },
  { kind: 'set_sync_names', names: ['n2', 'n3'], count: 1, method: 'first' },
  { kind: 'write_sync', members: ['n2', 'n3'] },
];

describe('the actor writes at the revision of its view', () => {
  it('passes the revision read, and its own write\'s revision to a second write of the same key', async () => {
    const { a, writes } = actor();
    const v = view();
    await a.run(narrowThenWiden, { cluster: v, local: localPg() });
    expect(writes).toEqual(['sync n2@7', 'names n2,n3', 'sync n2,n3@101']);
    expect(v.revisions.sync).toBe('102');
  });

  it('a lost compare ends the plan: nothing after it runs this loop', async () => {
    const { a, writes } = actor({ loseAt: 'sync n2@7' });
    await a.run(narrowThenWiden, { cluster: view(), local: localPg() });
    expect(writes).toEqual(['sync n2@7']);
  });

  it('writes nothing without a view of etcd', async () => {
    const { a, writes } = actor();
    await a.run([{ kind: 'write_failsafe', record: null, expected: '0' }], { cluster: null, local: localPg() });
    await a.run([{ kind: 'publish_leader_lsn', last: null }], { cluster: null, local: localPg({ role: 'primary', lsn: 500 }) });
    expect(writes).toEqual([]);
  });

  it('clears the request and publishes /status at the revisions read', async () => {
    const { a, writes } = actor();
    const v = view();
    await a.run([{ kind: 'publish_leader_lsn', last: null }, { kind: 'write_failsafe', record: null, expected: '0' }, { kind: 'clear_failover' }], { cluster: v, local: localPg({ role: 'primary', lsn: 500 }) });
    expect(writes).toEqual(['status 500@5', 'failsafe@0', 'clear failover@9']);
    expect(v.revisions).toEqual({ sync: '7', failsafe: '102', failover: '0', status: '101' });
  });
});

describe('operator requests by compare-and-set', () => {
  const healthy = () => clusterView({
    members: [member('n1', { role: 'primary', state: 'running', upstream: null, lsn: 1000 }), member('n2', { lsn: 1000 }), member('n3', { lsn: 1000 })],
    revisions: { sync: '0', failsafe: '0', failover: '0', status: '3' },
  });
  const fake = (v: ClusterView, write: (expected: string) => Promise<string>) => {
    const seen: string[] = [];
    const dcs = {
      readCluster: async () => v,
      writeFailover: async (_r: unknown, expected: string) => { seen.push(`write@${expected}`); return write(expected); },
      clearFailover: async (expected: string) => { seen.push(`clear@${expected}`); await write(expected); },
    } as unknown as Dcs;
    return { dcs, seen };
  };

  it('a switchover is written at the /failover revision of the view it was checked against', async () => {
    const { dcs, seen } = fake(healthy(), async () => '4');
    await requestHandover(dcs, { kind: 'switchover', candidate: 'n2' }, dyn());
    expect(seen).toEqual(['write@0']);
  });

  it('the request that loses the race says so with PGHA_DCS_CONFLICT', async () => {
    const { dcs } = fake(healthy(), async () => { throw conflict(); });
    const err = await requestHandover(dcs, { kind: 'switchover', candidate: 'n2' }, dyn()).catch((e: unknown) => e);
    expect(isPgHaError(err, 'PGHA_DCS_CONFLICT')).toBe(true);
    expect((err as Error).message).toMatch(/another switchover or failover was requested at the same moment/);
  });

  it('an unreadable /failover is not replaced', async () => {
    const { dcs, seen } = fake({ ...healthy(), failoverUnreadable: true, revisions: { sync: '0', failsafe: '0', failover: '8', status: '3' } }, async () => '9');
    await expect(requestHandover(dcs, { kind: 'switchover', candidate: 'n2' }, dyn())).rejects.toSatisfy((e: unknown) => isPgHaError(e, 'PGHA_CLI_REFUSED'));
    expect(seen).toEqual([]);
  });

  it('a cancel removes only the request it read', async () => {
    const none = fake(healthy(), async () => '0');
    expect(await cancelHandover(none.dcs, dyn())).toBe(false);
    expect(none.seen).toEqual([]);
    const pending = { ...healthy(), failover: request(), revisions: { sync: '0', failsafe: '0', failover: '8', status: '3' } };
    const one = fake(pending, async () => '0');
    expect(await cancelHandover(one.dcs, dyn())).toBe(true);
    expect(one.seen).toEqual(['clear@8']);
    const empty = fake({ ...pending, failover: null }, async () => '0'); // Patroni's {} after a switchover
    expect(await cancelHandover(empty.dcs, dyn())).toBe(false);
    const raced = fake(pending, async () => { throw conflict(); });
    await expect(cancelHandover(raced.dcs, dyn())).rejects.toThrow(/changed while cancelling/);
  });
});
