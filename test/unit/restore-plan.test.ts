// The pure part of pghactl restore: target parsing, the checks against the repository and the
// leader (refusals), the backup set chosen, the pgbackrest restore options, the loss summary and
// the record's phases. The restore itself runs in test/integration/restore.test.ts.
import { describe, expect, it } from 'vitest';
import type { BackupSummary } from '../../src/backup/info.ts';
import { advance, checkTarget, targetTimeMs, lossSummary, reached, restoreArgs, restoreRecordSchema, type RestoreRecord } from '../../src/backup/restore-plan.ts';
import { targetOf } from '../../src/cli/restore.ts';
import { PgHaError } from '../../src/errors.ts';
import { parseLsn } from '../../src/postgres/lsn.ts';

const backup = (label: string, stopped: string, lsnStop: string, error = false): BackupSummary => ({
  label, type: 'full', prior: null, started: stopped, stopped, duration_s: 1, size: 1, repo_size: 1,
  wal_start: null, wal_stop: null, lsn_start: null, lsn_stop: lsnStop, repo: 1, error,
});
const backups = [backup('A', '2026-11-30T10:00:00.000Z', '0/3000100'), backup('B', '2026-11-30T11:00:00.000Z', '0/6000100')];
const now = Date.parse('2026-11-30T12:00:00Z');
const facts = { backups, now, leaderLsn: parseLsn('0/9000000') };
const codeOf = (fn: () => unknown): string => {
  try { fn(); } catch (err) { if (err instanceof PgHaError) return `${err.code}: ${err.message}`; throw err; }
  return 'no error';
};

