// `npm run demo` as a new user would run it, in its --smoke form: it must bring up etcd, three
// agents and HAProxy, print the connection strings and `pghactl list`, and stop everything; and
// the same with --tls (HTTPS REST API with client certificates, HAProxy checking with check-ssl).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { REPO, postmasterPid } from '../../lab/util.ts';
import { lookupOsUser } from '../../src/postgres/instance.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgha-demo-'));
const pg = lookupOsUser('postgres');
chownSync(dir, pg.uid, pg.gid);

afterAll(() => {
  for (const sub of ['demo', 'demo-tls']) {
    for (const i of [1, 2, 3]) {
      const pid = postmasterPid(join(dir, sub, `node${i}`, 'data'));
      if (pid !== null) process.kill(pid, 'SIGKILL');
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Run `npm run demo -- --smoke [extra]` into dir/<sub> and return its output and exit code. */
async function runDemo(sub: string, extra: string[]): Promise<{ out: string; code: number | null }> {
  const child = spawn(process.execPath, [join(REPO, 'scripts/demo.ts'), '--smoke', ...extra], {
    cwd: REPO, env: { ...process.env, PGHA_DEMO_DIR: join(dir, sub) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { out, code };
}

it('npm run demo brings up a healthy cluster, prints how to connect, and stops cleanly', async () => {
  const { out, code } = await runDemo('demo', []);
  expect(out).toContain('The demo cluster is up.');
  expect(out).toMatch(/-p 5000/);
  expect(out).toMatch(/-p 6432/); // PgBouncer, which the demo has queried through once
  expect(out).toMatch(/Leader/);
  expect(out).toContain('stopped.');
  expect(code, out).toBe(0);
  for (const i of [1, 2, 3]) expect(postmasterPid(join(dir, 'demo', `node${i}`, 'data'))).toBeNull();
}, 180_000);

it('npm run demo -- --tls does the same with the REST API over HTTPS and HAProxy checking with check-ssl', async () => {
  const { out, code } = await runDemo('demo-tls', ['--tls']);
  expect(out).toContain('The demo cluster is up.');
  expect(out).toMatch(/curl -s --cacert \S+ca\.crt --cert \S+admin\.crt --key \S+admin\.key https:\/\/127\.0\.0\.1:8011\/status/);
  expect(out).toMatch(/Leader/);
  expect(out).toContain('stopped.');
  expect(code, out).toBe(0);
  expect(readFileSync(join(dir, 'demo-tls', 'haproxy.cfg'), 'utf8')).toMatch(/check-ssl verify required ca-file \S+ca\.crt crt \S+haproxy\.pem/);
  for (const i of [1, 2, 3]) expect(postmasterPid(join(dir, 'demo-tls', `node${i}`, 'data'))).toBeNull();
}, 180_000);
