// `npm run demo` as a new user would run it, in its --smoke form: it must bring up etcd, three
// agents and HAProxy, print the connection strings and `pghactl list`, and stop everything.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { REPO, postmasterPid } from '../support/cluster.ts';
import { lookupOsUser } from '../../src/postgres/instance.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgha-demo-'));
const pg = lookupOsUser('postgres');
chownSync(dir, pg.uid, pg.gid);

afterAll(() => {
  for (const i of [1, 2, 3]) {
    const pid = postmasterPid(join(dir, 'demo', `node${i}`, 'data'));
    if (pid !== null) process.kill(pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

it('npm run demo brings up a healthy cluster, prints how to connect, and stops cleanly', async () => {
  const child = spawn(process.execPath, [join(REPO, 'scripts/demo.ts'), '--smoke'], {
    cwd: REPO, env: { ...process.env, PGHA_DEMO_DIR: join(dir, 'demo') }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(out).toContain('The demo cluster is up.');
  expect(out).toMatch(/-p 5000/);
  expect(out).toMatch(/Leader/);
  expect(out).toContain('stopped.');
  expect(code, out).toBe(0);
  for (const i of [1, 2, 3]) expect(postmasterPid(join(dir, 'demo', `node${i}`, 'data'))).toBeNull();
}, 180_000);
