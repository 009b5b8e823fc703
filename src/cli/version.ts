// pghactl version: this pghactl's pgha version (package.json), and each agent's as its /status
// reports it, when a cluster is named (-c, PGHA_CONFIG, --etcd/--scope, /etc/pgha/pgha.yml).
import { readFileSync } from 'node:fs';
import Table from 'cli-table3';
import type { CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { apiRequest, jsonOf } from '../api/client.ts';
import { configPath, withCtx, type GlobalOpts } from './context.ts';
import { renderTsv } from './format.ts';

export const PGHA_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface AgentVersion { member: string; api_url: string; version: string | null; error: string | null }

// One second per agent, all at once: a live agent answers /status from memory in milliseconds.
const AGENT_MS = 1000;

export const versionCommand: CommandModule<GlobalOpts, GlobalOpts> = {
  command: 'version',
  describe: 'the pgha version of pghactl, and of every agent that answers',
  handler: async (argv) => {
    let agents: AgentVersion[] = [];
    let clusterError: string | null = null;
    if (configPath(argv) !== undefined || (argv.etcd !== undefined && argv.scope !== undefined)) {
      try {
        agents = await withCtx(argv, async (ctx) => {
          const view = await ctx.dcs.readCluster(ctx.fallback);
          return Promise.all(view.members.map(async (m): Promise<AgentVersion> => {
            try {
              const s = jsonOf(await apiRequest(`${m.apiUrl}/status`, { tls: ctx.tls, timeoutMs: AGENT_MS }));
              const p = s['patroni'] as { version?: unknown } | undefined;
              return { member: m.name, api_url: m.apiUrl, version: typeof p?.version === 'string' ? p.version : null, error: null };
            } catch (err) {
              return { member: m.name, api_url: m.apiUrl, version: null, error: (err as Error).message };
            }
          }));
        });
      } catch (err) {
        clusterError = (err as Error).message;
      }
    }
    const out = { pghactl: PGHA_VERSION, agents, ...(clusterError === null ? {} : { cluster_error: clusterError }) };
    if (argv.format === 'json') process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else if (argv.format === 'yaml') process.stdout.write(stringify(out));
    else {
      const head = ['Member', 'API', 'pgha version'];
      const rows = agents.map((a) => [a.member, a.api_url, a.version ?? `unreachable: ${a.error ?? 'no version'}`]);
      // TSV stays one table: pghactl itself is its first row.
      if (argv.format === 'tsv') { process.stdout.write(renderTsv(head, [['(pghactl)', '', PGHA_VERSION], ...rows])); return; }
      const table = rows.length === 0 ? '' : (() => {
        const t = new Table({ head, style: { head: [], border: [] } });
        for (const r of rows) t.push(r);
        return `${t.toString()}\n`;
      })();
      process.stdout.write(`pghactl version ${PGHA_VERSION}\n${table}`);
    }
    if (clusterError !== null) process.stderr.write(`pghactl: the agents' versions are unknown: ${clusterError}\n`);
  },
};
