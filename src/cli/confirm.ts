// Asking the operator before a disruptive command; --force skips the question.
import { createInterface } from 'node:readline/promises';
import { PgHaError } from '../errors.ts';

export async function confirm(question: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  if (!process.stdin.isTTY) throw new PgHaError('PGHA_CLI_REFUSED', `${question} Not confirmed: add --force to run without a terminal`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new PgHaError('PGHA_CLI_REFUSED', 'aborted');
}
