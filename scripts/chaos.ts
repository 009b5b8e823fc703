// npm run chaos -- [--seed N] [--faults K] [--sync on|off|both] [--kinds a,b | --kinds v1] [--schedule NAME] [--report FILE]
// Runs the fault-injection suite (test/chaos/) against a fresh cluster in network namespaces and
// prints the verdict; with --report (default docs/chaos-report.md when --faults >= 50) writes the
// report (a --schedule run writes one only with --report). Exits 1 on any violation, printing the schedule, the seed and the command to rerun it.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { hasNetnsSupport } from '../test/support/netlab.ts';
import { FAULT_KINDS, FAULT_KIND_SETS, FIXED_SCHEDULES, type FaultKind } from '../test/chaos/faults.ts';
import { explain, runChaos, violations, type RunResult } from '../test/chaos/runner.ts';
import type { SyncMode } from '../test/chaos/cluster.ts';
import { renderReport } from '../test/chaos/report.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(Date.now() % 100000) },
    faults: { type: 'string', default: '100' },
    sync: { type: 'string', default: 'both' },
    kinds: { type: 'string' },
    report: { type: 'string' },
    schedule: { type: 'string' },
  },
});

function fail(msg: string): never {
  console.error(`chaos: ${msg}`);
  process.exit(2);
}

const seed = Number(values.seed);
const faults = Number(values.faults);
if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a non-negative integer, got ${values.seed}`);
if (!Number.isInteger(faults) || faults < 1) fail(`--faults must be a positive integer, got ${values.faults}`);
const modes: SyncMode[] = values.sync === 'both' ? ['on', 'off'] : values.sync === 'on' || values.sync === 'off' ? [values.sync] : fail(`--sync must be on, off or both, got ${values.sync}`);
// A named set (FAULT_KIND_SETS, e.g. v1) or a comma-separated list of kinds.
const kinds = values.kinds === undefined ? [...FAULT_KINDS]
  : FAULT_KIND_SETS[values.kinds] !== undefined ? [...FAULT_KIND_SETS[values.kinds]!] : values.kinds.split(',').map((k) => k.trim());
for (const k of kinds) if (!(FAULT_KINDS as readonly string[]).includes(k)) fail(`unknown fault kind ${k}; known: ${FAULT_KINDS.join(', ')}`);
const why = hasNetnsSupport();
if (why !== null) fail(why);

const runs: RunResult[] = [];
const fixed = values.schedule === undefined ? undefined : FIXED_SCHEDULES[values.schedule] ?? fail(`unknown --schedule ${values.schedule}; known: ${Object.keys(FIXED_SCHEDULES).join(', ')}`);
for (const syncMode of fixed === undefined ? modes : [fixed.syncMode]) {
  // Split the faults between the modes; synchronous mode gets at least as many.
  const n = modes.length === 1 ? faults : syncMode === 'on' ? Math.ceil(faults / 2) : Math.floor(faults / 2);
  const r = await runChaos({ seed, faults: n, syncMode, kinds: values.kinds === undefined ? undefined : kinds as FaultKind[],
    scheduleName: values.schedule, keepLogsOnFailure: true, log: (l) => console.log(l) });
  runs.push(r);
  const bad = violations(r);
  const v = r.verdict;
  console.log(`\nseed ${seed}, synchronous_mode ${syncMode}: ${r.events.length} faults, ${r.ops} writes, ${v?.acked ?? 0} acknowledged, ${v?.lost.length ?? '?'} lost, ${v?.splitBrain.length ?? '?'} split-brain windows`);
  if (bad.length > 0) {
    console.log(`VIOLATIONS:\n${explain(r)}`);
  }
}
const total = runs.reduce((n, r) => n + r.events.length, 0);
const reportPath = values.report ?? (values.schedule === undefined && total >= 50 ? 'docs/chaos-report.md' : undefined);
if (reportPath !== undefined) {
  writeFileSync(reportPath, renderReport(runs, `npm run chaos -- ${process.argv.slice(2).join(' ')}`.trim()));
  console.log(`report written to ${reportPath}`);
}
process.exit(runs.some((r) => violations(r).length > 0) ? 1 : 0);
