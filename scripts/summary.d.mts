export function summaryLine(report: unknown): string;
export function mergeReports(reports: unknown[]): unknown;
