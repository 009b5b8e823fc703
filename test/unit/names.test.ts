// Finding 12: member names and their replication slots. Names that map to one slot are refused
// when the agent starts, before it acts or publishes its member key.
import { describe, expect, it } from 'vitest';
import { HaLoop } from '../../src/agent/loop.ts';
import { slotCollisions } from '../../src/agent/names.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import type { Dcs } from '../../src/dcs/types.ts';
import { PgHaError } from '../../src/errors.ts';
import type { Logger } from '../../src/log/logger.ts';
import { slotNameFor, type PostgresControl } from '../../src/postgres/types.ts';
import { clusterView, localPg, member } from '../support/observations.ts';

describe('slot names', () => {
  it.each([
    ['node1', 'node1'], ['Node-1', 'node_1'], ['node.1', 'node_1'], ['NODE_1', 'node_1'], ['a'.repeat(63), 'a'.repeat(63)],
  ])('%s uses slot %s', (name, slot) => expect(slotNameFor(name)).toBe(slot));

  it.each([
    ['node_1', ['Node-1', 'node2'], ['Node-1']],
    ['node_1', ['node.1', 'node-1', 'node1'], ['node.1', 'node-1']],
    ['Node1', ['node1'], ['node1']],
    ['node1', ['node1', 'node2'], []], // the same name is this member's own key, not a collision
    ['node1', ['node10', 'node_1'], []],
  ])('%s against %j collides with %j', (self, others, clash) => expect(slotCollisions(self, others)).toEqual(clash));
});

describe('the agent refuses to start on a slot collision', () => {
  const config = nodeConfigSchema.parse({
    scope: 's', name: 'node_1', restapi: { listen: '127.0.0.1:8009' },
    postgresql: { data_dir: '/srv/pg/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
  });
  const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;

  async function run(others: string[]): Promise<{ fatal: PgHaError | null; published: number; acted: number }> {
    let published = 0;
    let acted = 0;
    const dcs = {
      keepalive: async () => ({ sentAt: 0, ttl: 2 }),
      readCluster: async () => clusterView({ members: others.map((n) => member(n)), leader: { name: others[0] ?? 'x', revision: '1', lease: '1' } }),
      publishMember: async () => { published += 1; },
      deleteMember: async () => undefined,
    } as unknown as Dcs;
    const pg = {
      observe: async () => localPg({ running: false, role: null, upstream: null }),
      start: async () => { acted += 1; },
      applyConfig: async () => false,
      stop: async () => undefined,
    } as unknown as PostgresControl;
    let fatal: PgHaError | null = null;
    const loop = new HaLoop({ config, dcs, pg, logger, now: () => performance.now(), version: 't', fatal: (e) => { fatal = e; } });
    loop.start();
    // The first iteration runs at once; a second one would follow loop_wait (0.5 s) later.
    await new Promise((r) => setTimeout(r, 100));
    await loop.stop();
    return { fatal, published, acted };
  }

  it('stops before acting or publishing when another member is named Node-1', async () => {
    const r = await run(['Node-1', 'node2']);
    expect(r.fatal?.code).toBe('PGHA_NAME_COLLISION');
    expect(r.fatal?.message).toContain('member name node_1 maps to replication slot node_1, as the name of member Node-1 does');
    expect(r.published).toBe(0);
    expect(r.acted).toBe(0);
  });

  it('runs normally when every slot name differs', async () => {
    const r = await run(['node1', 'node2']);
    expect(r.fatal).toBeNull();
    expect(r.published).toBeGreaterThan(0);
  });
});
