// The backup: section: validation (bad repositories, unsafe paths, misplaced options) and the
// pure renderers (pgbackrest.conf, its passfile, archive_command/restore_command), plus the
// parsing of pgbackrest info and pg_stat_archiver. pgBackRest itself runs in
// test/integration/backup*.test.ts.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { PgHaError } from '../../src/errors.ts';
import { archiveParameters, backupPaths, backupPgpass, renderPgbackrestConf, stanzaOf } from '../../src/backup/render.ts';
import { archiveWarning, parseArchiver } from '../../src/backup/health.ts';
import { parseInfo } from '../../src/backup/info.ts';
import type { BackupNodeConfig } from '../../src/backup/exec.ts';

const base = `
scope: demo
name: node1
restapi: {connect_address: 10.0.0.11:8008}
postgresql:
  data_dir: /var/lib/pgha/data
  listen: 10.0.0.11:5433
  socket_dir: /run/pg
  authentication:
    superuser: {username: postgres, password: "s3cret:su"}
    replication: {username: replicator, password: s3cret-repl}
`;
const withBackup = (yaml: string) => parseConfig(`${base}backup:\n${yaml}`, 'x.yml');
const messageOf = (yaml: string): string => {
  try { withBackup(yaml); } catch (err) { if (err instanceof PgHaError) return err.message; throw err; }
  throw new Error('expected a refusal');
};
const posix = '  repositories: [{path: /mnt/backup}]\n';

describe('backup: validation', () => {
  it('fills the defaults: stanza = scope, lz4, retention 2, archive sync', () => {
    const c = withBackup(posix);
    expect(c.backup).toMatchObject({
      repositories: [{ type: 'posix', path: '/mnt/backup', retention_full: 2, options: {} }],
      compression: { type: 'lz4' }, backup_standby: false, process_max: 1, archive: { async: false, timeout: 60 },
      bin: '/usr/bin/pgbackrest', peers: {},
    });
    expect(stanzaOf(c)).toBe('demo');
    expect(backupPaths(c).conf).toBe('/var/lib/pgha/data.pgbackrest/pgbackrest.conf');
  });

  it('is absent (no archiving) without the section', () => {
    expect(parseConfig(base, 'x.yml').backup).toBeUndefined();
  });

  it.each([
    ['  repositories: []\n', 'backup.repositories'],
    ['  repositories: [{path: relative}]\n', 'backup.repositories[0].path: an absolute path'],
    ['  repositories: [{type: s3, path: /pg}]\n', 'a s3 repository needs its s3-* options'],
    ['  repositories: [{path: /b, options: {retention-full: 3}}]\n', 'set retention_full as its own key'],
    ['  repositories: [{path: /b, options: {"Bad Key": 1}}]\n', 'a pgBackRest repository option'],
    ['  repositories: [{path: /b, options: {s3-bucket: "a\\nb"}}]\n', 'no line breaks'],
    [`${posix}  dir: "/srv/my backups"\n`, 'backup.dir: an absolute path of letters'],
    [`${posix}  bin: "/usr/bin/pgbackrest;rm"\n`, 'backup.bin'],
    [`${posix}  stanza: "a b"\n`, 'backup.stanza'],
    [`${posix}  archive: {queue_max: lots}\n`, 'backup.archive.queue_max'],
    [`${posix}  peers: {node2: {port: 5432}}\n`, 'needs path'],
    [`${posix}  surprise: 1\n`, 'surprise'],
  ])('refuses %j', (yaml, expected) => {
    expect(messageOf(yaml)).toContain(expected);
  });

  it('refuses a data_dir archive_command could not carry when backup.dir is not set', () => {
    const text = base.replace('/var/lib/pgha/data', "/var/lib/pgha/data$x") + `backup:\n${posix}`;
    expect(() => parseConfig(text, 'x.yml')).toThrow(/set backup.dir to a plain path/);
    expect(parseConfig(`${text}  dir: /var/lib/pgha/br\n`, 'x.yml').backup?.dir).toBe('/var/lib/pgha/br');
  });

  it('accepts object storage with its options passed through', () => {
    const c = withBackup('  repositories: [{type: s3, path: /pg, retention_full: 4, retention_diff: 6, options: {s3-bucket: b, s3-endpoint: s3.amazonaws.com, s3-region: eu-west-1, s3-key-type: auto}}]\n');
    expect(c.backup?.repositories[0]?.options['s3-bucket']).toBe('b');
  });
});

