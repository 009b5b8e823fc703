// The daemon's logger: pino JSON, one event per line, secrets redacted. Libraries under src/ take a
// Logger from their caller and never create one.
// Every line starts {"level":"<name>", and carries the cluster `scope` and the `member` name.
// With `journald` each line is prefixed by the sd-daemon priority `<N>`, which journald strips
// and stores as the entry's priority (SyslogLevelPrefix=yes, its default), so
// `journalctl -p warning -u pgha` shows only warnings and worse.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths pino censors wherever they appear in a logged object. `*` covers one level only. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  '*.*.*.password',
  '*.*.*.*.password',
  '*.*.*.*.*.password',
  'connectionString',
  '*.connectionString',
  'conninfo',
  '*.conninfo',
  'req.headers.authorization',
  'headers.authorization',
];

/** syslog priorities (sd-daemon(3)) of pino's level names. */
export const JOURNALD_PRIORITY: Readonly<Record<string, number>> = {
  fatal: 2, // crit
  error: 3, // err
  warn: 4, // warning
  info: 6, // info
  debug: 7, // debug
  trace: 7,
};

const LEVEL_AT_START = /^\{"level":"([a-z]+)"/;

/** `<N>` + the line, N the priority of the line's level (pino writes the level first); info if unreadable. */
export function journaldPrefix(line: string): string {
  const level = LEVEL_AT_START.exec(line)?.[1];
  return `<${(level === undefined ? undefined : JOURNALD_PRIORITY[level]) ?? 6}>${line}`;
}

export interface LoggerOptions {
  level?: string;
  /** Member name, `member` on every line. */
  name?: string;
  /** Cluster name, `scope` on every line. */
  scope?: string;
  /** Prefix each line with its sd-daemon priority `<N>` (log.journald_prefix). */
  journald?: boolean;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const base: Record<string, string> = {};
  if (opts.scope !== undefined) base['scope'] = opts.scope;
  if (opts.name !== undefined) base['member'] = opts.name;
  return pino(
    {
      level: opts.level ?? 'info',
      base,
      // "level":"warn" instead of pino's "level":40.
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(opts.journald === true ? { hooks: { streamWrite: journaldPrefix } } : {}),
    },
    // Synchronous writes so the last lines before a SIGKILL are not lost.
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
