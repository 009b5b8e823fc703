// Every error code is documented in docs/errors.md, and the docs name no code that does not exist.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, PgHaError, describeError, isPgHaError } from '../../src/errors.ts';

const read = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8');
const tokens = (text: string) => new Set(text.match(/PGHA_[A-Z_]+/g) ?? []);
const codes = Object.keys(ERROR_CODES);

describe('docs/errors.md', () => {
  const doc = read('docs/errors.md');
  const rows = new Set([...doc.matchAll(/^\| `(PGHA_[A-Z_]+)` \|/gm)].map((m) => m[1]));

  it('has a table row for every code in src/errors.ts', () => {
    expect(codes.filter((c) => !rows.has(c))).toEqual([]);
  });

  it('names no code that src/errors.ts lacks', () => {
    expect([...tokens(doc)].filter((t) => !codes.includes(t))).toEqual([]);
  });

  it('has exactly one row per code', () => {
    expect(doc.match(/^\| `PGHA_[A-Z_]+` \|/gm)).toHaveLength(codes.length);
  });
});

it('describes errors without stacks, and classifies by code', () => {
  const e = new PgHaError('PGHA_LEASE_LOST', 'gone');
  expect(describeError(e)).toEqual({ code: 'PGHA_LEASE_LOST', message: 'gone' });
  expect(describeError('x')).toEqual({ message: 'x' });
  expect(isPgHaError(e, 'PGHA_LEASE_LOST')).toBe(true);
  expect(isPgHaError(e, 'PGHA_DCS_TIMEOUT')).toBe(false);
  expect(e.retryable).toBe(false);
});
