// HAProxy configuration rendering, checked by HAProxy itself.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { renderHaproxyConfig } from '../../src/proxy/haproxy.ts';

const input = {
  readWritePort: 5000, readOnlyPort: 5001, checkIntervalMs: 500,
  members: [1, 2, 3].map((i) => ({ name: `node${i}`, pgHost: '127.0.0.1', pgPort: 5440 + i, apiHost: '127.0.0.1', apiPort: 8010 + i })),
};

it('routes writes by /primary and reads by /replica, dropping sessions of a demoted node', () => {
  const cfg = renderHaproxyConfig(input);
  expect(cfg).toMatch(/listen primary[\s\S]*option httpchk GET \/primary/);
  expect(cfg).toMatch(/listen replicas[\s\S]*option httpchk GET \/replica/);
  expect(cfg.match(/default-server .*on-marked-down shutdown-sessions/g)).toHaveLength(2);
  expect(cfg.match(/server node2 127\.0\.0\.1:5442 .*check port 8012/g)).toHaveLength(2);
  expect(cfg).not.toContain('{{');
});

it('refuses values that could inject configuration', () => {
  expect(() => renderHaproxyConfig({ ...input, members: [{ ...input.members[0]!, name: 'x\n  bad' }] })).toThrow(/unsafe value/);
});

it.skipIf(!existsSync('/usr/sbin/haproxy'))('is valid for haproxy -c', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgha-haproxy-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, renderHaproxyConfig(input));
    const r = await promisify(execFile)('/usr/sbin/haproxy', ['-c', '-f', file]);
    expect(r.stdout + r.stderr).toContain('Configuration file is valid');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
