// The daemon's logger: pino JSON, one event per line, secrets redacted. Libraries under src/ take a
// Logger from their caller and never create one.
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

export function createLogger(
  opts: { level?: string; name?: string; destination?: DestinationStream } = {},
): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.name === undefined ? {} : { member: opts.name },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Synchronous writes so the last lines before a SIGKILL are not lost.
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
