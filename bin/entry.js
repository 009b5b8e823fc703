// Which code the shims (bin/pgha.js, bin/pghactl.js) load: the compiled JavaScript in dist/
// (`npm run build`, shipped by the Debian package) or the TypeScript sources in src/ (a checkout,
// run by Node's type stripping).
//  - No src/ beside bin/ (the installed package): dist/.
//  - A checkout: dist/ only when it is up to date, i.e. dist/.build-stamp exists and no file or
//    directory under src/ changed since the build started (the stamp holds that time; directory
//    times catch added, removed and renamed files). Otherwise src/: an edit, a `git checkout` or
//    a `git pull` after `npm run build` never runs old code; it only costs the type stripper
//    until the next build. The walk stats about 150 entries: well under a millisecond.
//  - PGHA_ENTRY=src or PGHA_ENTRY=dist decides instead (a test of the sources' own behaviour).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);

/** The newest mtime (ms) of `dir` and everything below it. */
function newest(dir) {
  let max = statSync(dir).mtimeMs;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    max = Math.max(max, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return max;
}

/** True when dist/ is what should run (see above). */
export function distIsCurrent(root = ROOT) {
  const src = new URL('src', root).pathname;
  const stamp = new URL('dist/.build-stamp', root).pathname;
  if (!existsSync(src)) return true;
  if (!existsSync(stamp)) return false;
  const built = Number(readFileSync(stamp, 'utf8').trim());
  return Number.isFinite(built) && newest(src) < built;
}

/** The module to import for `name` ('agent/main', 'cli/main'): dist/NAME.js or src/NAME.ts. */
export function entry(name) {
  const forced = process.env.PGHA_ENTRY;
  if (forced === 'src' || forced === 'dist') return new URL(forced === 'dist' ? `dist/${name}.js` : `src/${name}.ts`, ROOT).href;
  return distIsCurrent() ? new URL(`dist/${name}.js`, ROOT).href : new URL(`src/${name}.ts`, ROOT).href;
}