describe('renderPgbackrestConf', () => {
  const c = withBackup(`  stanza: prod
  repositories:
    - {path: /mnt/backup, retention_full: 3, retention_diff: 2}
    - {type: s3, path: /pg, options: {s3-bucket: b, s3-region: eu-west-1, s3-key-secret: hush}}
  compression: {type: zst, level: 3}
  archive: {async: true, queue_max: 4GiB}
  backup_standby: true
  process_max: 2
  peers:
    node1: {path: /ignored}
    node2: {path: /var/lib/pgha/data, socket-path: /run/pg, port: 5434}
`) as BackupNodeConfig;

  it('renders repositories, retention, compression, archiving and this member as pg1', () => {
    expect(renderPgbackrestConf(c)).toBe(`# Written by pgha; changes are overwritten. Set them in the backup: section.
[global]
repo1-type=posix
repo1-path=/mnt/backup
repo1-retention-full=3
repo1-retention-diff=2
repo2-type=s3
repo2-path=/pg
repo2-retention-full=2
repo2-s3-bucket=b
repo2-s3-key-secret=hush
repo2-s3-region=eu-west-1
compress-type=zst
compress-level=3
process-max=2
archive-async=y
archive-timeout=60
archive-push-queue-max=4GiB
log-path=/var/lib/pgha/data.pgbackrest/log
lock-path=/var/lib/pgha/data.pgbackrest/lock
spool-path=/var/lib/pgha/data.pgbackrest/spool
log-level-console=warn
log-level-stderr=error
log-level-file=info
start-fast=y
delta=y
backup-standby=y

[prod]
pg1-path=/var/lib/pgha/data
pg1-port=5433
pg1-socket-path=/run/pg
pg1-user=postgres
pg2-path=/var/lib/pgha/data
pg2-socket-path=/run/pg
pg2-port=5434
`);
  });

  it('writes the superuser password only for the local ports, escaped', () => {
    expect(backupPgpass(c)).toBe('/run/pg:5433:*:postgres:s3cret\\:su\n/run/pg:5434:*:postgres:s3cret\\:su\n');
  });

  it('names a peer on the default socket directory as localhost (libpq matches only that one so)', () => {
    const d = withBackup(`${posix}  peers: {node2: {path: /d2, port: 5434}}\n`) as BackupNodeConfig;
    expect(backupPgpass(d)).toBe('/run/pg:5433:*:postgres:s3cret\\:su\nlocalhost:5434:*:postgres:s3cret\\:su\n');
  });

  it('hands WAL to pgBackRest with a command that needs no quoting', () => {
    expect(archiveParameters(c)).toEqual({
      archive_mode: 'on',
      archive_command: '/usr/bin/pgbackrest --config=/var/lib/pgha/data.pgbackrest/pgbackrest.conf --stanza=prod archive-push %p',
      restore_command: '/usr/bin/pgbackrest --config=/var/lib/pgha/data.pgbackrest/pgbackrest.conf --stanza=prod archive-get %f "%p"',
    });
  });
});

describe('archive health', () => {
  const row = {
    archived_count: 7, last_archived_wal: '000000010000000000000007', last_archived_time: '2026-11-30 07:00:00+00',
    failed_count: 0, last_failed_wal: null, last_failed_time: null, archive_mode: 'always',
  };
  const now = Date.parse('2026-11-30T07:00:30Z');

  it('reports the last archived WAL and its age', () => {
    const h = parseArchiver(row, null, now);
    expect(h).toMatchObject({ last_archived_wal: '000000010000000000000007', last_archived_age_s: 30, failing: false });
    expect(archiveWarning('node1', h)).toBeNull();
  });

  it('is failing when the last failure is newer than the last success, and warns', () => {
    const h = parseArchiver({ ...row, failed_count: 3, last_failed_wal: '000000010000000000000008', last_failed_time: '2026-11-30 07:00:20+00' }, null, now);
    expect(h?.failing).toBe(true);
    expect(archiveWarning('node1', h)).toMatch(/WAL archiving is failing on node1 \(3 failures, last 000000010000000000000008/);
  });

  it('is not failing once a later WAL was archived', () => {
    const h = parseArchiver({ ...row, failed_count: 3, last_failed_time: '2026-11-30 06:59:00+00' }, null, now);
    expect(h?.failing).toBe(false);
  });

  it('warns about a failed check', () => {
    const h = parseArchiver(row, { ok: false, at: '2026-11-30T07:00:10.000Z', error: 'archive timeout', ms: 60000 }, now);
    expect(archiveWarning('node2', h)).toContain('pgbackrest check failed on node2');
  });
});

describe('parseInfo', () => {
  const json = JSON.stringify([{
    archive: [{ database: { id: 1, 'repo-key': 1 }, id: '15-1', max: '000000010000000000000003', min: '000000010000000000000001' }],
    backup: [{
      archive: { start: '000000010000000000000002', stop: '000000010000000000000003' }, backrest: { format: 5, version: '2.45' },
      database: { id: 1, 'repo-key': 1 }, error: false, info: { delta: 22992527, repository: { delta: 4522338, size: 4522338 }, size: 22992527 },
      label: '20261130-070659F', lsn: { start: '0/2000028', stop: '0/3000050' }, prior: null, reference: null,
      timestamp: { start: 1796022419, stop: 1796022423 }, type: 'full',
    }],
    cipher: 'none', name: 't', repo: [{ cipher: 'none', key: 1, status: { code: 0, message: 'ok' } }],
    status: { code: 0, lock: { backup: { held: false } }, message: 'ok' },
  }]);

  it('lists each backup with its size, duration and WAL range', () => {
    expect(parseInfo(json)).toEqual([{
      stanza: 't', status: 'ok', status_code: 0, wal_min: '000000010000000000000001', wal_max: '000000010000000000000003', running: null,
      backups: [{
        label: '20261130-070659F', type: 'full', prior: null, started: '2026-11-30T07:06:59.000Z', stopped: '2026-11-30T07:07:03.000Z',
        duration_s: 4, size: 22992527, repo_size: 4522338, wal_start: '000000010000000000000002', wal_stop: '000000010000000000000003',
        lsn_start: '0/2000028', lsn_stop: '0/3000050', repo: 1, error: false,
      }],
    }]);
  });

  it('refuses output of another shape', () => {
    expect(() => parseInfo('[{"name": 1}]')).toThrow();
  });
});
