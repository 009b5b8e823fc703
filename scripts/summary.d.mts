export function summaryLine(report: unknown): string;
