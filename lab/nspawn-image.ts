// The root file system of the systemd lab's containers (lab/nspawn.ts): Debian 12 made by
// debootstrap from Debian's packages, with systemd as init, PostgreSQL 15 and the few tools the
// tests call inside. Built once per machine into /var/cache/pgha-lab/debian12-<hash>, where the
// hash covers the package list and the preparation steps below, so a change to either builds a
// new image. The containers never write to it: each one boots from an overlay (nspawn.ts).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CACHE_DIR = '/var/cache/pgha-lab';

/**
 * systemd-sysv: /sbin/init; dbus: systemctl talks to PID 1 through it; iproute2/procps: the tests
 * look inside; pgbackrest: archiving and backups under the unit's sandbox (docs/backup.md).
 */
export const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'procps', 'postgresql-15', 'pgbackrest'];

// Services of the image that must not run: pgha manages PostgreSQL itself (the unit's header
// says so), and the apt/e2scrub timers would only add load and noise to a test.
const MASKED = ['postgresql.service', 'postgresql@.service', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'e2scrub_reap.service', 'fstrim.timer'];
const ENABLED = { 'multi-user.target.wants': ['systemd-networkd.service'] };
// Bumped when prepare() changes in a way the package list does not show.
const PREPARE_VERSION = 1;

export function imageDir(): string {
  const hash = createHash('sha256').update(JSON.stringify({ PACKAGES, MASKED, ENABLED, PREPARE_VERSION })).digest('hex').slice(0, 12);
  return join(CACHE_DIR, `debian12-${hash}`);
}

/** The host's own Debian mirror (deb822 sources); none found: debootstrap's default. */
function hostMirror(): string | null {
  try {
    const text = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const uri = /^URIs:\s*(\S+)/m.exec(text)?.[1];
    return uri?.startsWith('http') ? uri : null;
  } catch {
    return null;
  }
}

function prepare(root: string): void {
  const sys = join(root, 'etc/systemd/system');
  for (const unit of MASKED) { rmSync(join(sys, unit), { force: true }); symlinkSync('/dev/null', join(sys, unit)); }
  for (const [dir, units] of Object.entries(ENABLED)) {
    mkdirSync(join(sys, dir), { recursive: true });
    for (const u of units) { rmSync(join(sys, dir, u), { force: true }); symlinkSync(`/lib/systemd/system/${u}`, join(sys, dir, u)); }
  }
  // postgresql-common made a cluster 15/main at install; pgha initializes its own data directory.
  rmSync(join(root, 'etc/postgresql/15/main'), { recursive: true, force: true });
  rmSync(join(root, 'var/lib/postgresql/15/main'), { recursive: true, force: true });
  // Each container gets its own host name and machine id (systemd makes one at boot).
  rmSync(join(root, 'etc/hostname'), { force: true });
  writeFileSync(join(root, 'etc/machine-id'), '');
  for (const d of ['opt/pgha', 'etc/pgha']) mkdirSync(join(root, d), { recursive: true });
  rmSync(join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
  mkdirSync(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
}

/**
 * The image's directory, built first when missing (debootstrap: about 2-3 minutes here, most of it
 * downloading and unpacking ~130 packages). Builds into a temporary directory renamed at the end,
 * so an interrupted build never leaves a half image under the final name.
 */
export function ensureImage(log: (msg: string) => void = () => undefined): string {
  const dir = imageDir();
  if (existsSync(join(dir, '.pgha-lab-ready'))) return dir;
  for (const tool of ['/usr/sbin/debootstrap', '/usr/bin/systemd-nspawn']) {
    if (!existsSync(tool)) throw new Error(`${tool} not found: apt-get install debootstrap systemd-container`);
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  for (const e of readdirSync(CACHE_DIR)) if (e.includes('.building-')) rmSync(join(CACHE_DIR, e), { recursive: true, force: true });
  const tmp = `${dir}.building-${process.pid}`;
  const mirror = hostMirror();
  log(`building ${dir} with debootstrap (once per machine)`);
  const t0 = performance.now();
  try {
    execFileSync('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, 'bookworm', tmp, ...(mirror ? [mirror] : [])], {
      stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20,
      // debootstrap downloads and unpacks ~130 packages: a few minutes; 15 min is a stalled mirror.
      timeout: 15 * 60_000,
    });
    prepare(tmp);
    writeFileSync(join(tmp, '.pgha-lab-ready'), `${new Date().toISOString()} ${PACKAGES.join(' ')}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  log(`image built in ${Math.round((performance.now() - t0) / 1000)} s`);
  return dir;
}
