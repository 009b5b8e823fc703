// The import direction of the repository: scripts and tests -> lab -> src. Product scripts
// (scripts/) never reach into test/, the lab never into test/ or scripts/, and src/ into none of
// them; the .deb (scripts/package.ts) ships neither lab/ nor test/.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(join(ROOT, p)).isDirectory()) return files(p);
    return /\.(ts|mjs|js)$/.test(f) ? [p] : [];
  });
}

/** Every relative module a file imports (static, dynamic and re-exports), as a repository path. */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)].map((m) => m[1]!);
  return specs.map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)));
}

function offenders(dir: string, forbidden: string[]): string[] {
  return files(dir).flatMap((f) => imports(f).filter((t) => forbidden.some((d) => t === d || t.startsWith(`${d}/`))).map((t) => `${f} -> ${t}`));
}

describe('import direction: scripts and tests -> lab -> src', () => {
  it('finds the imports it checks (the scan itself works)', () => {
    expect(imports('scripts/demo.ts').some((t) => t.startsWith('lab/'))).toBe(true);
    expect(imports('test/support/cluster.ts')).toContain('lab/loopback.ts');
  });
  it('nothing under scripts/ imports from test/', () => {
    expect(offenders('scripts', ['test'])).toEqual([]);
  });
  it('nothing under lab/ imports from test/ or scripts/', () => {
    expect(offenders('lab', ['test', 'scripts'])).toEqual([]);
  });
  it('nothing under src/ imports from lab/, test/ or scripts/', () => {
    expect(offenders('src', ['lab', 'test', 'scripts'])).toEqual([]);
  });
  it('the package copies neither lab/ nor test/', () => {
    const copy = /const COPY = (\[[^\]]*\])/.exec(readFileSync(join(ROOT, 'scripts/package.ts'), 'utf8'))?.[1];
    expect(copy).toBeDefined();
    const entries = JSON.parse(copy!.replaceAll("'", '"')) as string[];
    expect(entries.filter((e) => /^(lab|test)(\/|$)/.test(e))).toEqual([]);
  });
});
