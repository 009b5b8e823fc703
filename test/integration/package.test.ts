// The Debian package (`npm run package`, scripts/package.ts), built from this checkout and
// installed with dpkg into a Debian 12 container booted with systemd (the lab of
// lab/nspawn.ts, with no checkout mounted): a clean host that has PostgreSQL 15 and
// systemd but no Node, npm or npx at all, so anything pgha needs that the package lacks fails here.
// The installed unit (/lib/systemd/system/pgha.service) runs a 1-member cluster against an etcd
// on the host; pghactl runs from /usr/bin; then dpkg --purge removes it all again.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePackage, hostArch } from '../../scripts/package.ts';
import { httpStatus, sleep } from '../../lab/util.ts';
import { NspawnLab, labLeftovers, type Machine } from '../../lab/nspawn.ts';
import { allocatePorts } from '../../lab/ports.ts';

const log = (msg: string) => console.log(`[package] ${msg}`);
// Ports of this test: the host's etcd on the lab bridge (allocated: client, peer). The member's
// REST API (8008) and PostgreSQL (5432) are the installed package's defaults, part of what is
// tested; they listen inside the container's own network namespace.
const lab = new NspawnLab({ nodes: 1, checkout: false, etcdPort: allocatePorts(2), log });
const [n1] = lab.machines as [Machine];
const out = mkdtempSync('/var/tmp/pgha-package-test-');
/** A login-less environment: PATH as on a Debian host, nothing inherited from npm or vitest. */
const ENV = ['env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'];
const inside = (args: string[]) => lab.exec(n1, [...ENV, ...args], true);
/** What must never appear on the CLI's or the agent's output: npm's voice, or a Node that is not 24. */
const NPM_NOISE = /npm (warn|WARN|ERR)|EBADENGINE|needs Node 24/;

beforeAll(async () => {
  // Measured here: 60-90 s (tsc, npm ci --omit=dev of 125 packages with the 120 MB Node binary,
  // dpkg-deb), most of it on a loaded machine; the lab's boot adds ~10 s (its image is built once
  // per machine, shared with systemd-unit.test.ts: ~3 min more on a fresh machine).
  const t0 = performance.now();
  const { deb, seconds } = makePackage({ arch: hostArch(), out, log });
  log(`built in ${seconds.toFixed(1)} s`);
  await lab.start();
  // Not /tmp: the container has its own tmpfs there.
  copyFileSync(deb, join(n1.dir, 'root/var/tmp/pgha.deb'));
  log(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 900_000);

afterAll(async () => {
  await lab.destroy();
  rmSync(out, { recursive: true, force: true });
  expect(labLeftovers()).toEqual([]);
}, 120_000);

describe('the Debian package', () => {
  it('installs with dpkg on a host without Node, and starts nothing', () => {
    expect(inside(['sh', '-c', 'command -v node || command -v nodejs || command -v npm || command -v npx']).stdout).toBe('');
    const r = inside(['dpkg', '-i', '/var/tmp/pgha.deb']);
    expect(r.code, r.stderr).toBe(0);
    // The wrappers, the unit where the package manager's units go, the example conffile.
    for (const f of ['/usr/bin/pgha', '/usr/bin/pghactl', '/lib/systemd/system/pgha.service', '/etc/pgha/pgha.yml.example', '/opt/pgha/dist/agent/main.js', '/opt/pgha/dist/witness/main.js', '/opt/pgha/bin/pgha-fencer.pl', '/opt/pgha/bin/notify-socket.pl', '/opt/pgha/dist/api/ui/index.html']) {
      expect(existsSync(join(n1.dir, 'root', f)), f).toBe(true);
    }
    // Compiled code only, and no build or test tooling.
    for (const f of ['/opt/pgha/src', '/opt/pgha/node_modules/typescript', '/opt/pgha/node_modules/vitest', '/opt/pgha/node_modules/@types/pg']) {
      expect(existsSync(join(n1.dir, 'root', f)), f).toBe(false);
    }
    expect(inside(['systemctl', 'is-enabled', 'pgha']).stdout.trim()).toBe('disabled');
    expect(inside(['systemctl', 'is-active', 'pgha']).stdout.trim()).toBe('inactive');
    expect(inside(['/opt/pgha/node_modules/.bin/node', '--version']).stdout).toMatch(/^v24\./);
  });

  it('pghactl --version and --help answer from /usr/bin, with no npm warning', () => {
    const v = inside(['pghactl', '--version']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
    expect(v.stderr).toBe('');
    const h = inside(['pghactl', '--help']);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toContain('pghactl switchover');
    expect(h.stderr).toBe('');
    // How long --help takes from the installed package (median of 5, logged for docs/performance.md).
    const ms: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = inside(['sh', '-c', 's=$(date +%s%N); pghactl --help >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))']);
      ms.push(Number(r.stdout.trim()));
    }
    log(`pghactl --help in the container: ${ms.sort((a, b) => a - b)[2]} ms (median of 5)`);
  });

  it('the installed unit runs the agent: a 1-member cluster with a primary', async () => {
    const start = inside(['systemctl', 'start', 'pgha']);
    expect(start.code, `${start.stderr}\n${lab.journal(n1)}`).toBe(0);
    // Type=notify: started means the REST API is up; the member then initializes PostgreSQL and
    // takes the leader key: a few seconds here, 60 s covers initdb on a loaded machine.
    const end = performance.now() + 60_000;
    while ((await httpStatus(`http://${n1.ip}:8008/primary`, 2000)) !== 200) {
      if (performance.now() > end) throw new Error(`no primary:\n${lab.journal(n1)}`);
      await sleep(250);
    }
    // The unit's main process is /opt/pgha's Node 24, started through the Perl launcher.
    const agent = lab.unitProcesses(n1).find((p) => p.cmd.includes('/opt/pgha/bin/pgha.js'));
    expect(agent?.cmd).toMatch(/^\/opt\/pgha\/node_modules\/\.bin\/node --max-semi-space-size=1 \/opt\/pgha\/bin\/pgha\.js --config \/etc\/pgha\/pgha\.yml/);
    const list = inside(['pghactl', '-c', '/etc/pgha/pgha.yml', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/n1\b.*Leader/);
    expect(list.stderr).toBe('');
    expect(lab.journal(n1)).not.toMatch(NPM_NOISE);
  });

  it('dpkg --purge stops the agent and removes the package, leaving the configuration', () => {
    const r = inside(['dpkg', '--purge', 'pgha']);
    expect(r.code, r.stderr).toBe(0);
    expect(inside(['systemctl', 'is-active', 'pgha']).stdout.trim()).not.toBe('active');
    expect(lab.unitProcesses(n1)).toEqual([]);
    for (const f of ['/usr/bin/pgha', '/usr/bin/pghactl', '/lib/systemd/system/pgha.service', '/etc/pgha/pgha.yml.example', '/opt/pgha/dist', '/opt/pgha/node_modules', '/var/cache/pgha']) {
      expect(existsSync(join(n1.dir, 'root', f)), f).toBe(false);
    }
    // The administrator's file (with its passwords) is not the package's: it stays.
    expect(existsSync(join(n1.dir, 'root/etc/pgha/pgha.yml'))).toBe(true);
  });
});
