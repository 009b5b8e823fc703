// pghactl: operate a pgha cluster. Exit codes: 0 success, 1 refused or failed (reason on
// stderr), 2 usage error.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { isPgHaError } from '../errors.ts';
import { COMMANDS, GLOBAL_OPTIONS, commandFor, commandOf, nameOf } from './commands.ts';
import type { GlobalOpts } from './context.ts';

class UsageError extends Error {}

/** Where to read the options after a usage error: the command's --help. */
function helpHint(): string {
  // The command as the parser sees it: the first word that is no option's value (`-c FILE list`).
  const cmd = commandOf(hideBin(process.argv)).name;
  return `Run pghactl ${cmd === undefined ? '' : `${cmd} `}--help for the options.\n`;
}

async function main(): Promise<number> {
  const args = hideBin(process.argv);
  // Only the command that runs is loaded (commands.ts); the shell's completion may ask about any
  // command and its options, so everything is loaded for it.
  const { name: wanted, completion: all } = commandOf(args);
  try {
    await yargs(args)
      .scriptName('pghactl')
      .options(GLOBAL_OPTIONS)
      .command(await Promise.all(COMMANDS.map((c) => commandFor(c, all || nameOf(c) === wanted))) as never)
      // `pghactl completion >> ~/.bashrc` (or ~/.zshrc): yargs' script, which asks pghactl itself.
      .completion('completion', 'print a bash/zsh completion script: pghactl completion >> ~/.bashrc')
      .demandCommand(1, 'name a command (pghactl --help lists them)')
      .epilogue('Exit codes: 0 done, 1 refused or failed (reason on stderr), 2 usage error; verify: 3 different, 4 not all checked. Commands that disrupt service (switchover, failover, restart, reinit, drill, remove, restore, edit-config in the editor) ask first; --force (or --yes) skips the question and is needed without a terminal.')
      .strict()
      .help()
      .exitProcess(false)
      .fail((msg, err) => { throw err ?? new UsageError(msg); })
      .parseAsync();
    // A command may set its own exit code (verify: 3 different, 4 not all checked).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof UsageError) { process.stderr.write(`pghactl: ${err.message}\n${helpHint()}`); return 2; }
    if (isPgHaError(err)) { process.stderr.write(`pghactl: ${err.code}: ${err.message}\n`); return err.code === 'PGHA_CLI_USAGE' ? 2 : 1; }
    process.stderr.write(`pghactl: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

export type { GlobalOpts };
process.exitCode = await main();
