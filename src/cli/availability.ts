// pghactl availability: the availability model of docs/availability.md, fed with measured numbers.
import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { z } from 'zod';
import { computeAvailability, drillProblem, validateInput, type AvailabilityInput, type AvailabilityResult, type SynchronousMode } from '../availability/model.ts';
import { PgHaError } from '../errors.ts';
import { availabilityPercent, duration, seconds, targetPercent } from '../human.ts';
import { configPath, withCtx, type GlobalOpts } from './context.ts';

type Opts = GlobalOpts & {
  node: number; network: number; storage: number; 'etcd-availability': number; standbys: number; 'mtbf-hours': number;
  'failover-seconds'?: number; 'from-drill'?: string; 'synchronous-mode'?: SynchronousMode;
};

const MODES = ['off', 'on', 'quorum'] as const;

/** A drill or benchmark result: its kind, its median outage, and the synchronous_mode it ran under. */
const measured = z.object({
  summary: z.object({ kind: z.string().optional(), median_outage_s: z.number().nonnegative(), synchronous_mode: z.enum(MODES).optional() }),
});

interface Measured { failoverSeconds: number; synchronousMode: SynchronousMode | null; source: string }

async function fromDrill(file: string): Promise<Measured> {
  let doc: unknown;
  try { doc = JSON.parse(await readFile(file, 'utf8')); } catch (err) {
    throw new PgHaError('PGHA_CLI_USAGE', `${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const r = measured.safeParse(doc);
  if (!r.success) throw new PgHaError('PGHA_CLI_USAGE', `${file}: expected {"summary": {"kind": "kill-primary", "median_outage_s": N}} (pghactl drill --format json)`);
  const problem = drillProblem(r.data.summary.kind, file);
  if (problem !== null) throw new PgHaError('PGHA_CLI_USAGE', problem);
  return { failoverSeconds: r.data.summary.median_outage_s, synchronousMode: r.data.summary.synchronous_mode ?? null, source: `the ${r.data.summary.kind} drill in ${file}` };
}

/** The cluster's synchronous_mode, when pghactl was told where the cluster is; else null. */
async function clusterMode(argv: Opts): Promise<SynchronousMode | null> {
  const told = configPath(argv) !== undefined || (argv.etcd !== undefined && argv.scope !== undefined);
  if (!told) return null;
  return withCtx(argv, async (ctx) => (await ctx.dcs.readCluster(ctx.fallback)).config.synchronous_mode);
}

/**
 * Which synchronous_mode the advice is for: --synchronous-mode, else the one the drill ran under,
 * else the cluster's (when -c, PGHA_CONFIG, --etcd/--scope or /etc/pgha/pgha.yml name one), else unknown.
 */
async function inputs(argv: Opts): Promise<Measured> {
  const given = argv['failover-seconds'];
  if (given === undefined && argv['from-drill'] === undefined) {
    throw new PgHaError('PGHA_CLI_USAGE', 'give --from-drill FILE (from pghactl drill --kind kill-primary --format json) or --failover-seconds N; pgha does not guess');
  }
  const m = given !== undefined ? { failoverSeconds: given, synchronousMode: null, source: '--failover-seconds' } : await fromDrill(argv['from-drill'] as string);
  const mode = argv['synchronous-mode'] ?? m.synchronousMode ?? (await clusterMode(argv));
  return { ...m, synchronousMode: mode };
}

const HOURS_PER_YEAR = 24 * 365;

/** The text report: every figure rounded to what it means (JSON and YAML keep full precision). */
export function renderAvailability(input: AvailabilityInput, r: AvailabilityResult, source: string): string {
  const perYear = (share: number) => `${duration(share * HOURS_PER_YEAR * 3600)}/year`;
  return [
    `availability:        ${availabilityPercent(r.availability)}  (the guide's series formula: ${availabilityPercent(r.guideFormula)})`,
    `downtime:            ${duration(r.yearlyDowntimeMinutes * 60)}/year, ${duration(r.monthlyDowntimeMinutes * 60)}/month`,
    `  from failovers:    ${perYear(r.failoverShare)} (${seconds(input.failoverSeconds)} per failover, from ${source}; a node fails every ${input.mtbfHours} h)`,
    `  all nodes down:    ${perYear(r.allNodesDownShare)}`,
    `  shared parts:      ${perYear(r.sharedShare)} (network, storage, etcd)`,
    `targets:             ${r.targetsMet.map((t) => `${targetPercent(t.target)} ${t.met ? 'met' : 'NOT met'}`).join(', ')}`,
    '', ...r.recommendations.map((x) => `- ${x}`), '',
  ].join('\n');
}

export const availabilityCommand: CommandModule<GlobalOpts, Opts> = {
  command: 'availability',
  describe: 'expected availability and downtime of a pgha cluster, from a measured failover time',
  builder: (y) => y
    .option('node', { type: 'number', default: 0.999, describe: 'availability of one database node (host and PostgreSQL), 0 to 1' })
    .option('network', { type: 'number', default: 0.9999, describe: 'availability of the shared network, 0 to 1' })
    .option('storage', { type: 'number', default: 1, describe: 'availability of shared storage, 0 to 1 (1: each node has local disks)' })
    .option('etcd-availability', { type: 'number', default: 0.99999, describe: 'availability of the etcd cluster, 0 to 1' })
    .option('standbys', { type: 'number', default: 2, describe: 'number of standbys (nodes = standbys + 1)' })
    .option('mtbf-hours', { type: 'number', default: 4380, describe: 'mean time between failures of one node, in hours' })
    .option('failover-seconds', { type: 'number', describe: 'write outage per unplanned failover, in seconds (else --from-drill)' })
    .option('from-drill', { type: 'string', describe: 'JSON of an unplanned-failure drill (pghactl drill --kind kill-primary|stop-primary --format json, or docs/benchmarks.json); a switchover drill is refused' })
    .option('synchronous-mode', { choices: MODES, describe: 'the synchronous_mode to advise for (default: the drill file\'s, else the cluster\'s when -c or --etcd/--scope is given)' })
    .example('pghactl -c /etc/pgha/pgha.yml drill --kind kill-primary --count 5 --format json --force > kill.json', 'measure unplanned failovers')
    .example('pghactl availability --from-drill kill.json --mtbf-hours 2000', 'the availability those failovers give'),
  handler: async (argv) => {
    const m = await inputs(argv);
    const input: AvailabilityInput = {
      node: argv.node, network: argv.network, storage: argv.storage, etcd: argv['etcd-availability'],
      standbys: argv.standbys, mtbfHours: argv['mtbf-hours'], failoverSeconds: m.failoverSeconds, synchronousMode: m.synchronousMode,
    };
    const problems = validateInput(input);
    if (problems.length > 0) throw new PgHaError('PGHA_CLI_USAGE', problems.join('; '));
    const r = computeAvailability(input);
    if (argv.format === 'json') { process.stdout.write(`${JSON.stringify({ input, ...r }, null, 2)}\n`); return; }
    if (argv.format === 'yaml') { process.stdout.write(stringify({ input, ...r })); return; }
    process.stdout.write(renderAvailability(input, r, m.source));
  },
};
