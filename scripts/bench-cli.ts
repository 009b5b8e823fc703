// npm run bench:cli -- [--runs N] [--before GIT_REF] [--out docs/benchmarks-cli.md]
// How long pghactl takes to answer when it talks to no cluster: `--help`, `list --help` and
// `version`, each run N times (default 10, interleaved), wall time from spawn to exit, median and range.
// Variants: the installed package (`npm run package`, extracted with dpkg-deb -x into a scratch
// directory and run as its /usr/bin/pghactl runs it: its own Node 24 on bin/pghactl.js, which finds
// no src/ and loads dist/), the checkout's compiled dist/, the checkout's sources (type stripping),
// `npx pghactl` (npm first, on whatever Node runs npm), and every command module loaded at once
// (what `--help` loaded before src/cli/commands.ts: the completion path still does). Run it under
// the integration lock (HELPERS.md): other processes on the 2 cores change every figure.
// --before REF adds the same rows for an older commit's sources (git archive of src/, bin/ and
// package.json into a scratch directory, with this checkout's node_modules): before and after in
// one run, on the same machine load.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stats } from './bench-lib.ts';
import { build } from './build.ts';
import { hostArch, makePackage } from './package.ts';

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const args = parseArgs({ options: { runs: { type: 'string', default: '10' }, before: { type: 'string' }, out: { type: 'string', default: 'docs/benchmarks-cli.md' } } }).values;
const RUNS = Number(args.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${args.runs}`);

/** Wall time of one run of `argv` (ms); it must exit 0. */
function timeOnce(argv: string[], env: NodeJS.ProcessEnv = process.env, cwd = REPO): number {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr}`);
  return ms;
}

/**
 * RUNS rounds; each round runs every job once, in turn. Interleaved, so that a burst of load from
 * elsewhere on the machine falls on every variant alike rather than on whichever ran then.
 */
function timeRounds(jobs: Array<{ argv: string[]; env?: NodeJS.ProcessEnv; cwd?: string }>): number[][] {
  const ms = jobs.map(() => [] as number[]);
  for (let r = 0; r < RUNS; r++) jobs.forEach((j, i) => ms[i]!.push(timeOnce(j.argv, j.env, j.cwd)));
  return ms;
}

const scratch = mkdtempSync('/var/tmp/pgha-bench-cli-');
// The "checkout, dist/" row builds the checkout's dist/; a checkout that had none gets none back.
const hadDist = existsSync(join(REPO, 'dist'));
try {
  const { deb } = makePackage({ arch: hostArch(), out: scratch, log: () => undefined });
  execFileSync('dpkg-deb', ['-x', deb, join(scratch, 'root')]);
  build(() => undefined);
  const node = process.execPath;
  const opt = join(scratch, 'root/opt/pgha');
  // A shell's PATH, without the node_modules/.bin that `npm run` puts first: npx then runs on the
  // system's Node, as an operator's `npx pghactl` does.
  const shellPath = (process.env['PATH'] ?? '').split(':').filter((p) => !p.includes('node_modules')).join(':');
  const variants: Array<{ name: string; cmd: (sub: string[]) => string[]; env?: NodeJS.ProcessEnv; cwd?: string }> = [
    { name: 'installed package (/usr/bin/pghactl)', cmd: (s) => [join(opt, 'node_modules/.bin/node'), join(opt, 'bin/pghactl.js'), ...s] },
    { name: 'checkout, dist/ (`npm run build`)', cmd: (s) => [node, join(REPO, 'dist/cli/main.js'), ...s] },
    { name: 'checkout, src/ (type stripping)', cmd: (s) => [node, join(REPO, 'src/cli/main.ts'), ...s] },
    { name: '`npx pghactl` in the checkout (npm on the system\'s Node)', cmd: (s) => ['npx', '--no-install', 'pghactl', ...s], env: { ...process.env, PATH: shellPath } },
  ];
  if (args.before !== undefined) {
    const old = join(scratch, 'before');
    mkdirSync(old);
    execFileSync('sh', ['-c', 'git -C "$1" archive "$2" src bin package.json | tar -x -C "$3"', 'sh', REPO, args.before, old]);
    symlinkSync(realpathSync(join(REPO, 'node_modules')), join(old, 'node_modules'));
    const ref = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', args.before], { encoding: 'utf8' }).trim();
    variants.push(
      { name: `before (${ref}), checkout src/`, cmd: (s) => [node, join(old, 'bin/pghactl.js'), ...s], cwd: old },
      { name: `before (${ref}), \`npx pghactl\``, cmd: (s) => ['npx', '--no-install', 'pghactl', ...s], env: { ...process.env, PATH: shellPath }, cwd: old },
    );
  }
  const subs = [['--help'], ['list', '--help'], ['version']];
  const installedNode = join(opt, 'node_modules/.bin/node');
  const jobs = [
    ...variants.flatMap((v) => subs.map((sub) => ({ argv: v.cmd(sub), ...(v.env ? { env: v.env } : {}), ...(v.cwd ? { cwd: v.cwd } : {}) }))),
    // Every command module at once, from the installed package: the shell completion's path, and
    // what `--help` cost before commands.ts (the modules are the same).
    { argv: [installedNode, join(opt, 'bin/pghactl.js'), '--get-yargs-completions', 'list'] },
    { argv: [node, '-e', '0'] },
  ];
  const all = timeRounds(jobs).map(stats);
  const rows = variants.map((v, i) => `| ${v.name} | ${subs.map((_, k) => all[i * subs.length + k]!).map((c) => `**${Math.round(c.median)}** (${Math.round(c.min)}-${Math.round(c.max)})`).join(' | ')} |`);
  console.log(rows.join('\n'));
  const eager = all[all.length - 2]!;
  const bare = all[all.length - 1]!;
  const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const npmNode = execFileSync('sh', ['-c', 'node --version'], { encoding: 'utf8', env: { ...process.env, PATH: shellPath } }).trim();
  const text = `# Benchmarks: pghactl start-up

Produced by \`npm run bench:cli -- --runs ${RUNS}${args.before === undefined ? '' : ` --before ${args.before}`}\` on ${new Date().toISOString().slice(0, 10)}, under the integration lock.
Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}; pghactl on Node ${nodeVersion}
(npm itself on the system's Node ${npmNode}). Each cell: median wall time in ms of ${RUNS} runs, from spawn to exit,
with the fastest and slowest in brackets; the runs are interleaved (each round runs every cell once). No cluster is involved (\`version\` without -c finds no /etc/pgha/pgha.yml).

| pghactl | \`--help\` | \`list --help\` | \`version\` |
|---|---|---|---|
${rows.join('\n')}

Every command module loaded at once (\`--get-yargs-completions list\`, installed package; what \`--help\`
loaded before src/cli/commands.ts): median **${Math.round(eager.median)}** ms (${Math.round(eager.min)}-${Math.round(eager.max)}).
Node alone (\`node -e 0\`): median ${Math.round(bare.median)} ms.

\`list --help\` and \`version\` load their command's module, and with it etcd3, zod and yaml (the
cluster context); \`--help\` loads yargs and the command names only. See docs/performance.md#pghactl-start-up.
`;
  writeFileSync(resolve(REPO, args.out!), text);
  console.log(`wrote ${args.out}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
  if (!hadDist) rmSync(join(REPO, 'dist'), { recursive: true, force: true });
}
