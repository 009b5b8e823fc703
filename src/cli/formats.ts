// The output formats of pghactl, apart from their rendering (format.ts), so that the CLI's entry
// point can declare --format without loading cli-table3 and yaml.
export type Format = 'table' | 'tsv' | 'json' | 'yaml';
export const FORMATS: readonly Format[] = ['table', 'tsv', 'json', 'yaml'];
