// The whole-cluster point-in-time restore, pure part (docs/backup.md#pghactl-restore): the target
// and its checks against the repository and the leader, the pgbackrest restore options, and the
// record kept in etcd (/restore) that says which step a restore reached, so that an interrupted
// `pghactl restore` can be finished (--resume) or dropped (--abort).
import { z } from 'zod';
import { PgHaError } from '../errors.ts';
import { formatLsn, parseLsn } from '../postgres/lsn.ts';
import type { BackupSummary } from './info.ts';

export type RestoreTarget =
  | { type: 'time'; value: string }
  | { type: 'lsn'; value: string }
  | { type: 'name'; value: string }
  | { type: 'latest' };

export const restoreTargetSchema: z.ZodType<RestoreTarget> = z.discriminatedUnion('type', [
  // An ISO 8601 time with an offset (PostgreSQL reads it as recovery_target_time as given).
  z.strictObject({ type: z.literal('time'), value: z.string().max(64).regex(/^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d(:?\d\d)?)$/, 'an ISO 8601 time with an offset, e.g. 2026-11-30T10:41:00.5Z') }),
  z.strictObject({ type: z.literal('lsn'), value: z.string().regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, 'a pg_lsn such as 0/5000028') }),
  z.strictObject({ type: z.literal('name'), value: z.string().min(1).max(63).regex(/^[A-Za-z0-9_.:-]+$/, 'a restore point name: 1-63 letters, digits, _ . : -') }),
  z.strictObject({ type: z.literal('latest') }),
]);

/** A pgBackRest backup label: 20261130-101502F, with _20261130-111502D (or I) for diff/incr. */
export const backupLabel = z.string().regex(/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/, 'a pgBackRest backup label such as 20261130-101502F');

/** How a target reads in messages and in the history ("time 2026-11-30T10:41:00Z"). */
export function describeTarget(t: RestoreTarget): string {
  return t.type === 'latest' ? 'the end of the archive (--latest)' : `${t.type} ${t.value}`;
}

/** The steps, in order; the record's phase is the last one completed. */
export const RESTORE_PHASES = ['claimed', 'paused', 'stopped', 'restored', 'rebuilt'] as const;
export type RestorePhase = (typeof RESTORE_PHASES)[number];

export const restoreRecordSchema = z.object({
  id: z.string().min(8).max(64),
  target: restoreTargetSchema,
  /** The member restored from the repository and promoted (the leader when the restore began). */
  member: z.string().min(1),
  /** The backup set restored (pgbackrest --set), null: pgBackRest's choice (the newest). */
  set: backupLabel.nullable(),
  phase: z.enum(RESTORE_PHASES),
  /** The cluster was paused before the restore: it stays paused afterwards. */
  was_paused: z.boolean(),
  started: z.string(),
  updated: z.string(),
  timeline_before: z.number().nullable(),
  lsn_before: z.string().nullable(),
  /** Filled when the member promoted: its new timeline and the position at promotion. */
  timeline_after: z.number().nullable().default(null),
  lsn_after: z.string().nullable().default(null),
  /** The last failed step's reason (cleared when a step succeeds). */
  error: z.string().nullable().default(null),
});
export type RestoreRecord = z.infer<typeof restoreRecordSchema>;

/**
 * A time target as PostgreSQL's recovery_target_time reads it: "2026-11-30 10:41:00.5+00" (its
 * check refuses the ISO 8601 "T" ... "Z" form that its timestamptz input takes).
 */
export function pgTargetTime(iso: string): string {
  return iso.replace('T', ' ').replace(/Z$/, '+00');
}

/** The restore options after `pgbackrest restore`: --delta into the stopped member's directory. */
export function restoreArgs(t: RestoreTarget, set: string | null): string[] {
  const setArg = set === null ? [] : [`--set=${set}`];
  // --latest: recovery replays the whole archive and promotes at its end (pgBackRest refuses
  // --target-action without a target). With a target: stop at it (inclusive) and promote.
  if (t.type === 'latest') return ['--delta', '--type=default', ...setArg];
  return ['--delta', `--type=${t.type}`, `--target=${t.type === 'time' ? pgTargetTime(t.value) : t.value}`, '--target-action=promote', ...setArg];
}

export interface TargetFacts {
  /** Backups in the repository, oldest first. */
  backups: BackupSummary[];
  /** Wall-clock now (ms). */
  now: number;
  /** The leader's current WAL position (bytes), null when unknown. */
  leaderLsn: number | null;
}

/** A backup can serve as the start of recovery for a target at or after the end of it. */
const usable = (b: BackupSummary) => !b.error;

