// The HA loop when an etcd put hangs right after a renewal etcd acknowledged (src/agent/loop.ts,
// src/agent/budgeted-dcs.ts): etcd lost its quorum between the renewal and the member-key publish.
// The put must be abandoned before the fence deadline and the failsafe round started at once, so
// the members' confirmations carry the primary through; before, the loop sat in the put until
// the deadline passed and the primary fenced (chaos seed 1, etcd-quorum-loss). The member that
// confirms is a real HTTP server on loopback.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HaLoop } from '../../src/agent/loop.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import { PgHaError } from '../../src/errors.ts';
import type { Logger } from '../../src/log/logger.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import { clusterView, dyn, localPg, member } from '../support/observations.ts';

const auth = { username: 'api', password: 'secret' };
const config = nodeConfigSchema.parse({
  scope: 's', name: 'node1', restapi: { listen: '127.0.0.1:8009', authentication: auth },
  postgresql: { data_dir: '/srv/pg/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;

let server: Server | null = null;
afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = null;
});

/** A member's REST API that confirms every POST /failsafe; resolves to its URL and call times. */
async function confirmingMember(): Promise<{ url: string; calls: number[] }> {
  const calls: number[] = [];
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/failsafe') calls.push(performance.now());
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, calls };
}

/**
 * A leader whose etcd answers the first keepalive, read and renewal, then lets every call time
 * out (as etcd does without a quorum). Runs `ms` and reports the fences and the deadlines armed.
 */
async function leaderWhoseEtcdHangs(failsafeMode: boolean, ms: number): Promise<{ calls: number[]; stops: number; hungAt: number; deadlines: number[] }> {
  const peer = await confirmingMember();
  const members = [member('node1', { role: 'primary', state: 'running', upstream: null, apiUrl: 'http://127.0.0.1:1' }), member('node2', { apiUrl: peer.url })];
  const view = clusterView({
    members, leader: { name: 'node1', revision: '1', lease: '1' }, config: dyn({ failsafe_mode: failsafeMode }),
    failsafe: { leader: 'node1', members: { node1: 'http://127.0.0.1:1', node2: peer.url } },
  });
  let hung = false;
  let hungAt = 0;
  // etcd3 gives up on a call after its deadline and one retry: 2 x retry_timeout = 1.5 s.
  const timeout = <T>() => new Promise<T>((_, reject) => setTimeout(() => reject(new PgHaError('PGHA_DCS_TIMEOUT', 'etcd did not answer in time', { retryable: true })), 1500));
  const hang = <T>(v: () => T) => async (): Promise<T> => (hung ? timeout<T>() : v());
  const dcs = {
    keepalive: hang(() => ({ sentAt: performance.now(), ttl: 2 })),
    readCluster: hang(() => view),
    renewLeader: async () => {
      if (hung) return timeout();
      const r = { sentAt: performance.now(), ttl: 2 };
      hung = true; // the quorum is lost just after this renewal was acknowledged
      hungAt = performance.now();
      return r;
    },
    publishMember: hang(() => undefined),
    writeLeaderLsn: hang(() => '2'),
    writeSync: hang(() => '2'),
    writeFailsafe: hang(() => '2'),
    deleteMember: async () => undefined,
    releaseLeader: async () => undefined,
  } as unknown as Dcs;
  let stops = 0;
  const pg = {
    observe: async () => localPg({ running: stops === 0, role: stops === 0 ? 'primary' : null, upstream: null, controlState: 'primary-crashed' }),
    applyConfig: async () => false,
    stop: async () => { stops += 1; },
    setSyncNames: async () => false,
  } as unknown as PostgresControl;
  const loop = new HaLoop({ config, dcs, pg, logger, now: () => performance.now(), version: 't', fatal: () => undefined });
  const deadlines: number[] = [];
  const arm = loop.fence.arm.bind(loop.fence);
  loop.fence.arm = (d: number) => { deadlines.push(d); arm(d); };
  loop.start();
  // ms: past the first fence deadline (renewal + ttl - fence_margin = 1.5 s).
  await new Promise((r) => setTimeout(r, ms));
  await loop.stop();
  return { calls: peer.calls, stops, hungAt, deadlines };
}

describe('a leader whose etcd hangs after an acknowledged renewal', () => {
  it('abandons the put and asks the members before the fence deadline (failsafe_mode on)', async () => {
    const r = await leaderWhoseEtcdHangs(true, 2600);
    expect(r.calls.length).toBeGreaterThan(0);
    // The first round went out before the deadline armed by the last renewal (hungAt + 1.5 s).
    expect(r.calls[0]! - r.hungAt).toBeLessThan(1500);
    expect(r.stops).toBe(0);
    // Deadlines moved on past the renewal's own.
    expect(Math.max(...r.deadlines)).toBeGreaterThan(r.hungAt + 1500);
  });

  it('fences at the deadline with failsafe_mode off (no round to wait for)', async () => {
    const r = await leaderWhoseEtcdHangs(false, 2200);
    // (Then the loop sits in the put until etcd3 gives up, as it did with the mode on before.)
    expect(r.calls.length).toBe(0);
    expect(r.stops).toBeGreaterThan(0);
  });
});
