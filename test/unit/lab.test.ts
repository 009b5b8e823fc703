// The pure parts of lab/: healthy() over a scripted Cluster, the write probe's outage arithmetic,
// and the port allocator (its reservation files are real, under /tmp/pgha-ports).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { healthy, type Cluster } from '../../lab/cluster.ts';
import { WriteProbe, type Attempt } from '../../lab/probe.ts';
import { PORT_RANGE, allocatePorts, releasePorts, reservePort } from '../../lab/ports.ts';

type N = { name: string };
const a: N = { name: 'a' };
const b: N = { name: 'b' };
const c: N = { name: 'c' };

/** A cluster whose API answers from a table: `codes[name][path]`, 0 when absent; `walsenders` streaming on any primary. */
function fake(codes: Record<string, Record<string, number>>, walsenders = 2): Cluster<N> {
  return {
    nodes: [a, b, c],
    probe: async (n, path) => codes[n.name]?.[path] ?? 0,
    rows: async <T>() => [{ n: walsenders }] as T[],
  };
}
const S = '/replica?replication_state=streaming';
const up = { a: { '/primary': 200 }, b: { '/replica': 200, [S]: 200 }, c: { '/replica': 200, [S]: 200 } };

describe('healthy()', () => {
  it('one primary and the two others streaming: the primary', async () => {
    expect(await healthy(fake(up))).toBe(a);
  });
  it('two primaries, or none: not healthy', async () => {
    expect(await healthy(fake({ ...up, b: { '/primary': 200 } }))).toBeNull();
    expect(await healthy(fake({ b: up.b, c: up.c }))).toBeNull();
  });
  it('a standby running but not streaming: healthy only with streaming: false', async () => {
    const notStreaming = { ...up, c: { '/replica': 200 } };
    expect(await healthy(fake(notStreaming))).toBeNull();
    expect(await healthy(fake(notStreaming), { streaming: false })).toBe(a);
  });
  it('standbys: exactly that many stream', async () => {
    const one = { a: up.a, b: up.b };
    expect(await healthy(fake(one))).toBeNull();
    expect(await healthy(fake(one), { standbys: 1 })).toBe(a);
    expect(await healthy(fake(up), { standbys: 1 })).toBeNull();
  });
  it('primarySeesStandbys asks the primary\'s pg_stat_replication', async () => {
    expect(await healthy(fake(up, 1), { primarySeesStandbys: true })).toBeNull();
    expect(await healthy(fake(up, 2), { primarySeesStandbys: true })).toBe(a);
  });
  it('not and also', async () => {
    expect(await healthy(fake(up), { not: a })).toBeNull();
    expect(await healthy(fake(up), { not: b })).toBe(a);
    expect(await healthy(fake(up), { also: async () => false })).toBeNull();
    expect(await healthy(fake(up), { also: async (p) => p === a })).toBe(a);
  });
});

describe('WriteProbe outage arithmetic', () => {
  const at = (id: number, end: number, ok = true): Attempt => ({ id, start: end - 1, end, invokeMs: end - 1, completeMs: end, outcome: ok ? 'ok' : 'unknown', ok });
  const probe = new WriteProbe({ port: 1, table: 't', connectMs: 1, queryMs: 1 });
  probe.attempts.push(at(1, 100), at(2, 200), at(3, 300, false), at(4, 900), at(5, 1000));
  it('outage: the longest gap between acknowledgements from the last one before t', () => {
    expect(probe.outage(250, 1000)).toBe(700);
    expect(probe.outage(50, 1000)).toBeNaN(); // no acknowledgement before t
  });
  it('longestGap, acked, failedAt, lostByEvent', () => {
    expect(probe.longestGap(250, 250)).toBe(700);
    expect(probe.acked()).toEqual([1, 2, 4, 5]);
    expect(probe.failedAt()).toBe(300);
    const { lost, byEvent } = probe.lostByEvent(new Set([1, 4, 5]), [{ name: 'crash', t: 150 }]);
    expect(lost).toEqual([2]);
    expect(byEvent.get('crash')).toBe(1);
  });
  it('longestGapWithin: gaps touching [from, to], outside the given windows', () => {
    expect(probe.longestGapWithin(250, 260)).toBe(700); // the gap 200-900 overlaps it
    expect(probe.longestGapWithin(950, 1000)).toBe(100);
    expect(probe.longestGapWithin(1100, 1200)).toBe(0);
    expect(probe.longestGapWithin(-Infinity, Infinity)).toBe(700);
    expect(probe.longestGapWithin(-Infinity, Infinity, [{ from: 400, to: 500 }])).toBe(100);
  });
});

describe('allocatePorts', () => {
  it('reserves a block of consecutive ports in the range, owned by this process, until released', () => {
    const base = allocatePorts(3);
    expect(base).toBeGreaterThanOrEqual(PORT_RANGE.first);
    expect(base + 2).toBeLessThanOrEqual(PORT_RANGE.last);
    for (let p = base; p < base + 3; p++) expect(readFileSync(`/tmp/pgha-ports/${p}`, 'utf8')).toBe(String(process.pid));
    const other = allocatePorts(3);
    expect(other + 2 < base || other > base + 2).toBe(true);
    releasePorts(base, 3);
    releasePorts(other, 3);
    expect(existsSync(`/tmp/pgha-ports/${base}`)).toBe(false);
  });
  it('refuses a port another live process holds, takes over one whose owner is dead, refuses a bound one', async () => {
    const p = allocatePorts(1);
    releasePorts(p);
    try {
      writeFileSync(`/tmp/pgha-ports/${p}`, '1'); // pid 1 (init) is alive
      expect(reservePort(p)).toBe(false);
      writeFileSync(`/tmp/pgha-ports/${p}`, String(2 ** 22 + 1)); // above Linux's pid_max: never alive
      expect(reservePort(p)).toBe(true);
      expect(readFileSync(`/tmp/pgha-ports/${p}`, 'utf8')).toBe(String(process.pid));
      expect(reservePort(p)).toBe(false); // already ours: not handed out twice
      releasePorts(p);
      const srv = createServer();
      await new Promise<void>((r) => srv.listen(p, '127.0.0.1', r));
      try { expect(reservePort(p)).toBe(false); } finally { srv.close(); }
    } finally {
      rmSync(`/tmp/pgha-ports/${p}`, { force: true });
    }
  });
});
