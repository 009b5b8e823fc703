// The etcd layer against a real etcd: races for the leader key and /initialize, lease expiry,
// compare-and-set history, conditional writes of /sync, /failsafe, /failover and /status (and
// two operators racing for a switchover), the watch, and call deadlines while etcd is frozen.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamicConfigSchema } from '../../src/config/schema.ts';
import { createEtcdDcs, type EtcdDcs } from '../../src/dcs/etcd.ts';
import { isPgHaError } from '../../src/errors.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import type { FailoverRequest, MemberInfo } from '../../src/ha/types.ts';
import { requestHandover } from '../../src/ops/store.ts';
import { startEtcd, type EtcdHandle } from '../../lab/etcd.ts';
import { allocatePorts } from '../../lab/ports.ts';

const TTL = 2;
let etcd: EtcdHandle;
const clients: EtcdDcs[] = [];
let scopeN = 0;
const fallback = dynamicConfigSchema.parse({});

async function dcs(member: string | undefined, scope: string): Promise<EtcdDcs> {
  const d = await createEtcdDcs({ hosts: [etcd.endpoint], namespace: '/t', scope, ttl: TTL, callTimeoutMs: 1000, ...(member ? { member } : {}) });
  clients.push(d);
  return d;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const info = (name: string): MemberInfo => ({
  name, role: 'standby', state: 'streaming', timeline: 1, lsn: 5, apiUrl: 'http://x:8008', conn: 'x:1',
  tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, nostream: false, failover_priority: 1 }, upstream: null, pendingRestart: false,
});

const ETCD_PORT = allocatePorts(2); // etcd's client and peer port
beforeAll(async () => { etcd = await startEtcd({ clientPort: ETCD_PORT, peerPort: ETCD_PORT + 1 }); });
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await etcd.stop();
});

