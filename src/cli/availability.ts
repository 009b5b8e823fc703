// pghactl availability: the availability model of docs/availability.md, fed with measured numbers.
import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { z } from 'zod';
import { computeAvailability, validateInput, type AvailabilityInput } from '../availability/model.ts';
import { PgHaError } from '../errors.ts';
import type { GlobalOpts } from './context.ts';

type Opts = GlobalOpts & { node: number; network: number; storage: number; 'etcd-availability': number; standbys: number; 'mtbf-hours': number; 'failover-seconds'?: number; 'from-drill'?: string };

/** A drill or benchmark result: only the median outage is read. */
const measured = z.object({ summary: z.object({ median_outage_s: z.number().nonnegative() }) });

async function failoverSeconds(argv: Opts): Promise<number> {
  if (argv['failover-seconds'] !== undefined) return argv['failover-seconds'];
  if (argv['from-drill'] === undefined) throw new PgHaError('PGHA_CLI_USAGE', 'give --from-drill FILE (a measured median) or --failover-seconds N; pgha does not guess');
  const r = measured.safeParse(JSON.parse(await readFile(argv['from-drill'], 'utf8')));
  if (!r.success) throw new PgHaError('PGHA_CLI_USAGE', `${argv['from-drill']}: expected {"summary": {"median_outage_s": N}}`);
  return r.data.summary.median_outage_s;
}

const pct = (x: number) => `${(x * 100).toFixed(4)} %`;
const share = (x: number) => (x === 0 ? '0 %' : `${(x * 100).toPrecision(3)} %`);

export const availabilityCommand: CommandModule<GlobalOpts, Opts> = {
  command: 'availability',
  describe: 'expected availability and downtime of a pgha cluster, from measured failover times',
  builder: (y) => y
    .option('node', { type: 'number', default: 0.999, describe: 'availability of one database node' })
    .option('network', { type: 'number', default: 0.9999, describe: 'shared network' })
    .option('storage', { type: 'number', default: 1, describe: 'shared storage (1: local disks)' })
    .option('etcd-availability', { type: 'number', default: 0.99999, describe: 'the etcd cluster' })
    .option('standbys', { type: 'number', default: 2 })
    .option('mtbf-hours', { type: 'number', default: 4380, describe: 'mean time between failures of one node' })
    .option('failover-seconds', { type: 'number', describe: 'outage per failover (else --from-drill)' })
    .option('from-drill', { type: 'string', describe: 'JSON with summary.median_outage_s (docs/benchmarks.json, a drill)' }),
  handler: async (argv) => {
    const input: AvailabilityInput = {
      node: argv.node, network: argv.network, storage: argv.storage, etcd: argv['etcd-availability'],
      standbys: argv.standbys, mtbfHours: argv['mtbf-hours'], failoverSeconds: await failoverSeconds(argv),
    };
    const problems = validateInput(input);
    if (problems.length > 0) throw new PgHaError('PGHA_CLI_USAGE', problems.join('; '));
    const r = computeAvailability(input);
    if (argv.format === 'json') { process.stdout.write(`${JSON.stringify({ input, ...r }, null, 2)}\n`); return; }
    if (argv.format === 'yaml') { process.stdout.write(stringify({ input, ...r })); return; }
    process.stdout.write([
      `availability:        ${pct(r.availability)}  (the guide's series formula: ${pct(r.guideFormula)})`,
      `downtime:            ${r.yearlyDowntimeMinutes.toFixed(1)} min/year, ${r.monthlyDowntimeMinutes.toFixed(1)} min/month`,
      `  from failovers:    ${share(r.failoverShare)} (${input.failoverSeconds} s each, every ${input.mtbfHours} h per node)`,
      `  all nodes down:    ${share(r.allNodesDownShare)}`,
      `  shared parts:      ${share(r.sharedShare)} (network, storage, etcd)`,
      `targets:             ${r.targetsMet.map((t) => `${(t.target * 100).toFixed(2)} % ${t.met ? 'met' : 'NOT met'}`).join(', ')}`,
      '', ...r.recommendations.map((x) => `- ${x}`), '',
    ].join('\n'));
  },
};
