// Archive health (pure): what /status, pghactl list and the logs say about WAL archiving, from
// one row of pg_stat_archiver and the last `pgbackrest check`.

export interface ArchiverRow {
  archived_count: number;
  last_archived_wal: string | null;
  last_archived_time: string | null;
  failed_count: number;
  last_failed_wal: string | null;
  last_failed_time: string | null;
  archive_mode: string;
}

export interface CheckResult {
  ok: boolean;
  /** ISO time the check finished. */
  at: string;
  error: string | null;
  ms: number;
}

export interface ArchiveHealth {
  archive_mode: string | null;
  archived_count: number | null;
  last_archived_wal: string | null;
  last_archived_time: string | null;
  /** Seconds since the last WAL file was archived (null: none yet). */
  last_archived_age_s: number | null;
  failed_count: number | null;
  last_failed_wal: string | null;
  last_failed_time: string | null;
  /** The last attempt failed (a failure newer than the last success). */
  failing: boolean;
  /** The last `pgbackrest check` (after bootstrap or promotion); null: none since the agent started. */
  check: CheckResult | null;
}

const ms = (t: string | null): number | null => {
  if (t === null) return null;
  const v = Date.parse(t.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isFinite(v) ? v : null;
};

export function parseArchiver(row: ArchiverRow | null, check: CheckResult | null, now: number): ArchiveHealth | null {
  if (row === null && check === null) return null;
  const okAt = ms(row?.last_archived_time ?? null);
  const failAt = ms(row?.last_failed_time ?? null);
  return {
    archive_mode: row?.archive_mode ?? null,
    archived_count: row?.archived_count ?? null,
    last_archived_wal: row?.last_archived_wal ?? null,
    last_archived_time: okAt === null ? null : new Date(okAt).toISOString(),
    last_archived_age_s: okAt === null ? null : Math.max(0, Math.round((now - okAt) / 100) / 10),
    failed_count: row?.failed_count ?? null,
    last_failed_wal: row?.last_failed_wal ?? null,
    last_failed_time: failAt === null ? null : new Date(failAt).toISOString(),
    failing: failAt !== null && (okAt === null || failAt > okAt),
    check,
  };
}

/** The warning for pghactl list, or null when archiving looks healthy. */
export function archiveWarning(member: string, h: ArchiveHealth | null): string | null {
  if (h === null) return null;
  if (h.failing) return `WARNING: WAL archiving is failing on ${member} (${h.failed_count ?? 0} failures, last ${h.last_failed_wal ?? '?'} at ${h.last_failed_time ?? '?'}): point-in-time recovery past ${h.last_archived_wal ?? 'the last archived WAL'} is at risk`;
  if (h.check !== null && !h.check.ok) return `WARNING: pgbackrest check failed on ${member} at ${h.check.at}: ${h.check.error ?? ''}`;
  return null;
}
