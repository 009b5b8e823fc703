// pghactl convert-config patroni.yml: a Patroni YAML as pgha's node configuration (the same
// conversion as the agent's Patroni-file option), and the list of every setting it could not carry.
import { readFile, writeFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { parseYamlFile, formatZodIssues } from '../config/load.ts';
import { convertPatroniConfig } from '../config/patroni.ts';
import { nodeConfigSchema } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { GlobalOpts } from './context.ts';

type ConvertOpts = GlobalOpts & { file: string; output?: string; force: boolean | undefined };

export const convertConfigCommand: CommandModule<GlobalOpts, ConvertOpts> = {
  command: 'convert-config <file>',
  describe: 'convert a Patroni YAML (patroni.yml) to pgha\'s node configuration; lists every setting it could not carry over',
  builder: (y) => y
    .positional('file', { type: 'string', demandOption: true, describe: 'the Patroni YAML' })
    .option('output', { alias: 'o', type: 'string', describe: 'write pgha\'s YAML here (mode 0600; it holds the passwords) instead of stdout' })
    .option('force', { type: 'boolean', describe: 'overwrite --output if it exists' })
    .example('pghactl convert-config /etc/patroni/config.yml -o /etc/pgha/pgha.yml', 'write pgha\'s file; what was left out goes to stderr') as never,
  handler: async (argv) => {
    let text: string;
    try { text = await readFile(argv.file, 'utf8'); } catch (err) {
      throw new PgHaError('PGHA_CONFIG_READ', `${argv.file}: cannot read: ${(err as Error).message.replace(/, \w+ '.*'$/, '')}`, { cause: err });
    }
    const { config, notCarried } = convertPatroniConfig(parseYamlFile(text, argv.file));
    const checked = nodeConfigSchema.safeParse(config);
    const problems = checked.success ? '' : formatZodIssues(checked.error.issues, `${argv.output ?? 'the converted configuration'}`);
    const yaml = `# Converted from ${argv.file} by pghactl convert-config (docs/migrating-from-patroni.md).\n${stringify(config)}`;
    if (argv.output === undefined) process.stdout.write(argv.format === 'json' ? `${JSON.stringify({ config, not_carried: notCarried, problems: problems === '' ? [] : problems.split('\n') }, null, 2)}\n` : yaml);
    else {
      await writeFile(argv.output, yaml, { mode: 0o600, flag: argv.force ? 'w' : 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') throw new PgHaError('PGHA_CLI_REFUSED', `${argv.output} exists: not overwritten (--force overwrites it)`);
        throw new PgHaError('PGHA_CLI_NOT_DONE', `${argv.output}: ${err.message}`, { cause: err });
      });
    }
    if (argv.format !== 'json' || argv.output !== undefined) {
      const lines = notCarried.map((n) => `  ${n.path}: ${n.why}`);
      process.stderr.write(notCarried.length === 0 ? 'every setting was carried over\n' : `not carried over (${notCarried.length}):\n${lines.join('\n')}\n`);
    }
    // Written anyway, so the operator edits the result; pgha refuses to start with it until fixed.
    if (problems !== '') throw new PgHaError('PGHA_CONFIG_INVALID', `the converted configuration needs changes before pgha accepts it:\n${problems}`);
  },
};
