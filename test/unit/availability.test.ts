// The availability model against the hand-worked cases of docs/availability.md.
import { describe, expect, it } from 'vitest';
import { computeAvailability, validateInput } from '../../src/availability/model.ts';

describe('availability model', () => {
  it('case 1: shared parts dominate', () => {
    const r = computeAvailability({ node: 0.999, network: 0.9999, storage: 0.9999, etcd: 0.99999, standbys: 2, mtbfHours: 2000, failoverSeconds: 3.33 });
    expect(r.failoverShare).toBeCloseTo(4.625e-7, 10);
    expect(r.allNodesDownShare).toBeCloseTo(1e-9, 12);
    expect(r.availability).toBeCloseTo(0.99978955, 8);
    expect(r.yearlyDowntimeMinutes).toBeCloseTo(110.6, 1);
    expect(r.monthlyDowntimeMinutes).toBeCloseTo(9.2, 1);
    expect(r.targetsMet.map((t) => t.met)).toEqual([true, true, false]);
    expect(r.guideFormula).toBeCloseTo(0.99879921, 8);
    expect(r.recommendations.join(' ')).toMatch(/etcd over three zones/);
  });
  it('case 2: no target met', () => {
    const r = computeAvailability({ node: 0.999, network: 0.999, storage: 0.999, etcd: 1, standbys: 3, mtbfHours: 1000, failoverSeconds: 30 });
    expect(r.availability).toBeCloseTo(0.99799268, 8);
    expect(r.yearlyDowntimeMinutes).toBeCloseTo(1055.0, 1);
    expect(r.targetsMet.every((t) => !t.met)).toBe(true);
  });
  it('case 3: a single node has no failover', () => {
    const r = computeAvailability({ node: 0.99, network: 1, storage: 1, etcd: 1, standbys: 0, mtbfHours: 500, failoverSeconds: 3 });
    expect(r.failoverShare).toBe(0);
    expect(r.availability).toBeCloseTo(0.99, 10);
    expect(r.yearlyDowntimeMinutes).toBeCloseTo(5256, 6);
    expect(r.recommendations.join(' ')).toMatch(/at least two standbys/);
  });
  it('a longer failover costs availability, more standbys never do', () => {
    const base = { node: 0.995, network: 1, storage: 1, etcd: 1, standbys: 1, mtbfHours: 100, failoverSeconds: 3 };
    expect(computeAvailability({ ...base, failoverSeconds: 30 }).availability).toBeLessThan(computeAvailability(base).availability);
    expect(computeAvailability({ ...base, standbys: 2 }).availability).toBeGreaterThanOrEqual(computeAvailability(base).availability);
  });
  it('names bad inputs', () => {
    expect(validateInput({ node: 1.5, network: 1, storage: 1, etcd: 0, standbys: -1, mtbfHours: 0, failoverSeconds: -1 })).toHaveLength(5);
  });
});
