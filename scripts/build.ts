// `npm run build`: compile src/ to dist/ (tsconfig.build.json), copy the files tsc does not emit
// (src/agent/fencer.mjs, the status page's assets in src/api/ui/, anything else under src/ that
// is not TypeScript) and write dist/.build-stamp, the time the build started, which bin/entry.js
// compares with the sources' times. Builds into a temporary directory renamed at the end, so an
// interrupted build never leaves a half dist/ that looks current.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

/** Copy every file under `from` that tsc does not compile (.ts) to the same place under `to`. */
function copyAssets(from: string, to: string): number {
  let n = 0;
  for (const e of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    if (e.isDirectory()) { n += copyAssets(src, join(to, e.name)); continue; }
    if (e.name.endsWith('.ts')) continue;
    mkdirSync(to, { recursive: true });
    copyFileSync(src, join(to, e.name));
    n++;
  }
  return n;
}

/** Build into `out` (default: the checkout's dist/; the package builds into its staging tree). */
export function build(log: (msg: string) => void = console.log, out = join(REPO, 'dist')): void {
  const started = Date.now();
  const tmp = `${out}.building-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', tmp], { stdio: 'inherit' });
    const assets = copyAssets(join(REPO, 'src'), tmp);
    writeFileSync(join(tmp, '.build-stamp'), `${started}\n`);
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    log(`build: ${out} compiled in ${((Date.now() - started) / 1000).toFixed(1)} s (${assets} asset files copied)`);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) build();
