// The availability model against the hand-worked cases of docs/availability.md, its advice for
// each synchronous_mode, the drills it accepts, and the rounded figures `pghactl availability` prints.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { computeAvailability, drillProblem, UNPLANNED_DRILLS, validateInput, type AvailabilityInput, type SynchronousMode } from '../../src/availability/model.ts';
import { renderAvailability } from '../../src/cli/availability.ts';
import { availabilityPercent, bytes, duration, seconds, targetPercent } from '../../src/human.ts';

describe('availability model', () => {
  it('case 1: shared parts dominate', () => {
    const r = computeAvailability({ node: 0.999, network: 0.9999, storage: 0.9999, etcd: 0.99999, standbys: 2, mtbfHours: 2000, failoverSeconds: 3.33, synchronousMode: null });
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
    const r = computeAvailability({ node: 0.999, network: 0.999, storage: 0.999, etcd: 1, standbys: 3, mtbfHours: 1000, failoverSeconds: 30, synchronousMode: null });
    expect(r.availability).toBeCloseTo(0.99799268, 8);
    expect(r.yearlyDowntimeMinutes).toBeCloseTo(1055.0, 1);
    expect(r.targetsMet.every((t) => !t.met)).toBe(true);
  });
  it('case 3: a single node has no failover', () => {
    const r = computeAvailability({ node: 0.99, network: 1, storage: 1, etcd: 1, standbys: 0, mtbfHours: 500, failoverSeconds: 3, synchronousMode: null });
    expect(r.failoverShare).toBe(0);
    expect(r.availability).toBeCloseTo(0.99, 10);
    expect(r.yearlyDowntimeMinutes).toBeCloseTo(5256, 6);
    expect(r.recommendations.join(' ')).toMatch(/at least two standbys/);
  });
  it('a longer failover costs availability, more standbys never do', () => {
    const base = { node: 0.995, network: 1, storage: 1, etcd: 1, standbys: 1, mtbfHours: 100, failoverSeconds: 3, synchronousMode: null };
    expect(computeAvailability({ ...base, failoverSeconds: 30, synchronousMode: null }).availability).toBeLessThan(computeAvailability(base).availability);
    expect(computeAvailability({ ...base, standbys: 2 }).availability).toBeGreaterThanOrEqual(computeAvailability(base).availability);
  });
  it('names bad inputs', () => {
    expect(validateInput({ node: 1.5, network: 1, storage: 1, etcd: 0, standbys: -1, mtbfHours: 0, failoverSeconds: -1, synchronousMode: null })).toHaveLength(5);
  });
});

describe('availability advice and output', () => {
  const base = { node: 0.999, network: 0.9999, storage: 0.9999, etcd: 0.99999, standbys: 2, mtbfHours: 2000, failoverSeconds: 3.33 };
  const advice = (synchronousMode: SynchronousMode | null) => computeAvailability({ ...base, synchronousMode }).recommendations.join('\n');

  it('advises synchronous mode only when it is off, and never calls a built feature missing', () => {
    expect(advice('off')).toMatch(/synchronous_mode is off: .*set it to on or quorum/);
    for (const mode of ['on', 'quorum'] as const) {
      expect(advice(mode)).toMatch(new RegExp(`synchronous_mode is ${mode}: a failover loses no acknowledged write`));
      expect(advice(mode)).not.toMatch(/set it to on/);
    }
    for (const mode of ['off', 'on', 'quorum', null] as const) expect(advice(mode)).not.toMatch(/not built|not yet|missing|unsupported/i);
    expect(advice(null)).toMatch(/depends on synchronous_mode/);
  });

  it('takes unplanned-failure drills for the failover time and refuses a switchover drill, naming the drill to run', () => {
    for (const kind of UNPLANNED_DRILLS) expect(drillProblem(kind, 'f.json')).toBeNull();
    expect(drillProblem('switchover', 'f.json')).toMatch(/switchover drill.*planned.*pghactl drill --kind kill-primary/);
    expect(drillProblem(undefined, 'f.json')).toMatch(/does not say which drill.*--kind kill-primary/);
    expect(drillProblem('something', 'f.json')).toMatch(/kill-primary, stop-primary/);
  });

  it('prints the rounded figures docs/availability.md gives for its three cases', () => {
    const text = (i: AvailabilityInput) => renderAvailability(i, computeAvailability(i), 'x');
    const c1 = text({ ...base, synchronousMode: null });
    for (const want of ['availability:        99.979 %  (the guide\'s series formula: 99.88 %)', 'downtime:            110.6 min/year, 9.2 min/month', 'from failovers:    14.59 s/year (3.33 s per failover', 'all nodes down:    32 ms/year', 'shared parts:      110.4 min/year']) expect(c1).toContain(want);
    expect(text({ node: 0.999, network: 0.999, storage: 0.999, etcd: 1, standbys: 3, mtbfHours: 1000, failoverSeconds: 30, synchronousMode: null })).toContain('availability:        99.80 %');
    expect(text({ node: 0.999, network: 0.999, storage: 0.999, etcd: 1, standbys: 3, mtbfHours: 1000, failoverSeconds: 30, synchronousMode: null })).toContain('downtime:            17.6 h/year');
    const c3 = text({ node: 0.99, network: 1, storage: 1, etcd: 1, standbys: 0, mtbfHours: 500, failoverSeconds: 3, synchronousMode: null });
    expect(c3).toContain('availability:        99.00 %');
    expect(c3).toContain('downtime:            87.6 h/year');
  });

  it('prints figures rounded to what they mean (case 1 of docs/availability.md)', () => {
    const input = { ...base, failoverSeconds: 0.2830953460000001, synchronousMode: 'off' as const };
    const text = renderAvailability(input, computeAvailability(input), 'the kill-primary drill in f.json');
    expect(text).toContain('availability:        99.979 %  (the guide\'s series formula: 99.88 %)');
    expect(text).toContain('downtime:            110.4 min/year, 9.2 min/month');
    expect(text).toContain('from failovers:    1.24 s/year (283 ms per failover, from the kill-primary drill in f.json; a node fails every 2000 h)');
    expect(text).toContain('all nodes down:    32 ms/year');
    expect(text).toContain('targets:             99.9 % met, 99.95 % met, 99.99 % NOT met');
    // No raw floating-point figure: at most three decimals anywhere.
    expect(text).not.toMatch(/\d\.\d{4,}/);
  });
});

