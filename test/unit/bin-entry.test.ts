// bin/entry.js: the shims run dist/ only when it is current, so a checkout never runs stale code.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain JavaScript module of the shims, without type declarations
import { distIsCurrent } from '../../bin/entry.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

/** A fake checkout: src/agent/main.ts written at `srcTime`, and dist/ stamped at `built` (or none). */
function checkout(srcTime: number, built: number | null, withSrc = true): URL {
  const root = mkdtempSync(join(tmpdir(), 'pgha-entry-'));
  dirs.push(root);
  if (withSrc) {
    mkdirSync(join(root, 'src/agent'), { recursive: true });
    writeFileSync(join(root, 'src/agent/main.ts'), '');
    for (const p of ['src/agent/main.ts', 'src/agent', 'src']) utimesSync(join(root, p), srcTime / 1000, srcTime / 1000);
  }
  if (built !== null) {
    mkdirSync(join(root, 'dist'), { recursive: true });
    writeFileSync(join(root, 'dist/.build-stamp'), `${built}\n`);
  }
  return pathToFileURL(`${root}/`);
}

describe('bin/entry.js: dist/ or src/', () => {
  const t = Date.parse('2026-11-30T07:00:00Z');
  it('the installed package (no src/) runs dist/', () => {
    expect(distIsCurrent(checkout(t, t, false))).toBe(true);
  });
  it('a checkout without a build runs src/', () => {
    expect(distIsCurrent(checkout(t, null))).toBe(false);
  });
  it('a checkout built after its last change runs dist/', () => {
    expect(distIsCurrent(checkout(t, t + 1000))).toBe(true);
  });
  it('a source changed after the build started: src/', () => {
    expect(distIsCurrent(checkout(t + 1000, t))).toBe(false);
  });
  it('a file added after the build (its directory changed): src/', () => {
    const root = checkout(t, t + 1000);
    writeFileSync(new URL('src/agent/new.ts', root), '');
    utimesSync(new URL('src/agent/new.ts', root), t / 1000, t / 1000);
    expect(distIsCurrent(root)).toBe(false);
  });
});

describe('bin/entry.js: PGHA_ENTRY decides when set', () => {
  afterEach(() => { delete process.env['PGHA_ENTRY']; });
  it('src or dist, whatever dist/ looks like', async () => {
    // @ts-expect-error: a plain JavaScript module of the shims, without type declarations
    const { entry } = await import('../../bin/entry.js');
    process.env['PGHA_ENTRY'] = 'src';
    expect(entry('agent/main')).toMatch(/\/src\/agent\/main\.ts$/);
    process.env['PGHA_ENTRY'] = 'dist';
    expect(entry('agent/main')).toMatch(/\/dist\/agent\/main\.js$/);
  });
});
