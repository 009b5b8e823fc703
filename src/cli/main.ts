// pghactl: operate a pgha cluster. Exit codes: 0 success, 1 refused or failed (reason on
// stderr), 2 usage error.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { isPgHaError } from '../errors.ts';
import type { GlobalOpts } from './context.ts';
import { FORMATS, type Format } from './format.ts';
import { availabilityCommand } from './availability.ts';
import { drillCommand } from './drill.ts';
import { listCommand, topologyCommand } from './list.ts';
import { editConfigCommand, pauseCmd, resumeCmd, showConfigCommand } from './config.ts';
import { failoverCommand, flushCommand, switchoverCommand } from './handover.ts';
import { dsnCommand, historyCommand } from './info.ts';
import { reinitCommand, reloadCommand, restartCommand } from './members.ts';
import { queryCommand } from './query.ts';
import { removeCommand } from './remove.ts';
import { verifyCommand } from './verify.ts';
import { versionCommand } from './version.ts';

class UsageError extends Error {}

/** Where to read the options after a usage error: the command's --help. */
function helpHint(): string {
  const cmd = hideBin(process.argv).find((a) => !a.startsWith('-'));
  return `Run pghactl ${cmd === undefined ? '' : `${cmd} `}--help for the options.\n`;
}

async function main(): Promise<number> {
  try {
    await yargs(hideBin(process.argv))
      .scriptName('pghactl')
      .option('config', { alias: 'c', type: 'string', describe: 'agent YAML (or PGHA_CONFIG; default /etc/pgha/pgha.yml when it exists and --etcd is not given)' })
      .option('etcd', { type: 'string', describe: 'etcd [https://]host:port[,...]' })
      .option('etcd-cacert', { type: 'string', describe: 'CA of etcd\'s server certificate (PEM; implies https)' })
      .option('etcd-cert', { type: 'string', describe: 'client certificate for etcd (PEM; with --etcd-key)' })
      .option('etcd-key', { type: 'string', describe: 'key of --etcd-cert (PEM)' })
      .option('scope', { type: 'string', describe: 'cluster name' })
      .option('namespace', { type: 'string', default: '/service', describe: 'etcd key prefix of the cluster, with --etcd/--scope (the agent YAML\'s namespace otherwise)' })
      .option('format', { alias: 'f', choices: FORMATS, default: 'table' as Format, describe: 'output: table (for people; rounded figures), tsv (tab-separated rows with a header line) or json/yaml (for scripts; full precision)' })
      .command(listCommand as never)
      .command(topologyCommand as never)
      .command(switchoverCommand as never)
      .command(failoverCommand as never)
      .command(flushCommand as never)
      .command(pauseCmd as never)
      .command(resumeCmd as never)
      .command(showConfigCommand as never)
      .command(editConfigCommand as never)
      .command(historyCommand as never)
      .command(dsnCommand as never)
      .command(restartCommand as never)
      .command(reloadCommand as never)
      .command(reinitCommand as never)
      .command(availabilityCommand as never)
      .command(drillCommand as never)
      .command(queryCommand as never)
      .command(removeCommand as never)
      .command(verifyCommand as never)
      .command(versionCommand as never)
      // `pghactl completion >> ~/.bashrc` (or ~/.zshrc): yargs' script, which asks pghactl itself.
      .completion('completion', 'print a bash/zsh completion script: pghactl completion >> ~/.bashrc')
      .demandCommand(1, 'name a command (pghactl --help lists them)')
      .epilogue('Exit codes: 0 done, 1 refused or failed (reason on stderr), 2 usage error; verify: 3 different, 4 not all checked. Commands that disrupt service (switchover, failover, restart, reinit, drill, remove, edit-config in the editor) ask first; --force (or --yes) skips the question and is needed without a terminal.')
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
