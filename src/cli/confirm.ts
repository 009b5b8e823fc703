// Asking the operator before a disruptive command. Every disruptive command takes the same flag
// (FORCE_FLAG, with --yes as its alias), added by forceOption(), and confirm() names that flag
// in its refusal: test/unit/cli.test.ts checks every such command accepts what it is told to add.
import { createInterface } from 'node:readline/promises';
import type { Argv } from 'yargs';
import { PgHaError } from '../errors.ts';

export const FORCE_FLAG = '--force';
export const FORCE_ALIAS = '--yes';

/** The commands that ask before they act (and accept FORCE_FLAG). */
export const DISRUPTIVE_COMMANDS = ['switchover', 'failover', 'restart', 'reinit', 'drill', 'remove', 'edit-config', 'verify', 'restore'] as const;

export function forceOption<T>(y: Argv<T>, describe = 'do not ask for confirmation (needed without a terminal)'): Argv<T & { force: boolean | undefined }> {
  return y.option('force', { alias: FORCE_ALIAS.slice(2), type: 'boolean', describe });
}

export async function confirm(question: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  if (!process.stdin.isTTY) throw new PgHaError('PGHA_CLI_REFUSED', `${question} Not confirmed: add ${FORCE_FLAG} to run without a terminal`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new PgHaError('PGHA_CLI_REFUSED', 'aborted');
}
