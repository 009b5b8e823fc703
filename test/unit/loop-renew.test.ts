// The HA loop after a lease renewal that failed on etcd (src/agent/loop.ts, step 8): it publishes
// nothing more to etcd in that loop, so the failsafe round the next loop starts with comes before
// the fence deadline (a put to an etcd that is electing a leader hangs like the renewal did).
import { describe, expect, it } from 'vitest';
import { HaLoop } from '../../src/agent/loop.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import { PgHaError } from '../../src/errors.ts';
import type { Logger } from '../../src/log/logger.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import { clusterView, localPg, member } from '../support/observations.ts';

const config = nodeConfigSchema.parse({
  scope: 's', name: 'node1', restapi: { listen: '127.0.0.1:8009' },
  postgresql: { data_dir: '/srv/pg/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
});
const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;

async function firstLoop(renew: () => Promise<unknown>): Promise<{ renewals: number; published: number }> {
  let renewals = 0;
  let published = 0;
  const dcs = {
    keepalive: async () => ({ sentAt: performance.now(), ttl: 2 }),
    readCluster: async () => clusterView({ members: ['node1', 'node2'].map((n) => member(n)), leader: { name: 'node1', revision: '1', lease: '1' } }),
    renewLeader: async () => { renewals += 1; return renew(); },
    publishMember: async () => { published += 1; },
    deleteMember: async () => undefined,
  } as unknown as Dcs;
  const pg = {
    observe: async () => localPg({ running: true, role: 'primary', upstream: null }),
    applyConfig: async () => false,
    stop: async () => undefined,
  } as unknown as PostgresControl;
  const loop = new HaLoop({ config, dcs, pg, logger, now: () => performance.now(), version: 't', fatal: () => undefined });
  loop.start();
  // The first iteration runs at once and takes milliseconds; the next would follow loop_wait.
  await new Promise((r) => setTimeout(r, 150));
  await loop.stop();
  return { renewals, published };
}

describe('the loop after a failed renewal', () => {
  it('publishes its member key after a renewal etcd acknowledged', async () => {
    const r = await firstLoop(async () => ({ sentAt: performance.now(), ttl: 2 }));
    expect(r.renewals).toBeGreaterThan(0);
    expect(r.published).toBeGreaterThan(0);
  });

  it('publishes nothing more to etcd in the loop whose renewal failed', async () => {
    const r = await firstLoop(async () => { throw new PgHaError('PGHA_DCS_TIMEOUT', 'renew: etcd did not answer in time', { retryable: true }); });
    expect(r.renewals).toBeGreaterThan(0);
    expect(r.published).toBe(0);
  });
});
