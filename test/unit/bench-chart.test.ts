import { describe, expect, it } from 'vitest';
import { CHART, chartEvents, escapeXml, niceMax, renderChart, type ChartEvent } from '../../scripts/bench-chart.ts';

const s = (min: number, median: number, p90: number, max: number, n = 10) => ({ min, median, p90, max, n });
const PLOT_W = CHART.width - CHART.left - CHART.right;

/** Well-formedness: one root, every tag closed in order, attributes quoted, no raw & or < in text. */
function checkXml(xml: string): string[] {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const roots: string[] = [];
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (let m = re.exec(body); m !== null; m = re.exec(body)) {
    const [, close, name, , selfClose, text, stray] = m;
    if (stray !== undefined) throw new Error(`malformed tag at ${m.index}: ${body.slice(m.index, m.index + 40)}`);
    if (text !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos);)/.test(text)) throw new Error(`unescaped & in ${text}`);
      if (stack.length === 0 && text.trim() !== '') throw new Error('text outside the root');
      continue;
    }
    if (close === '/') {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
    } else {
      if (stack.length === 0) roots.push(name ?? '');
      if (selfClose !== '/') stack.push(name ?? '');
    }
  }
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(', ')}`);
  return roots;
}

function bars(svg: string): Array<{ width: number; title: string }> {
  return [...svg.matchAll(/<rect class="bar"[^>]* width="([\d.]+)"[^>]*><title>([^<]*)<\/title>/g)].map((m) => ({ width: Number(m[1]), title: m[2] ?? '' }));
}

const pghaOnly: ChartEvent[] = [
  { title: 'crash failover', series: [{ label: 'pgha', stats: s(2100, 2500, 2800, 3000) }] },
  { title: 'postmaster SIGKILL', series: [{ label: 'pgha', stats: s(1200, 1600, 1900, 2000) }] },
  { title: 'switchover', series: [{ label: 'pgha', stats: s(300, 450, 500, 800) }] },
];

describe('benchmark chart', () => {
  it('is well-formed XML with a single <svg> root', () => {
    const svg = renderChart(pghaOnly);
    expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(checkXml(svg)).toEqual(['svg']);
  });

  it('draws one bar per event, in order, and one per series when Patroni is present', () => {
    expect(bars(renderChart(pghaOnly)).map((b) => b.title.split(':')[0])).toEqual(['pgha', 'pgha', 'pgha']);
    expect((renderChart(pghaOnly).match(/<g class="event">/g) ?? []).length).toBe(3);
    const withPatroni: ChartEvent[] = [
      { title: 'crash', series: [{ label: 'pgha', stats: s(2100, 2500, 2800, 3000) }, { label: 'Patroni 30/10/10', stats: s(25600, 27400, 29600, 29700, 5) }, { label: 'Patroni 10/1/4', stats: s(9000, 10000, 11000, 12000, 5) }] },
      { title: 'switchover', series: [{ label: 'pgha', stats: s(300, 450, 500, 800) }] },
    ];
    const svg = renderChart(withPatroni);
    expect(checkXml(svg)).toEqual(['svg']);
    expect(bars(svg).map((b) => b.title.split(':')[0])).toEqual(['pgha', 'Patroni 30/10/10', 'Patroni 10/1/4', 'pgha']);
    expect(svg).toContain('Patroni a/b/c: ttl/loop_wait/retry_timeout');
  });

  it('scales each bar to its median on the panel scale (a round number at or above the largest max)', () => {
    const b = bars(renderChart(pghaOnly));
    // crash: max 3000 -> scale 5000; postmaster: 2000 -> 2000; switchover: 800 -> 1000.
    expect(b[0]?.width).toBeCloseTo((2500 / 5000) * PLOT_W, 1);
    expect(b[1]?.width).toBeCloseTo((1600 / 2000) * PLOT_W, 1);
    expect(b[2]?.width).toBeCloseTo((450 / 1000) * PLOT_W, 1);
    const two = bars(renderChart([{ title: 'x', series: [{ label: 'a', stats: s(1000, 2000, 3000, 4000) }, { label: 'b', stats: s(10000, 20000, 30000, 40000) }] }]));
    expect((two[1]?.width ?? 0) / (two[0]?.width ?? 1)).toBeCloseTo(10, 5); // same panel, same scale
    expect(two[1]?.width).toBeCloseTo((20000 / 50000) * PLOT_W, 1);
  });

  it('puts the figures in the text and tooltips', () => {
    const svg = renderChart(pghaOnly);
    expect(svg).toContain('2.50 s (2.10 s-3.00 s, n=10)');
    expect(bars(svg)[2]?.title).toBe('pgha: median 0.45 s, min 0.30 s, p90 0.50 s, max 0.80 s, 10 runs');
  });

  it('leaves out events with no measurement and escapes text', () => {
    const svg = renderChart([
      { title: 'a <b> & "c"', series: [{ label: 'x&y', stats: s(1, 2, 3, 4) }] },
      { title: 'skipped', series: [{ label: 'x', stats: s(Number.NaN, Number.NaN, Number.NaN, Number.NaN, 0) }] },
    ]);
    expect(checkXml(svg)).toEqual(['svg']);
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).not.toContain('skipped');
    expect(bars(svg)).toHaveLength(1);
    expect(escapeXml('<&>')).toBe('&lt;&amp;&gt;');
  });

  it('picks round axis ends', () => {
    expect([niceMax(450), niceMax(800), niceMax(1000), niceMax(2371), niceMax(3490), niceMax(27400), niceMax(0)]).toEqual([500, 1000, 1000, 5000, 5000, 50000, 1000]);
  });

  it('puts each Patroni timing beside pgha for the events both measured', () => {
    const rows = [{ name: 'crash failover (SIGKILL agent + PostgreSQL)', ...s(1, 2, 3, 4) }, { name: 'postmaster SIGKILL (agent alive)', ...s(1, 2, 3, 4) }, { name: 'switchover (pghactl switchover --force)', ...s(1, 2, 3, 4) }, { name: 'rebuild', ...s(1, 2, 3, 4) }];
    const patroni = { version: 'patroni 3.0.2', date: '2026-11-29', timings: [
      { name: 'defaults', settings: { ttl: 30, loop_wait: 10, retry_timeout: 10 }, events: [{ kind: 'crash', ...s(5, 6, 7, 8) }, { kind: 'switchover', ...s(9, 10, 11, 12) }] },
      { name: 'aggressive', settings: { ttl: 7, loop_wait: 1, retry_timeout: 3 }, events: [{ kind: 'crash', ...s(1, 3, 5, 7) }, { kind: 'postmaster', ...s(1, 4, 5, 7) }] },
    ] };
    expect(chartEvents(rows, patroni).map((e) => e.series.map((x) => `${x.label}=${x.stats.median}`))).toEqual([
      ['pgha (defaults)=2', 'Patroni 30/10/10=6', 'Patroni 7/1/3=3'], ['pgha (defaults)=2', 'Patroni 7/1/3=4'], ['pgha (defaults)=2', 'Patroni 30/10/10=10'], ['pgha (defaults)=2'],
    ]);
    expect(chartEvents(rows, undefined).every((e) => e.series.length === 1)).toBe(true);
  });
});
