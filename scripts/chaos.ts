// npm run chaos -- [--backend netns|systemd] [--seed N[,N...]] [--faults K] [--sync on|off|both] [--kinds a,b | --kinds v1] [--schedule NAME] [--report FILE]
// Runs the fault-injection suite (lab/chaos/) against a fresh cluster, in network namespaces
// (--backend netns, the default) or in Debian containers booted with systemd running the shipped
// unit (--backend systemd), and prints the verdict; with --report (default docs/chaos-report.md,
// docs/chaos-report-systemd.md for the systemd backend, when --faults >= 50) writes the report
// (a --schedule run writes one only with --report). Exits 1 on any violation, printing the schedule, the seed and the command to rerun it.
import { existsSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { parseArgs } from 'node:util';
import { hasNetnsSupport } from '../lab/netlab.ts';
import { ALL_FAULT_KINDS, BACKEND_KINDS, FAULT_KIND_SETS, FIXED_SCHEDULES, type FaultKind } from '../lab/chaos/faults.ts';
import { explain, runChaos, unsupportedKinds, violations, type RunResult } from '../lab/chaos/runner.ts';
import { BACKENDS, type BackendName, type SyncMode } from '../lab/chaos/backend.ts';
import { renderReport } from '../lab/chaos/report.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(Date.now() % 100000) },
    faults: { type: 'string', default: '100' },
    sync: { type: 'string', default: 'both' },
    kinds: { type: 'string' },
    report: { type: 'string' },
    schedule: { type: 'string' },
    backend: { type: 'string', default: 'netns' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run chaos -- [--backend netns|systemd] [--seed N[,N...]] [--faults K] [--sync on|off|both]
                      [--kinds a,b | --kinds v1] [--schedule NAME] [--report FILE]
  --backend   netns (default): nodes and etcd members in network namespaces; systemd: Debian
              containers booted with systemd running the shipped unit
  --seed      one seed, or several separated by commas (each runs the whole --faults)
  --faults    how many faults per seed, split between the synchronous modes (default 100)
  --kinds     fault kinds: ${ALL_FAULT_KINDS.join(', ')}; or a named set: ${Object.keys(FAULT_KIND_SETS).join(', ')}
  --schedule  a fixed schedule: ${Object.keys(FIXED_SCHEDULES).join(', ')}
  --report    write the report there (default with --faults >= 50: docs/chaos-report*.md)
See docs/chaos.md.`);
  process.exit(0);
}

function fail(msg: string): never {
  console.error(`chaos: ${msg}`);
  process.exit(2);
}

const backend = (BACKENDS as readonly string[]).includes(values.backend) ? values.backend as BackendName : fail(`--backend must be ${BACKENDS.join(' or ')}, got ${values.backend}`);
const seeds = values.seed.split(',').map((s) => Number(s.trim()));
const faults = Number(values.faults);
if (seeds.some((s) => !Number.isInteger(s) || s < 0)) fail(`--seed must be non-negative integers separated by commas, got ${values.seed}`);
if (!Number.isInteger(faults) || faults < 1) fail(`--faults must be a positive integer, got ${values.faults}`);
const modes: SyncMode[] = values.sync === 'both' ? ['on', 'off'] : values.sync === 'on' || values.sync === 'off' ? [values.sync] : fail(`--sync must be on, off or both, got ${values.sync}`);
// A named set (FAULT_KIND_SETS, e.g. v1) or a comma-separated list of kinds.
const kinds = values.kinds === undefined ? [...BACKEND_KINDS[backend]]
  : FAULT_KIND_SETS[values.kinds] !== undefined ? [...FAULT_KIND_SETS[values.kinds]!] : values.kinds.split(',').map((k) => k.trim());
for (const k of kinds) if (!(ALL_FAULT_KINDS as readonly string[]).includes(k)) fail(`unknown fault kind ${k}; known: ${ALL_FAULT_KINDS.join(', ')}`);
const unsupported = unsupportedKinds(backend, kinds);
if (unsupported.length > 0) fail(`the ${backend} backend cannot inject ${unsupported.join(', ')}; it injects ${BACKEND_KINDS[backend].join(', ')}`);
const why = hasNetnsSupport() ?? (backend === 'systemd' && !existsSync('/usr/bin/systemd-nspawn') ? '/usr/bin/systemd-nspawn is missing (apt-get install systemd-container debootstrap)' : null);
if (why !== null) fail(why);

const runs: RunResult[] = [];
const fixed = values.schedule === undefined ? undefined : FIXED_SCHEDULES[values.schedule] ?? fail(`unknown --schedule ${values.schedule}; known: ${Object.keys(FIXED_SCHEDULES).join(', ')}`);
const fixedUnsupported = fixed === undefined ? [] : [...new Set(unsupportedKinds(backend, fixed.faults.map((f) => f.kind)))];
if (fixedUnsupported.length > 0) fail(`the ${backend} backend cannot inject ${fixedUnsupported.join(', ')} of --schedule ${values.schedule}`);
for (const seed of seeds) for (const syncMode of fixed === undefined ? modes : [fixed.syncMode]) {
  // Split the faults between the modes; synchronous mode gets at least as many.
  const n = modes.length === 1 ? faults : syncMode === 'on' ? Math.ceil(faults / 2) : Math.floor(faults / 2);
  const r = await runChaos({ backend, seed, faults: n, syncMode, kinds: values.kinds === undefined ? undefined : kinds as FaultKind[],
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
const defaultReport = backend === 'systemd' ? 'docs/chaos-report-systemd.md' : 'docs/chaos-report.md';
const reportPath = values.report ?? (values.schedule === undefined && total >= 50 ? defaultReport : undefined);
if (reportPath !== undefined) {
  writeFileSync(reportPath, renderReport(runs, `npm run chaos -- ${process.argv.slice(2).join(' ')}`.trim(), `Linux ${release()}`));
  console.log(`report written to ${reportPath}`);
}
process.exit(runs.some((r) => violations(r).length > 0) ? 1 : 0);
