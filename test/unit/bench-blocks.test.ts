// The marked sections of docs/benchmarks.md that other scripts write (bench:patroni, bench:systemd):
// replaced in place when present, appended when not, and found again for `npm run bench` to keep.
import { describe, expect, it } from 'vitest';
import { SYSTEMD_BEGIN, SYSTEMD_END, patroniBlock, systemdBlock, withPatroniBlock, withSystemdBlock } from '../../scripts/bench-lib.ts';

describe('marked benchmark sections', () => {
  it('appends a systemd section, then replaces it, leaving the Patroni one alone', () => {
    const base = withPatroniBlock('# Benchmarks\n\ntext\n', '## Patroni\nP');
    const once = withSystemdBlock(base, '## systemd\nfirst');
    expect(systemdBlock(once)).toBe(`${SYSTEMD_BEGIN}\n## systemd\nfirst\n${SYSTEMD_END}`);
    const twice = withSystemdBlock(once, '## systemd\nsecond');
    expect(twice).not.toContain('first');
    expect(twice.split(SYSTEMD_BEGIN).length).toBe(2);
    expect(patroniBlock(twice)).toBe(patroniBlock(base));
  });

  it('finds no block in a text without markers', () => {
    expect(systemdBlock('# Benchmarks\n')).toBe('');
  });
});