describe('restore targets', () => {
  it('reads every offset form the schema takes (PostgreSQL writes +00)', () => {
    const ms = Date.UTC(2026, 10, 30, 10, 41, 0);
    for (const v of ['2026-11-30T10:41:00Z', '2026-11-30 10:41:00+00', '2026-11-30T10:41:00+00:00', '2026-11-30 12:11:00+0130', '2026-11-30T05:41:00-05']) {
      expect(targetTimeMs(v), v).toBe(ms);
    }
    expect(targetTimeMs('2026-11-30T10:41:00.5Z')).toBe(ms + 500);
  });

  it('takes exactly one of --time, --lsn, --name, --latest, each validated', () => {
    expect(targetOf({ time: '2026-11-30T10:41:00.123456Z' })).toEqual({ type: 'time', value: '2026-11-30T10:41:00.123456Z' });
    expect(targetOf({ lsn: '0/5000028' })).toEqual({ type: 'lsn', value: '0/5000028' });
    expect(targetOf({ name: 'before-21' })).toEqual({ type: 'name', value: 'before-21' });
    expect(targetOf({ latest: true })).toEqual({ type: 'latest' });
    expect(codeOf(() => targetOf({}))).toMatch(/^PGHA_CLI_USAGE/);
    expect(codeOf(() => targetOf({ latest: true, lsn: '0/1' }))).toMatch(/^PGHA_CLI_USAGE: name exactly one/);
    expect(codeOf(() => targetOf({ time: '10:41' }))).toMatch(/^PGHA_CLI_USAGE: --time/);
    expect(codeOf(() => targetOf({ time: '2026-11-30T10:41:00' }))).toMatch(/with an offset/);
    expect(codeOf(() => targetOf({ lsn: 'zz' }))).toMatch(/^PGHA_CLI_USAGE: --lsn/);
    expect(codeOf(() => targetOf({ name: 'a b' }))).toMatch(/^PGHA_CLI_USAGE: --name/);
  });

  it('refuses a time in the future or before the end of the oldest backup, an LSN beyond the leader or before the oldest backup, and an empty repository', () => {
    expect(codeOf(() => checkTarget({ type: 'time', value: '2026-11-30T12:00:01Z' }, facts))).toMatch(/^PGHA_RESTORE_TARGET_INVALID: .*in the future/);
    expect(codeOf(() => checkTarget({ type: 'time', value: '2026-11-30T09:59:00Z' }, facts))).toMatch(/^PGHA_RESTORE_TARGET_INVALID: .*before the end of the oldest backup \(A/);
    // pgBackRest's stop time has whole seconds: a target within that second is refused too.
    expect(codeOf(() => checkTarget({ type: 'time', value: '2026-11-30T10:00:00.500Z' }, facts))).toMatch(/^PGHA_RESTORE_TARGET_INVALID/);
    expect(codeOf(() => checkTarget({ type: 'lsn', value: '0/9000001' }, facts))).toMatch(/^PGHA_RESTORE_TARGET_INVALID: .*beyond the leader's current position 0\/9000000/);
    expect(codeOf(() => checkTarget({ type: 'lsn', value: '0/3000000' }, facts))).toMatch(/^PGHA_RESTORE_TARGET_INVALID: .*before the end of the oldest backup/);
    expect(codeOf(() => checkTarget({ type: 'latest' }, { ...facts, backups: [] }))).toMatch(/^PGHA_RESTORE_NO_BACKUP/);
    // A failed backup does not count.
    expect(codeOf(() => checkTarget({ type: 'latest' }, { ...facts, backups: [backup('X', '2026-11-30T10:00:00Z', '0/1', true)] }))).toMatch(/^PGHA_RESTORE_NO_BACKUP/);
  });

  it('picks the newest backup that ends before a time or LSN target; pgBackRest chooses for a name or --latest', () => {
    expect(checkTarget({ type: 'time', value: '2026-11-30T10:30:00Z' }, facts)).toBe('A');
    expect(checkTarget({ type: 'time', value: '2026-11-30T11:30:00+00:00' }, facts)).toBe('B');
    expect(checkTarget({ type: 'lsn', value: '0/5000000' }, facts)).toBe('A');
    expect(checkTarget({ type: 'lsn', value: '0/6000100' }, facts)).toBe('B');
    expect(checkTarget({ type: 'name', value: 'x' }, facts)).toBeNull();
    expect(checkTarget({ type: 'latest' }, facts)).toBeNull();
  });

  it('renders the pgbackrest restore options: --delta, the type and target, promote at the target', () => {
    expect(restoreArgs({ type: 'time', value: '2026-11-30T10:30:00.25Z' }, 'A')).toEqual(['--delta', '--type=time', '--target=2026-11-30 10:30:00.25+00', '--target-action=promote', '--set=A']);
    expect(restoreArgs({ type: 'name', value: 'rp' }, null)).toEqual(['--delta', '--type=name', '--target=rp', '--target-action=promote']);
    expect(restoreArgs({ type: 'time', value: '2026-11-30T11:30:00+01:00' }, null)[2]).toBe('--target=2026-11-30 11:30:00+01:00');
    expect(restoreArgs({ type: 'latest' }, null)).toEqual(['--delta', '--type=default']);
  });

  it('says what is lost', () => {
    expect(lossSummary({ type: 'time', value: '2026-11-30T11:59:30Z' }, { timeline: 3, leaderLsn: parseLsn('0/9000000'), now })).toMatch(/timeline 3 at 0\/9000000.*after 2026-11-30T11:59:30Z \(the last 30\.0 s\) is LOST/);
    expect(lossSummary({ type: 'lsn', value: '0/8000000' }, { timeline: 3, leaderLsn: parseLsn('0/9000000'), now })).toMatch(/\(16777216 bytes of WAL\) is LOST/);
  });
});

describe('the /restore record', () => {
  const rec: RestoreRecord = restoreRecordSchema.parse({
    id: 'abcdef012345', target: { type: 'latest' }, member: 'node1', set: null, phase: 'claimed', was_paused: false,
    started: 'x', updated: 'x', timeline_before: 2, lsn_before: '0/1',
  });
  it('advances phase by phase and clears the last error', () => {
    expect(reached(rec, 'claimed')).toBe(true);
    expect(reached(rec, 'paused')).toBe(false);
    const r = advance({ ...rec, error: 'boom' }, 'stopped', new Date(0));
    expect(r).toMatchObject({ phase: 'stopped', error: null, updated: '1970-01-01T00:00:00.000Z' });
    expect(reached(r, 'paused')).toBe(true);
    expect(reached(r, 'restored')).toBe(false);
    expect(restoreRecordSchema.safeParse({ ...rec, phase: 'unknown' }).success).toBe(false);
    // What reaches pgbackrest's argument list from etcd is validated first.
    expect(restoreRecordSchema.safeParse({ ...rec, set: '20261130-101502F_20261130-111502I' }).success).toBe(true);
    expect(restoreRecordSchema.safeParse({ ...rec, set: '--repo=2' }).success).toBe(false);
    expect(restoreRecordSchema.safeParse({ ...rec, target: { type: 'name', value: 'x --type=immediate' } }).success).toBe(false);
  });
});
