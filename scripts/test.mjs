#!/usr/bin/env node
// `pnpm test`: the whole vitest suite, then one plain summary line. Plain JavaScript so that it runs
// before anything is built. Extra arguments go to vitest (e.g. `pnpm test test/core`).
//
// headlessgl needs an X display. Without one, and with xvfb-run installed, the suite re-runs itself
// under `xvfb-run -a`; without xvfb-run the headlessgl tests report themselves skipped with the reason
// (or fail, where SHUFFLE_REQUIRE_GPU asks for that mode, as CI does).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const hasXvfb = spawnSync('sh', ['-c', 'command -v xvfb-run'], { stdio: 'ignore' }).status === 0;
if (!process.env.DISPLAY && hasXvfb && !process.env.SHUFFLE_UNDER_XVFB) {
  const run = spawnSync('xvfb-run', ['-a', process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, SHUFFLE_UNDER_XVFB: '1' },
  });
  process.exit(run.status ?? 1);
}

mkdirSync('.tmp', { recursive: true });
const report = '.tmp/vitest-report.json';
const vitest = spawnSync(
  'pnpm',
  ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args],
  { stdio: 'inherit' },
);

let results;
try {
  results = JSON.parse(readFileSync(report, 'utf8'));
} catch {
  console.log('0 passed, 1 failed, 0 skipped');
  console.error(`vitest wrote no report (exit ${vitest.status}); see its output above`);
  process.exit(1);
}
const skipped = results.testResults.flatMap((file) => file.assertionResults.filter((t) => t.status !== 'passed' && t.status !== 'failed'));
if (skipped.length > 0) {
  console.log('\nSkipped (each with its reason):');
  for (const t of skipped) console.log(`  - ${t.fullName}`);
}
const failedFiles = results.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).length;
console.log(
  `${results.numPassedTests} passed, ${results.numFailedTests + failedFiles} failed, ${results.numPendingTests + results.numTodoTests} skipped`,
);
process.exit(vitest.status === 0 && results.numFailedTests + failedFiles === 0 ? 0 : 1);
