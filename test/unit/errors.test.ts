// Every error code is documented in docs/errors.md, and the doc lists no code that does not exist.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ERROR_CODES, PgHaError, describeError } from '../../src/errors.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

it('docs/errors.md and src/errors.ts list the same codes', () => {
  const documented = new Set(doc.match(/PGHA_[A-Z_]+/g));
  expect([...documented].sort()).toEqual(Object.keys(ERROR_CODES).sort());
});

it('describes errors without stacks', () => {
  expect(describeError(new PgHaError('PGHA_LEASE_LOST', 'gone'))).toEqual({ code: 'PGHA_LEASE_LOST', message: 'gone' });
  expect(describeError('x')).toEqual({ message: 'x' });
});
