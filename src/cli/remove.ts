// pghactl remove <cluster>: delete every key of the cluster in etcd, as `patronictl remove`: it
// asks for the cluster's name, then "Yes I am aware", then (when a leader holds the key) the
// leader's name. --force skips the questions and is needed without a terminal. PostgreSQL and
// its data are not touched; running agents adopt the cluster again from their data (a fresh
// initialize key), so stop them first to really take the cluster down.
import { createInterface } from 'node:readline/promises';
import type { CommandModule } from 'yargs';
import { PgHaError } from '../errors.ts';
import { forceOption, FORCE_FLAG } from './confirm.ts';
import { withCtx, type GlobalOpts } from './context.ts';
import { buildListRows, printResult, renderList } from './format.ts';

export const AWARE = 'Yes I am aware';

/** The questions remove asks, and the answer each needs; pure, for the unit test. */
export function removeQuestions(scope: string, leader: string | null): Array<{ question: string; answer: string; wrong: string }> {
  const q = [
    { question: 'Please confirm the cluster name to remove:', answer: scope, wrong: 'the cluster names do not match' },
    { question: `You are about to remove all information in etcd for ${scope}, please type: "${AWARE}":`, answer: AWARE, wrong: `you did not exactly type "${AWARE}"` },
  ];
  if (leader !== null) q.push({ question: 'This cluster currently has a leader. Please specify the leader name to continue:', answer: leader, wrong: 'you did not name the current leader' });
  return q;
}

async function ask(questions: ReturnType<typeof removeQuestions>): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    for (const q of questions) {
      const a = await rl.question(`${q.question} `);
      if (a.trim() !== q.answer) throw new PgHaError('PGHA_CLI_REFUSED', `aborted: ${q.wrong}`);
    }
  } finally {
    rl.close();
  }
}

export const removeCommand: CommandModule<GlobalOpts, GlobalOpts & { cluster: string; force: boolean | undefined }> = {
  command: 'remove <cluster>',
  describe: 'delete every key of the cluster in etcd (asks for its name first; stop the agents before)',
  builder: (y) => forceOption(y.positional('cluster', { type: 'string', demandOption: true, describe: 'the cluster name (scope) pghactl points at, typed out again' }), 'do not ask (needed without a terminal): the keys go at once')
    .example('pghactl -c /etc/pgha/pgha.yml remove demo', 'asks for the name, "Yes I am aware" and the leader, then deletes /service/demo/*')
    .example('pghactl -c /etc/pgha/pgha.yml remove demo --force', 'without the questions'),
  handler: async (argv) => {
    await withCtx(argv, async (ctx) => {
      if (argv.cluster !== ctx.scope) throw new PgHaError('PGHA_CLI_USAGE', `pghactl points at cluster ${ctx.scope}, not ${argv.cluster} (name the cluster of -c/--scope)`);
      const view = await ctx.dcs.readCluster(ctx.fallback);
      process.stderr.write(renderList(ctx.scope, view, buildListRows(view), 'table', false));
      if (view.members.length > 0) process.stderr.write(`Warning: ${view.members.length} member(s) registered; running agents will register again and re-create the cluster from their data. Stop them first to take the cluster down.\n`);
      if (!argv.force) {
        if (!process.stdin.isTTY) throw new PgHaError('PGHA_CLI_REFUSED', `Remove every key of cluster ${ctx.scope}? Not confirmed: add ${FORCE_FLAG} to run without a terminal`);
        await ask(removeQuestions(ctx.scope, view.leader?.name ?? null));
      }
      const deleted = await ctx.dcs.deleteCluster();
      printResult(argv.format, { removed: ctx.scope, keys: deleted }, `removed cluster ${ctx.scope} from etcd (${deleted} key${deleted === 1 ? '' : 's'})`);
    });
  },
};
