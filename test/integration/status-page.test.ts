// The status page in a real headless Chromium (Debian's chromium, driven over the DevTools
// protocol): GET /ui on one agent of a 3-node cluster renders the members and the leader; after
// `pghactl switchover --force` the same page, never reloaded, shows the new leader, the event and
// the recorded promotion. PGHA_UI_SCREENSHOT=docs/status-page.png also saves the screenshot there.
import { execFile } from 'node:child_process';
import { readFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../support/chromium.ts';
import { TestCluster } from '../../lab/loopback.ts';
import { REPO, waitFor } from '../../lab/util.ts';

const cluster = new TestCluster({ ttl: 3 });
let browser: Browser | null = null;

function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // A switchover with --wait returns once the new leader answers /primary: seconds; 60 s bounds a hang.
    execFile(process.execPath, [`${REPO}bin/pghactl.js`, '-c', cluster.nodes[0]!.configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

const text = (id: string) => browser!.eval<string>(`document.getElementById(${JSON.stringify(id)}).textContent`);
const rows = (table: string) => browser!.eval<string[][]>(
  `[...document.querySelectorAll('#${table} tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent))`);

beforeAll(async () => {
  await cluster.startEtcd();
  cluster.startAll();
  // Bootstrap plus two clones: seconds when idle; 110 s (inside the hook timeout) covers a loaded 2-core machine.
  await cluster.waitHealthy(110_000);
  browser = await Browser.launch(1280, 900);
});
afterAll(async () => {
  await browser?.close();
  await cluster.destroy();
});

describe('status page (GET /ui) in headless Chromium', () => {
  it('shows the leader, then the new leader after a switchover without a reload', async () => {
    const b = browser!;
    const first = (await cluster.primary())!.name;
    const viewer = cluster.nodes.find((n) => n.name !== first)!; // the page of a standby's agent
    await b.goto(`http://127.0.0.1:${viewer.apiPort}/ui`);
    // The page polls once a second: its first render comes within a second or two of loading.
    await waitFor('the page shows the leader', async () => (await text('leader').catch(() => '')) === first, 15_000, 200);
    expect(await text('scope')).toBe('itest');
    expect(await text('pause')).toBe('not paused');
    expect(await text('served-by')).toContain(viewer.name);
    // Standbys publish their position each loop (0.5 s): lag is known within a few polls; 15 s for a loaded host.
    const members = await waitFor('three members with lag', async () => {
      const r = await rows('members');
      return r.length === 3 && r.filter((c) => c[1] === 'replica' && c[6] !== '–').length === 2 ? r : null;
    }, 15_000, 200);
    expect(members.map((c) => c[0])).toEqual(['node1', 'node2', 'node3']);
    expect(members.find((c) => c[0] === first)?.[1]).toBe('leader');
    // Two polls with a lag draw a line; 10 s for a loaded host.
    await waitFor('a lag line per standby', async () =>
      (await b.eval<number>('document.querySelectorAll("#lag-chart polyline").length')) >= 2, 10_000, 200);

    // A marker in the page's memory: if the page were reloaded it would be gone.
    await b.eval('window.__pghaMarker = 42');
    const r = await ctl('switchover', '--force');
    expect(r.code, r.stderr).toBe(0);
    const second = (await cluster.primary())!.name;
    expect(second).not.toBe(first);
    // The agent's snapshot sees the new key within a loop; the page within a poll after that.
    await waitFor('the page shows the new leader', async () => (await text('leader')) === second, 15_000, 200);
    expect(await b.eval<number>('window.__pghaMarker')).toBe(42);
    expect(await text('events')).toContain(`new leader: ${second} (was ${first})`);
    // The promotion is recorded in /history after the new leader took the key; the page reads it again.
    const history = await waitFor('the promotion in the history table', async () => {
      const h = await rows('history');
      return h.some((c) => c[1] === second && c[2] === 'switchover') ? h : null;
    }, 20_000, 250);
    expect(history[0]?.[1]).toBe(second);

    // Some writes for the chart to show (standbys a little behind for a moment), a few seconds
    // of points after the switchover, then a picture of it.
    const primary = (await cluster.primary())!;
    await cluster.query(primary, 'create table if not exists ui_load (x int)');
    for (let i = 0; i < 8; i++) {
      await cluster.query(primary, 'insert into ui_load select generate_series(1, 100000)');
      await new Promise((res) => setTimeout(res, 500));
    }
    await new Promise((res) => setTimeout(res, 2000));
    const shot = join(cluster.dir, 'status-page.png');
    await b.screenshot(shot);
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    const keep = process.env['PGHA_UI_SCREENSHOT'];
    if (keep) copyFileSync(shot, join(REPO, keep));
  });
});
