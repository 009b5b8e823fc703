// pg_lsn text <-> byte positions, differences and WAL file timelines.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { formatLsn, lsnDiff, parseLsn, timelineOfWalFile } from '../../src/postgres/lsn.ts';

describe('parseLsn / formatLsn', () => {
  it.each([
    ['0/0', 0],
    ['0/3000060', 0x3000060],
    ['16/B374D848', 0x16 * 2 ** 32 + 0xb374d848],
    ['1/0', 2 ** 32],
    ['1FFFFF/FFFFFFFF', Number.MAX_SAFE_INTEGER],
  ])('%s is %d bytes', (text, pos) => {
    expect(parseLsn(text)).toBe(pos);
    expect(formatLsn(pos)).toBe(text);
  });

  it('accepts lower case and surrounding blanks, prints upper case', () => {
    expect(formatLsn(parseLsn(' 16/b374d848\n'))).toBe('16/B374D848');
  });

  it.each(['', 'nope', '0/', '/0', '0/123456789', '123456789/0', '-1/0', '0x1/0', '1/2/3'])('refuses %j', (text) => {
    expect(() => parseLsn(text)).toThrow(/not a pg_lsn/);
  });

  it('refuses positions it cannot hold exactly', () => {
    expect(() => parseLsn('FFFFFFFF/FFFFFFFF')).toThrow(RangeError);
    expect(() => formatLsn(-1)).toThrow(RangeError);
    expect(() => formatLsn(1.5)).toThrow(RangeError);
  });

  test.prop([fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })])('round-trips every position', (n) => {
    expect(parseLsn(formatLsn(n))).toBe(n);
  });
});

describe('lsnDiff', () => {
  it('is a - b in bytes, like pg_lsn subtraction', () => {
    expect(lsnDiff('0/3000060', '0/3000000')).toBe(0x60);
    expect(lsnDiff('1/0', '0/FFFFFFFF')).toBe(1);
    expect(lsnDiff('0/10', '0/20')).toBe(-16);
    expect(lsnDiff(100, '0/64')).toBe(0);
  });

  test.prop([fc.nat(), fc.nat()])('agrees with number subtraction', (a, b) => {
    expect(lsnDiff(formatLsn(a), formatLsn(b))).toBe(a - b);
  });
});

describe('timelineOfWalFile', () => {
  it('reads the first eight hex digits', () => {
    expect(timelineOfWalFile('000000010000000000000001')).toBe(1);
    expect(timelineOfWalFile('0000000A0000001600000099')).toBe(10);
    expect(() => timelineOfWalFile('00000001.history')).toThrow(/WAL file name/);
  });
});
