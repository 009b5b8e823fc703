// Parsing of `pgbackrest info --output=json` (pure): the backups of the stanza, as pghactl backup
// list shows them, validated with zod (an external program's output is input like any other).
import { z } from 'zod';

const backupEntry = z.object({
  label: z.string(),
  type: z.enum(['full', 'diff', 'incr']),
  prior: z.string().nullable().optional(),
  error: z.boolean().optional(),
  archive: z.object({ start: z.string().nullable(), stop: z.string().nullable() }).partial().optional(),
  info: z.object({ size: z.number(), delta: z.number().optional(), repository: z.object({ size: z.number().optional(), delta: z.number().optional() }).optional() }).optional(),
  lsn: z.object({ start: z.string(), stop: z.string() }).partial().optional(),
  timestamp: z.object({ start: z.number(), stop: z.number() }),
  database: z.object({ id: z.number(), 'repo-key': z.number().optional() }).optional(),
});

const stanzaEntry = z.object({
  name: z.string(),
  status: z.object({ code: z.number(), message: z.string(), lock: z.object({ backup: z.object({ held: z.boolean(), size: z.number().optional(), 'size-cplt': z.number().optional() }).partial().optional() }).partial().optional() }),
  backup: z.array(backupEntry).default([]),
  archive: z.array(z.object({ id: z.string(), min: z.string().nullable(), max: z.string().nullable() })).default([]),
});

export interface BackupSummary {
  label: string;
  type: 'full' | 'diff' | 'incr';
  prior: string | null;
  started: string;
  stopped: string;
  duration_s: number;
  size: number;
  repo_size: number | null;
  wal_start: string | null;
  wal_stop: string | null;
  lsn_start: string | null;
  lsn_stop: string | null;
  repo: number | null;
  error: boolean;
}

export interface StanzaInfo {
  stanza: string;
  status: string;
  /** 0 ok; pgBackRest's status codes otherwise (1 missing stanza path, 2 no valid backups, ...). */
  status_code: number;
  backups: BackupSummary[];
  /** Oldest and newest WAL file in the archive (every archive id). */
  wal_min: string | null;
  wal_max: string | null;
  /** A backup is running (its lock is held), with its progress when pgBackRest reports it. */
  running: { size: number | null; done: number | null } | null;
}

export function parseInfo(json: string): StanzaInfo[] {
  // system-id exceeds 2^53: JSON.parse would round it; it is not used here.
  const parsed = z.array(stanzaEntry).parse(JSON.parse(json));
  return parsed.map((s) => {
    const walMins = s.archive.map((a) => a.min).filter((x): x is string => x !== null).sort();
    const walMaxs = s.archive.map((a) => a.max).filter((x): x is string => x !== null).sort();
    const lock = s.status.lock?.backup;
    return {
      stanza: s.name, status: s.status.message, status_code: s.status.code,
      backups: s.backup.map((b) => ({
        label: b.label, type: b.type, prior: b.prior ?? null,
        started: new Date(b.timestamp.start * 1000).toISOString(), stopped: new Date(b.timestamp.stop * 1000).toISOString(),
        duration_s: b.timestamp.stop - b.timestamp.start, size: b.info?.size ?? 0, repo_size: b.info?.repository?.size ?? null,
        wal_start: b.archive?.start ?? null, wal_stop: b.archive?.stop ?? null,
        lsn_start: b.lsn?.start ?? null, lsn_stop: b.lsn?.stop ?? null, repo: b.database?.['repo-key'] ?? null, error: b.error ?? false,
      })),
      wal_min: walMins[0] ?? null, wal_max: walMaxs[walMaxs.length - 1] ?? null,
      running: lock?.held === true ? { size: lock.size ?? null, done: lock['size-cplt'] ?? null } : null,
    };
  });
}
