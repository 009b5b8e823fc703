// The closing line CI reads: "N passed, N failed" (", N skipped" when some were skipped), from
// vitest's JSON report(s). A file that failed to load counts as a failure.
export function summaryLine(report) {
  const passed = report.numPassedTests ?? 0;
  let failed = report.numFailedTests ?? 0;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A file that failed without a failed test (it did not load, or a beforeAll hook threw and every
  // test was skipped) counts as one failure.
  const brokenFiles = (report.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
  failed += brokenFiles;
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
}

/** Add up several vitest JSON reports (npm test runs the unit and the integration project apart). */
export function mergeReports(reports) {
  const sum = (k) => reports.reduce((n, r) => n + (r[k] ?? 0), 0);
  return {
    numPassedTests: sum('numPassedTests'), numFailedTests: sum('numFailedTests'),
    numPendingTests: sum('numPendingTests'), numTodoTests: sum('numTodoTests'),
    testResults: reports.flatMap((r) => r.testResults ?? []),
  };
}
