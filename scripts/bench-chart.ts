// The benchmark chart (docs/benchmarks.svg), drawn by hand: no chart library. One panel per
// event, one horizontal bar per measured system/setting: the bar runs from 0 to the median, a
// whisker from min to max, a tick at p90, and the figures as text. Each panel has its own linear
// scale (so pgha's half-second switchover stays visible next to a 27 s Patroni failover).

export interface ChartStats { min: number; median: number; p90: number; max: number; n: number }
export interface ChartSeries { label: string; stats: ChartStats }
export interface ChartEvent { title: string; series: ChartSeries[] }

/** What `npm run bench:patroni` stores under "patroni" in benchmarks.json (the parts the chart reads). */
export interface PatroniFigures {
  version: string;
  date: string;
  timings: Array<{ name: string; settings: { ttl: number; loop_wait: number; retry_timeout: number }; events: Array<ChartStats & { kind: string }> }>;
}

export const CHART = { width: 760, left: 190, right: 40, rowHeight: 26, titleHeight: 24, axisHeight: 22, gap: 12, top: 34 } as const;
const PLOT_W = CHART.width - CHART.left - CHART.right;
const COLORS = ['#2b6cb0', '#c05621', '#718096', '#2f855a'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round axis end at or above `max` ms: 1, 2 or 5 times a power of ten. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1000;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const px = (x: number) => Math.round(x * 10) / 10;

/** Render the chart; events without any finite median are left out. */
export function renderChart(events: ChartEvent[], title = 'Write outage per event (seconds, as the client sees it)'): string {
  const shown = events
    .map((e) => ({ ...e, series: e.series.filter((s) => Number.isFinite(s.stats.median)) }))
    .filter((e) => e.series.length > 0);
  const labels = [...new Set(shown.flatMap((e) => e.series.map((s) => s.label)))];
  const color = (label: string) => COLORS[labels.indexOf(label) % COLORS.length] ?? '#000';
  const parts: string[] = [];
  let y = CHART.top;
  for (const e of shown) {
    const scale = niceMax(Math.max(...e.series.map((s) => (Number.isFinite(s.stats.max) ? s.stats.max : s.stats.median))));
    const x = (ms: number) => px(CHART.left + (Math.max(0, ms) / scale) * PLOT_W);
    parts.push(`  <g class="event">`);
    parts.push(`    <text x="10" y="${y + 16}" font-weight="bold">${escapeXml(e.title)}</text>`);
    y += CHART.titleHeight;
    for (const s of e.series) {
      const { min, median, p90, max, n } = s.stats;
      const mid = y + CHART.rowHeight / 2;
      parts.push(`    <text x="${CHART.left - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(s.label)}</text>`);
      parts.push(`    <rect class="bar" x="${CHART.left}" y="${y + 5}" width="${px(x(median) - CHART.left)}" height="${CHART.rowHeight - 10}" fill="${color(s.label)}" fill-opacity="0.75"><title>${escapeXml(`${s.label}: median ${sec(median)}, min ${sec(min)}, p90 ${sec(p90)}, max ${sec(max)}, ${n} runs`)}</title></rect>`);
      if (Number.isFinite(min) && Number.isFinite(max)) {
        parts.push(`    <line class="whisker" x1="${x(min)}" y1="${mid}" x2="${x(max)}" y2="${mid}" stroke="#1a202c" stroke-width="1.5"/>`);
        parts.push(`    <line x1="${x(min)}" y1="${mid - 5}" x2="${x(min)}" y2="${mid + 5}" stroke="#1a202c" stroke-width="1.5"/>`);
        parts.push(`    <line x1="${x(max)}" y1="${mid - 5}" x2="${x(max)}" y2="${mid + 5}" stroke="#1a202c" stroke-width="1.5"/>`);
      }
      if (Number.isFinite(p90)) parts.push(`    <line class="p90" x1="${x(p90)}" y1="${mid - 8}" x2="${x(p90)}" y2="${mid + 8}" stroke="#e53e3e" stroke-width="2"/>`);
      const textX = Math.min(Math.max(x(max), x(median)) + 6, CHART.width - 4);
      const anchor = textX > CHART.width - 160 ? 'end' : 'start';
      const ty = anchor === 'end' ? y - 1 : mid + 4;
      parts.push(`    <text x="${anchor === 'end' ? CHART.width - 4 : textX}" y="${ty}" text-anchor="${anchor}" font-size="11">${escapeXml(`${sec(median)} (${sec(min)}-${sec(max)}, n=${n})`)}</text>`);
      y += CHART.rowHeight;
    }
    // Axis: 0, half and full scale.
    parts.push(`    <line x1="${CHART.left}" y1="${y}" x2="${CHART.left + PLOT_W}" y2="${y}" stroke="#a0aec0"/>`);
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      const ax = px(CHART.left + f * PLOT_W);
      parts.push(`    <line x1="${ax}" y1="${y}" x2="${ax}" y2="${y + 4}" stroke="#a0aec0"/>`);
      parts.push(`    <text x="${ax}" y="${y + 16}" text-anchor="middle" font-size="10" fill="#4a5568">${(f * scale / 1000).toFixed(scale >= 4000 ? 0 : 2)}</text>`);
    }
    y += CHART.axisHeight + CHART.gap;
    parts.push('  </g>');
  }
  const note = labels.some((l) => l.startsWith('Patroni')) ? ' Patroni a/b/c: ttl/loop_wait/retry_timeout.' : '';
  const legend = `  <text x="10" y="${y + 4}" font-size="11" fill="#4a5568">${escapeXml(`bar: median; whisker: min to max; red tick: p90. Each panel has its own scale.${note}`)}</text>`;
  const height = y + 16;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART.width}" height="${height}" viewBox="0 0 ${CHART.width} ${height}" font-family="sans-serif" font-size="12">`,
    `  <rect width="100%" height="100%" fill="#ffffff"/>`,
    `  <text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    ...parts,
    legend,
    `</svg>`,
    '',
  ].join('\n');
}

/** The chart's panels: pgha's events, with Patroni's crash failover and switchover beside them. */
export function chartEvents(rows: Array<ChartStats & { name: string }>, patroni: PatroniFigures | undefined): ChartEvent[] {
  return rows.map((r) => {
    const kind = ['crash', 'postmaster', 'switchover'].find((k) => r.name.startsWith(k)) ?? null;
    const others = kind === null ? [] : (patroni?.timings ?? []).flatMap((t) => {
      const e = t.events.find((x) => x.kind === kind);
      return e === undefined ? [] : [{ label: `Patroni ${t.settings.ttl}/${t.settings.loop_wait}/${t.settings.retry_timeout}`, stats: e }];
    });
    return { title: r.name, series: [{ label: 'pgha (defaults)', stats: r }, ...others] };
  });
}
