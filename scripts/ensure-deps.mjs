// Runs before `npm test` and `npm run demo` (npm pre-scripts), on whatever Node runs npm:
// (1) `npm ci` when node_modules is missing or older than package-lock.json;
// (2) the Debian packages the tests or the demo need, via apt-get when root;
// (3) the postgres OS user, and read access for it to this checkout (agents run as postgres).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const mode = process.argv[2] === '--demo' ? 'demo' : 'test';
const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const isRoot = process.getuid?.() === 0;
const say = (msg) => console.log(`ensure-deps: ${msg}`);
const die = (msg) => { console.error(`ensure-deps: ${msg}`); process.exit(1); };

function ensureNodeModules() {
  const stamp = resolve(root, 'node_modules/.pgha-lock-sha256');
  const want = createHash('sha256').update(readFileSync(resolve(root, 'package-lock.json'))).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) return;
  say('node_modules missing or stale: running npm ci');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) die('npm ci failed');
  writeFileSync(stamp, `${want}\n`);
}

const PACKAGES = {
  // python3 and systemd (its /usr/bin/systemd-notify): the tests stand in for systemd's notify
  // socket and watchdog with small python listeners, and the agent notifies through systemd-notify.
  // openssl: the TLS tests and `npm run demo -- --tls` make a throw-away CA (lab/pki.ts).
  // chromium: the status page (GET /ui) is tested in a real headless browser.
  // debootstrap and systemd-container (systemd-nspawn): the systemd lab (lab/nspawn.ts)
  // builds a Debian 12 image once and boots containers with systemd as PID 1 from it.
  // prometheus: the monitoring test scrapes the agents with it and checks the alert rules with promtool.
  // pgbackrest: WAL archiving, backups and point-in-time recovery (test/integration/backup*.test.ts).
  // pgbouncer: the demo's pooler on port 6432 and the zero-error switchover test (docs/pgbouncer.md).
  // patroni: its patronictl (3.0.2 on Debian 12) runs against a pgha cluster in the patronictl test.
  test: ['postgresql-15', 'etcd-server', 'etcd-client', 'haproxy', 'iproute2', 'iptables', 'util-linux', 'python3', 'systemd', 'openssl', 'chromium', 'debootstrap', 'systemd-container', 'prometheus', 'pgbouncer', 'pgbackrest', 'patroni'],
  demo: ['postgresql-15', 'etcd-server', 'etcd-client', 'haproxy', 'openssl', 'pgbouncer'],
};

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function ensurePackages() {
  const missing = PACKAGES[mode].filter((p) => !installed(p));
  if (missing.length === 0) return;
  const cmd = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (!isRoot) die(`missing Debian packages: ${missing.join(', ')}. As root, run: ${cmd}`);
  say(`installing ${missing.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env }).status !== 0) die('apt-get update failed');
  if (spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env }).status !== 0) die('apt-get install failed');
  // Debian's package starts its own prometheus service where systemd runs: the tests start
  // their own on other ports and do not use it; stop it so it holds no port and no CPU.
  if (missing.includes('prometheus') && spawnSync('systemctl', ['is-active', '--quiet', 'prometheus']).status === 0) {
    spawnSync('systemctl', ['disable', '--now', 'prometheus'], { stdio: 'inherit' });
  }
}

function ensurePostgresUser() {
  if (readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.startsWith('postgres:'))) return;
  if (!isRoot) die('the postgres OS user does not exist; create it as root (useradd --system postgres)');
  say('creating the postgres OS user');
  execFileSync('useradd', ['--system', '--home-dir', '/var/lib/postgresql', '--shell', '/bin/bash', 'postgres']);
}

/** The agents run as postgres and load this checkout: every parent directory needs o+x. */
function ensureTraversable() {
  for (let dir = root; ; dir = dirname(dir)) {
    const m = statSync(dir).mode;
    if ((m & 0o001) === 0) {
      if (!isRoot) die(`the postgres user cannot enter ${dir}; run: chmod o+x ${dir}`);
      chmodSync(dir, m | 0o001);
      say(`chmod o+x ${dir} (so the postgres user can run the agents from this checkout)`);
    }
    if (dir === '/') break;
  }
}

ensureNodeModules();
ensurePackages();
ensurePostgresUser();
ensureTraversable();