/**
 * A time target as epoch ms. The schema takes PostgreSQL's forms too ("2026-11-30 10:41:00+00",
 * "+0530"), which Date.parse refuses: the offset is written out as +HH:MM first.
 */
export function targetTimeMs(value: string): number {
  const iso = value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00').replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  return Date.parse(iso);
}
/** pgBackRest's stop time has whole seconds: the backup really ended up to 1 s later. */
const stopMs = (b: BackupSummary) => Date.parse(b.stopped) + 1000;

/**
 * Check a target against the repository and the leader; returns the backup set to restore
 * (the newest one that ends before a time or LSN target; null: pgBackRest picks the newest).
 * Throws PGHA_RESTORE_NO_BACKUP or PGHA_RESTORE_TARGET_INVALID, with the reason.
 */
export function checkTarget(t: RestoreTarget, f: TargetFacts): string | null {
  const backups = f.backups.filter(usable);
  const oldest = backups[0];
  if (oldest === undefined) throw new PgHaError('PGHA_RESTORE_NO_BACKUP', 'the repository holds no backup: nothing to restore from (take one with pghactl backup)');
  if (t.type === 'time') {
    const at = targetTimeMs(t.value);
    if (Number.isNaN(at)) throw new PgHaError('PGHA_RESTORE_TARGET_INVALID', `--time ${t.value} is not a time`);
    if (at > f.now) throw new PgHaError('PGHA_RESTORE_TARGET_INVALID', `--time ${t.value} is in the future (now ${new Date(f.now).toISOString()})`);
    if (at < stopMs(oldest)) {
      throw new PgHaError('PGHA_RESTORE_TARGET_INVALID', `--time ${t.value} is before the end of the oldest backup (${oldest.label}, ended ${oldest.stopped}): no backup can reach it`);
    }
    return [...backups].reverse().find((b) => stopMs(b) <= at)?.label ?? oldest.label;
  }
  if (t.type === 'lsn') {
    const at = parseLsn(t.value);
    if (f.leaderLsn !== null && at > f.leaderLsn) {
      throw new PgHaError('PGHA_RESTORE_TARGET_INVALID', `--lsn ${t.value} is beyond the leader's current position ${formatLsn(f.leaderLsn)}: no such position`);
    }
    const stop = (b: BackupSummary) => (b.lsn_stop === null ? null : parseLsn(b.lsn_stop));
    const first = stop(oldest);
    if (first !== null && at < first) {
      throw new PgHaError('PGHA_RESTORE_TARGET_INVALID', `--lsn ${t.value} is before the end of the oldest backup (${oldest.label}, ${oldest.lsn_stop}): no backup can reach it`);
    }
    return [...backups].reverse().find((b) => { const s = stop(b); return s !== null && s <= at; })?.label ?? oldest.label;
  }
  return null;
}

/** What a restore to `t` throws away, for the operator's question. */
export function lossSummary(t: RestoreTarget, o: { timeline: number | null; leaderLsn: number | null; now: number }): string {
  const where = `the cluster runs on timeline ${o.timeline ?? '?'} at ${o.leaderLsn === null ? '?' : formatLsn(o.leaderLsn)}`;
  const after = (() => {
    if (t.type === 'time') {
      const s = Math.max(0, (o.now - targetTimeMs(t.value)) / 1000);
      return `every transaction committed after ${t.value} (the last ${s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`}) is LOST`;
    }
    if (t.type === 'lsn') {
      const bytes = o.leaderLsn === null ? null : o.leaderLsn - parseLsn(t.value);
      return `every transaction committed after ${t.value}${bytes === null ? '' : ` (${bytes} bytes of WAL)`} is LOST`;
    }
    if (t.type === 'name') return `every transaction committed after the restore point ${t.value} is LOST`;
    return 'writes not yet archived when the leader stops are LOST (the leader archives its current WAL first)';
  })();
  return `${where}; the restore makes a new timeline from the repository: ${after}. Every member's PostgreSQL is stopped, one is restored and promoted, the others are rebuilt from it.`;
}

/** The record with `phase` reached (and the error cleared). */
export function advance(r: RestoreRecord, phase: RestorePhase, now: Date, extra: Partial<RestoreRecord> = {}): RestoreRecord {
  return { ...r, ...extra, phase, error: null, updated: now.toISOString() };
}

/** The phase reached is at least `p`. */
export function reached(r: RestoreRecord, p: RestorePhase): boolean {
  return RESTORE_PHASES.indexOf(r.phase) >= RESTORE_PHASES.indexOf(p);
}

/** The etcd key of the record (no lease: it outlives the CLI and the agents). */
export function restoreKey(prefix: string): string {
  return `${prefix}restore`;
}