describe('etcd DCS', () => {
  it('gives the leader key to exactly one of two racing members, every time', async () => {
    for (let round = 0; round < 10; round++) {
      const scope = `race${scopeN++}`;
      const [a, b] = await Promise.all([dcs('a', scope), dcs('b', scope)]);
      await Promise.all([a.keepalive(), b.keepalive()]);
      const won = await Promise.all([a.acquireLeader(), b.acquireLeader()]);
      expect(won.filter(Boolean)).toHaveLength(1);
      const view = await a.readCluster(fallback);
      expect(view.leader?.name).toBe(won[0] ? 'a' : 'b');
    }
  });

  it('keeps the key while renewing, loses it one TTL after renewals stop, and then the other member can take it', async () => {
    const scope = `ttl${scopeN++}`;
    const [a, b] = await Promise.all([dcs('a', scope), dcs('b', scope)]);
    await a.keepalive(); await b.keepalive();
    expect(await a.acquireLeader()).toBe(true);
    let last = 0;
    for (let i = 0; i < 8; i++) { last = (await a.renewLeader()).sentAt; await sleep(500); } // 4 s = two TTLs
    expect((await b.readCluster(fallback)).leader?.name).toBe('a');
    // stop renewing: the key must survive until at least sentAt + TTL (our fence rule's premise)
    let goneAt = 0;
    for (;;) {
      const v = await b.readCluster(fallback);
      if (v.leader === null) { goneAt = performance.now(); break; }
      await b.keepalive();
      await sleep(50);
    }
    expect(goneAt).toBeGreaterThanOrEqual(last + TTL * 1000 - 50);
    expect(await b.acquireLeader()).toBe(true);
    await expect(a.renewLeader()).rejects.toSatisfy((e: unknown) => isPgHaError(e, 'PGHA_LEASE_LOST'));
  });

  it('releases only its own key', async () => {
    const scope = `rel${scopeN++}`;
    const [a, b] = await Promise.all([dcs('a', scope), dcs('b', scope)]);
    await a.keepalive(); await b.keepalive();
    expect(await a.acquireLeader()).toBe(true);
    await b.releaseLeader();
    expect((await a.readCluster(fallback)).leader?.name).toBe('a');
    await a.releaseLeader();
    expect((await a.readCluster(fallback)).leader).toBeNull();
  });

  it('lets exactly one of three racing members claim /initialize; an abandoned claim expires, a system id stays', async () => {
    const scope = `init${scopeN++}`;
    const ms = await Promise.all(['a', 'b', 'c'].map((n) => dcs(n, scope)));
    await Promise.all(ms.map((m) => m.keepalive()));
    const won = await Promise.all(ms.map((m) => m.claimInitialize()));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = ms[won.indexOf(true)];
    if (winner === undefined) throw new Error('no winner');
    await winner.close(); // dies without setInitialize: its claim must expire with its lease
    await sleep(TTL * 1000 + 700);
    const ro = await dcs(undefined, scope);
    expect((await ro.readCluster(fallback)).initialize).toBeNull();
    const next = ms.find((m) => m !== winner);
    if (next === undefined) throw new Error('no member');
    await next.keepalive();
    expect(await next.claimInitialize()).toBe(true);
    await next.setInitialize('7001');
    await next.close();
    await sleep(TTL * 1000 + 700);
    expect((await ro.readCluster(fallback)).initialize).toBe('7001');
  });

  it('reads members and config, skipping a malformed member key', async () => {
    const scope = `read${scopeN++}`;
    const warnings: string[] = [];
    const a = await createEtcdDcs({ hosts: [etcd.endpoint], namespace: '/t', scope, member: 'a', ttl: TTL, callTimeoutMs: 1000, onWarning: (m) => warnings.push(m) });
    clients.push(a);
    await a.keepalive();
    await a.publishMember(info('a'));
    await a.client.put(`/t/${scope}/members/bad`).value('{"name":1}').exec();
    let view = await a.readCluster(fallback);
    expect(view.members.map((m) => m.name)).toEqual(['a']);
    expect(view.config.ttl).toBe(fallback.ttl);
    expect(warnings.join()).toMatch(/invalid member/);
    await a.writeConfigIfAbsent({ ...fallback, ttl: 9, loop_wait: 1 });
    await a.writeConfigIfAbsent({ ...fallback, ttl: 20 }); // second write must not overwrite
    view = await a.readCluster(fallback);
    expect(view.config.ttl).toBe(9);
  });

  it('writes an unchanged member key only once per lease, and again when it changed or was deleted', async () => {
    const scope = `pub${scopeN++}`;
    const a = await dcs('a', scope);
    await a.keepalive();
    const key = `/t/${scope}/members/a`;
    const rev = async () => (await a.client.get(key).exec()).kvs[0]?.mod_revision ?? null;
    await a.publishMember(info('a'));
    const first = await rev();
    expect(first).not.toBeNull();
    await a.publishMember(info('a'));
    expect(await rev()).toBe(first); // unchanged: not written again
    await a.publishMember({ ...info('a'), lsn: 42 });
    const second = await rev();
    expect(second).not.toBe(first);
    await a.deleteMember(); // deleted by the agent (shutdown): the next publish writes it again
    await a.publishMember({ ...info('a'), lsn: 42 });
    expect(await rev()).not.toBeNull();
  });

  it('appends history from two concurrent writers without losing an entry', async () => {
    const scope = `hist${scopeN++}`;
    const [a, b] = await Promise.all([dcs('a', scope), dcs('b', scope)]);
    const entry = (tl: number, leader: string) => ({ timeline: tl, lsn: '0/1', reason: 'test', time: new Date().toISOString(), leader });
    await Promise.all([a.appendHistory(entry(2, 'a')), b.appendHistory(entry(3, 'b')), a.appendHistory(entry(4, 'a'))]);
    expect((await a.readHistory()).map((h) => h.timeline).sort()).toEqual([2, 3, 4]);
  });

  it('writes /sync, /failsafe and /status only at the revision read, and reads the revisions back', async () => {
    const scope = `cas${scopeN++}`;
    const [a, b] = await Promise.all([dcs('a', scope), dcs('b', scope)]);
    let view = await a.readCluster(fallback);
    expect(view.revisions).toEqual({ sync: '0', failsafe: '0', failover: '0', status: '0' });
    const conflict = (p: Promise<unknown>) => expect(p).rejects.toSatisfy((e: unknown) => isPgHaError(e, 'PGHA_DCS_CONFLICT'));
    // "0" creates only if absent: the second writer with the same (stale) read loses.
    const rev = await a.writeSync({ leader: 'a', members: ['b'] }, '0');
    await conflict(b.writeSync({ leader: 'b', members: [] }, '0'));
    view = await a.readCluster(fallback);
    expect(view.revisions.sync).toBe(rev);
    expect(view.sync).toEqual({ leader: 'a', members: ['b'] });
    // A retried write whose first attempt landed (same value, same expected revision) counts as done.
    expect(await a.writeSync({ leader: 'a', members: ['b'] }, '0')).toBe(rev);
    const rev2 = await a.writeSync({ leader: 'a', members: [] }, rev);
    await conflict(b.writeSync({ leader: 'b', members: ['a'] }, rev)); // read before a's second write
    expect((await b.readCluster(fallback)).sync).toEqual({ leader: 'a', members: [] });
    expect(Number(rev2)).toBeGreaterThan(Number(rev));

    const fs = await a.writeFailsafe({ leader: 'a', members: { a: 'http://a:8008' } }, '0');
    await conflict(a.writeFailsafe(null, '0')); // a delete on a stale read leaves the record
    expect((await a.readCluster(fallback)).revisions.failsafe).toBe(fs);
    expect(await a.writeFailsafe(null, fs)).toBe('0');
    expect((await a.readCluster(fallback)).revisions.failsafe).toBe('0');

    const st = await a.writeLeaderLsn(100, undefined, '0');
    await conflict(b.writeLeaderLsn(50, undefined, '0'));
    view = await b.readCluster(fallback);
    expect([view.lastLeaderLsn, view.revisions.status]).toEqual([100, st]);
  });

  it('clears /failover only if it is still the request read', async () => {
    const scope = `fo${scopeN++}`;
    const a = await dcs(undefined, scope);
    const req = (candidate: string): FailoverRequest => ({ kind: 'switchover', leader: 'a', candidate, scheduledAt: null, requestedAt: Date.now(), shutdownLsn: null });
    const first = await a.writeFailover(req('b'), '0');
    // An operator replaces it (flush, then a new request) after the leader read the first one.
    await a.clearFailover(first);
    await a.writeFailover(req('c'), '0');
    await expect(a.clearFailover(first)).rejects.toSatisfy((e: unknown) => isPgHaError(e, 'PGHA_DCS_CONFLICT'));
    const view = await a.readCluster(fallback);
    expect(view.failover?.candidate).toBe('c');
    await a.clearFailover(view.revisions.failover);
    await a.clearFailover(view.revisions.failover); // already gone: done
    expect((await a.readCluster(fallback)).failover).toBeNull();
  });

  it('of two switchovers requested at the same moment, one is stored and the other gets PGHA_DCS_CONFLICT', async () => {
    const scope = `ops${scopeN++}`;
    const [a, b] = await Promise.all([dcs('a', scope), dcs('b', scope)]);
    await a.keepalive(); await b.keepalive();
    expect(await a.acquireLeader()).toBe(true);
    await a.publishMember({ ...info('a'), role: 'primary', state: 'running' });
    await b.publishMember(info('b'));
    // Both operators read the cluster before either writes: readCluster returns once both have read.
    const ops = await Promise.all([dcs(undefined, scope), dcs(undefined, scope)]);
    let arrived = 0;
    let release = (): void => undefined;
    const bothRead = new Promise<void>((r) => { release = r; });
    const synced = ops.map((d): Dcs => new Proxy(d, {
      get(t, p) {
        if (p === 'readCluster') return async (f: typeof fallback) => { const v = await t.readCluster(f); if (++arrived === 2) release(); await bothRead; return v; };
        const v: unknown = Reflect.get(t, p);
        return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(t) : v;
      },
    }));
    // Different times, so the two values differ (an identical value found stored counts as written).
    const at = Date.now() + 600_000;
    const results = await Promise.allSettled(synced.map((d, i) => requestHandover(d, { kind: 'switchover', candidate: 'b', scheduledAt: at + i * 1000 }, fallback)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(isPgHaError(lost?.reason, 'PGHA_DCS_CONFLICT')).toBe(true);
    expect((lost?.reason as Error).message).toMatch(/requested at the same moment/);
    expect((await a.readCluster(fallback)).failover).toMatchObject({ kind: 'switchover', leader: 'a', candidate: 'b' });
  });

  it('tells a watcher of the key deletion within moments', async () => {
    const scope = `watch${scopeN++}`;
    const a = await dcs('a', scope);
    await a.keepalive();
    expect(await a.acquireLeader()).toBe(true);
    let seenAt = 0;
    const stop = await a.watchLeader((holder) => { if (holder === null && seenAt === 0) seenAt = performance.now(); });
    await sleep(200);
    seenAt = 0;
    const t0 = performance.now();
    await a.releaseLeader();
    for (let i = 0; i < 50 && seenAt === 0; i++) await sleep(10);
    stop();
    expect(seenAt).toBeGreaterThan(0);
    expect(seenAt - t0).toBeLessThan(300);
  });

  it('renews over one stream kept open; a keepalive etcd does not answer in time fails, and the next opens a new stream', async () => {
    const a = await dcs('a', `stream${scopeN++}`);
    await a.keepalive(); // the grant
    for (let i = 0; i < 5; i++) expect((await a.keepalive()).ttl).toBe(TTL);
    expect(a.keepaliveStreamsOpened).toBe(1);
    etcd.pause();
    try {
      const t0 = performance.now();
      const err = await a.keepalive().then(() => null, (e: unknown) => e);
      expect(isPgHaError(err, 'PGHA_DCS_TIMEOUT')).toBe(true);
      expect(performance.now() - t0).toBeLessThan(1000 + 500); // callTimeoutMs, one host
    } finally {
      etcd.resume();
    }
    // (If the lease ran out meanwhile, the first of these is answered TTL 0 and a new lease is granted.)
    await a.keepalive();
    await a.keepalive();
    expect(a.keepaliveStreamsOpened).toBe(2);
  });

  it('fails a call within its deadline while etcd is frozen', async () => {
    const a = await dcs('a', `frozen${scopeN++}`);
    await a.keepalive();
    etcd.pause();
    try {
      const t0 = performance.now();
      const err = await a.readCluster(fallback).then(() => null, (e: unknown) => e);
      expect(isPgHaError(err, 'PGHA_DCS_TIMEOUT') || isPgHaError(err, 'PGHA_DCS_UNAVAILABLE')).toBe(true);
      expect(performance.now() - t0).toBeLessThan(1000 * 2 + 500); // one try plus one retry
      const err2 = await a.keepalive().then(() => null, (e: unknown) => e);
      expect(err2).not.toBeNull();
    } finally {
      etcd.resume();
    }
    await sleep(300);
    await a.keepalive();
  });
});