describe('human figures', () => {
  it('rounds seconds, durations, percentages and sizes', () => {
    expect([seconds(0.28309), seconds(2.1049), seconds(0.0004)]).toEqual(['283 ms', '2.10 s', '0 ms']);
    expect([duration(14.59), duration(6636), duration(63_300)]).toEqual(['14.59 s', '110.6 min', '17.6 h']);
    expect([availabilityPercent(0.99978955), availabilityPercent(0.99799268), availabilityPercent(0.99), availabilityPercent(0.999999982), availabilityPercent(1)])
      .toEqual(['99.979 %', '99.80 %', '99.00 %', '99.999998 %', '100 %']);
    expect([targetPercent(0.999), targetPercent(0.9995)]).toEqual(['99.9 %', '99.95 %']);
    expect([bytes(512), bytes(6 * 1024 * 1024), bytes(1048576), bytes(1536)]).toEqual(['512 B', '6.0 MB', '1.0 MB', '1.5 kB']);
  });
});

describe('pghactl availability (child process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgha-avail-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // No cluster to read synchronous_mode from: only the drill file and the flag.
  const withoutConfig = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'PGHA_CONFIG'));
  const file = (name: string, summary: object) => { const p = join(dir, name); writeFileSync(p, JSON.stringify({ drills: [], summary })); return p; };
  const run = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [new URL('../../bin/pghactl.js', import.meta.url).pathname, 'availability', ...args], { timeout: 20_000, env: withoutConfig }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });

  it('refuses a switchover drill with the drill to run, and reads a kill-primary drill with its synchronous_mode', async () => {
    const sw = await run(['--from-drill', file('sw.json', { kind: 'switchover', median_outage_s: 0.2830953460000001 })]);
    expect(sw.code).toBe(2);
    expect(sw.stderr).toMatch(/switchover drill.*pghactl drill --kind kill-primary --format json/);
    const ok = await run(['--from-drill', file('kill.json', { kind: 'kill-primary', median_outage_s: 2.1049, synchronous_mode: 'on' })]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('2.10 s per failover, from the kill-primary drill');
    expect(ok.stdout).toContain('synchronous_mode is on');
    expect(ok.stdout).not.toMatch(/\d\.\d{4,}/);
    const forced = await run(['--from-drill', join(dir, 'kill.json'), '--synchronous-mode', 'off', '--format', 'json']);
    const j = JSON.parse(forced.stdout) as { input: { failoverSeconds: number; synchronousMode: string } };
    expect(j.input).toMatchObject({ failoverSeconds: 2.1049, synchronousMode: 'off' });
    // Three pghactl processes: each loads the TypeScript sources, a few seconds on a busy 2-core machine.
  }, 60_000);
});
