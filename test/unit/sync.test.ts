// Synchronous replication: the leader's plan for synchronous_standby_names and /sync, and who may
// promote. The record must never name a member PostgreSQL has not confirmed synchronous.
import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { it } from 'vitest';
import { decide } from '../../src/ha/decide.ts';
import { planSync } from '../../src/ha/sync.ts';
import type { Action } from '../../src/ha/types.ts';
import { clusterView, defaultTags, dyn, member, obs } from '../support/observations.ts';

const on = dyn({ synchronous_mode: 'on' });
const leaderObs = (sync: string[] | null, confirmed: string[], over: Parameters<typeof clusterView>[0] = {}, cfg = on) =>
  obs({ self: { name: 'n1' }, local: { role: 'primary', syncStandbys: confirmed }, cluster: clusterView({ config: cfg, sync: sync === null ? null : { leader: 'n1', members: sync }, ...over }) });
const summary = (a: Action[]) => a.map((x) => (x.kind === 'write_sync' ? `write[${x.members.join(',')}]` : x.kind === 'set_sync_names' ? `names[${x.names?.join(',') ?? 'async'}]` : x.kind));

describe('planSync', () => {
  it('starts with an empty record, then adds a member once PostgreSQL reports it synchronous', () => {
    const first = leaderObs(null, []);
    expect(summary(planSync(first, on, first.cluster!))).toEqual(['write[]', 'names[n2]']);
    const second = leaderObs([], ['n2']);
    expect(summary(planSync(second, on, second.cluster!))).toEqual(['names[n2]', 'write[n2]']);
    const steady = leaderObs(['n2'], ['n2']);
    expect(summary(planSync(steady, on, steady.cluster!))).toEqual(['names[n2]']);
  });
  it('narrows the record before replacing a synchronous standby that stopped streaming', () => {
    const o = leaderObs(['n2'], ['n2'], { members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { state: 'stopped' }), member('n3')] });
    expect(summary(planSync(o, on, o.cluster!))).toEqual(['write[]', 'names[n3]']);
  });
  it('drops to asynchronous when nobody is left, or blocks commits in strict mode', () => {
    const alone = { members: [member('n1', { role: 'primary', state: 'running' })] };
    const o = leaderObs(['n2'], [], alone);
    expect(summary(planSync(o, on, o.cluster!))).toEqual(['write[]', 'names[async]']);
    const strict = dyn({ synchronous_mode: 'on', synchronous_mode_strict: true });
    const s = leaderObs(['n2'], [], alone, strict);
    expect(summary(planSync(s, strict, s.cluster!))).toEqual(['write[]', 'names[]']);
  });
  it('never picks a nosync standby', () => {
    const o = leaderObs(null, [], { members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { tags: { ...defaultTags, nosync: true } })] });
    expect(summary(planSync(o, on, o.cluster!))).toEqual(['write[]', 'names[async]']);
  });
  test.prop([fc.subarray(['n2', 'n3']), fc.subarray(['n2', 'n3']), fc.subarray(['n2', 'n3'])], { numRuns: 300 })(
    'every record written is the old record narrowed, or widened only with confirmed members',
    (record, confirmed, streaming) => {
      const members = [member('n1', { role: 'primary', state: 'running' }), ...['n2', 'n3'].map((n) => member(n, { state: streaming.includes(n) ? 'streaming' : 'running' }))];
      const o = leaderObs(record, confirmed, { members });
      for (const a of planSync(o, on, o.cluster!)) {
        if (a.kind !== 'write_sync') continue;
        for (const m of a.members) expect(record.includes(m) || confirmed.includes(m)).toBe(true);
      }
    },
  );
});

describe('failover under synchronous mode', () => {
  const free = (sync: string[], cfg = on) => clusterView({ leader: null, config: cfg, sync: { leader: 'n1', members: sync }, members: [member('n2', { lsn: 500 }), member('n3', { lsn: 9000 })] });
  it('only a member of the record races, even if another standby is further ahead', () => {
    expect(decide(obs({ local: { lsn: 500 }, cluster: free(['n2']) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free(['n2']) })).actions).toEqual([]);
  });
  it('nobody races with an empty record in strict mode; asynchronous rules apply otherwise', () => {
    const strict = dyn({ synchronous_mode: 'on', synchronous_mode_strict: true });
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free([], strict) })).actions).toEqual([]);
    expect(decide(obs({ self: { name: 'n3' }, local: { lsn: 9000 }, cluster: free([]) })).actions.map((a) => a.kind)).toEqual(['acquire', 'promote']);
  });
});
