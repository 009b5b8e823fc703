// bootstrap.method: pgbackrest without pgBackRest: the keys validated (a bad one names the field
// and the file), the restore's target options, the refusal of a stanza shared with the source,
// and the checks of `pgbackrest info` against the target. The real runs:
// test/integration/backup-bootstrap.test.ts.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { bootstrapPgbackrestSchema, pgTime, sourceProblem, targetArgs, timeMs } from '../../src/backup/bootstrap-config.ts';
import { stanzaSystemIds } from '../../src/backup/agent.ts';
import type { StanzaInfo } from '../../src/backup/info.ts';

const base = {
  scope: 'staging', name: 'n1', restapi: { listen: '127.0.0.1:8008', authentication: { username: 'admin', password: 'pw' } },
  postgresql: { data_dir: '/var/lib/pgha/data', authentication: { superuser: { username: 'postgres', password: 'a' }, replication: { username: 'replicator', password: 'b' } } },
  backup: { repositories: [{ path: '/srv/repo' }] },
};
const parse = (extra: Record<string, unknown>) => parseConfig(stringify({ ...base, ...extra }), '/etc/pgha/staging.yml');
const error = (extra: Record<string, unknown>) => { try { parse(extra); return ''; } catch (e) { return (e as Error).message; } };

describe('bootstrap.pgbackrest configuration', () => {
  it('accepts a restore point, a time with an offset, an LSN and latest', () => {
    const c = parse({ bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod', target: { name: 'before-migration' } } } });
    expect(c.bootstrap.method).toBe('pgbackrest');
    expect(c.bootstrap.pgbackrest?.target).toEqual({ name: 'before-migration' });
    expect(bootstrapPgbackrestSchema.parse({ stanza: 'p', target: { time: '2026-11-30T10:41:00.25Z' } }).target).toEqual({ time: '2026-11-30 10:41:00.25+00' });
    expect(bootstrapPgbackrestSchema.parse({ stanza: 'p' }).target).toBe('latest');
    expect(bootstrapPgbackrestSchema.parse({ stanza: 'p', target: { lsn: '0/5000028' } }).target).toEqual({ lsn: '0/5000028' });
  });

  it('names the field and the file of a bad value', () => {
    const e = error({ bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod', target: { time: '2026-11-30 10:41:00' } } } });
    expect(e).toContain('/etc/pgha/staging.yml');
    expect(e).toContain('bootstrap.pgbackrest.target');
    expect(error({ bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod', target: { name: 'a', lsn: '0/1' } } } })).toContain('bootstrap.pgbackrest.target');
    expect(error({ bootstrap: { method: 'pgbackrest' } })).toMatch(/bootstrap\.pgbackrest.*needs bootstrap\.pgbackrest/s);
    expect(error({ bootstrap: { method: 'copy' } })).toContain('bootstrap.method');
    const { backup: _b, ...noBackup } = base;
    let e2 = '';
    try { parseConfig(stringify({ ...noBackup, bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod' } } }), '/x.yml'); } catch (err) { e2 = (err as Error).message; }
    expect(e2).toMatch(/backup.*needs the backup: section/s);
  });

  it('refuses the source stanza as this cluster\'s own in a shared repository, and allows it in another', () => {
    const e = error({ scope: 'prod', bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod' } } });
    expect(e).toContain('backup.stanza');
    expect(e).toContain('shared repository /srv/repo');
    expect(error({ scope: 'x', backup: { stanza: 'prod', repositories: [{ path: '/srv/repo/' }] }, bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod' } } })).toContain('backup.stanza');
    expect(error({ scope: 'prod', bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod', repositories: [{ path: '/mnt/prod-repo' }] } } })).toBe('');
    expect(error({ backup: { stanza: 'staging', repositories: [{ path: '/srv/repo' }] }, bootstrap: { method: 'pgbackrest', pgbackrest: { stanza: 'prod' } } })).toBe('');
  });

  it('turns the target into pgbackrest restore options that always promote', () => {
    const p = (t: unknown, extra: Record<string, unknown> = {}) => targetArgs(bootstrapPgbackrestSchema.parse({ stanza: 's', target: t, ...extra }));
    expect(p('latest')).toEqual(['--type=default']);
    expect(p({ name: 'rp1' })).toEqual(['--type=name', '--target=rp1', '--target-action=promote']);
    expect(p({ lsn: '0/5a' }, { exclusive: true })).toEqual(['--type=lsn', '--target=0/5A', '--target-action=promote', '--target-exclusive']);
    expect(p({ time: '2026-11-30 10:41:00+01:00' }, { set: '20261130-101500F' })).toEqual(['--type=time', '--target=2026-11-30 10:41:00+01:00', '--target-action=promote', '--set=20261130-101500F']);
    expect(timeMs(pgTime('2026-11-30T10:41:00Z'))).toBe(Date.parse('2026-11-30T10:41:00Z'));
    expect(timeMs('2026-11-30 11:41:00.5+0100')).toBe(Date.parse('2026-11-30T10:41:00.5Z'));
  });
});

describe('the source checked before anything is restored', () => {
  const backupAt = (label: string, stop: string, lsnStop = '0/3000100') => ({
    label, type: 'full' as const, prior: null, started: stop, stopped: stop, duration_s: 1, size: 1, repo_size: 1,
    wal_start: null, wal_stop: null, lsn_start: '0/3000028', lsn_stop: lsnStop, repo: 1, error: false,
  });
  const info = (o: Partial<StanzaInfo>): StanzaInfo[] => [{ stanza: 'prod', status: 'ok', status_code: 0, backups: [backupAt('20261130-100000F', '2026-11-30T10:00:05.000Z')], wal_min: null, wal_max: null, running: null, ...o }];
  const problem = (target: unknown, infos: StanzaInfo[], set?: string) => sourceProblem(bootstrapPgbackrestSchema.parse({ stanza: 'prod', target, ...(set ? { set } : {}) }), infos);

  it('a missing stanza, a stanza without a backup, an unknown set', () => {
    expect(problem('latest', info({ status: 'missing stanza path', status_code: 1, backups: [] }))).toMatch(/stanza prod does not exist/);
    expect(problem('latest', info({ stanza: 'other' }))).toMatch(/does not exist/);
    expect(problem('latest', info({ status: 'no valid backups', status_code: 2, backups: [] }))).toMatch(/has no backup/);
    expect(problem('latest', info({}), '20261129-100000F')).toMatch(/not in stanza prod/);
    expect(problem('latest', info({}))).toBeNull();
  });

  it('a time or an LSN before the end of the oldest backup; a name is left to recovery', () => {
    expect(problem({ time: '2026-11-30 09:59:00+00' }, info({}))).toMatch(/before the end of the oldest usable backup/);
    expect(problem({ time: '2026-11-30 11:00:05+01' }, info({}))).toBeNull();
    expect(problem({ lsn: '0/3000000' }, info({}))).toMatch(/before the end of the oldest/);
    expect(problem({ lsn: '0/4000000' }, info({}))).toBeNull();
    expect(problem({ name: 'anything' }, info({}))).toBeNull();
  });

  it('reads system ids past 2^53 exactly', () => {
    expect(stanzaSystemIds('[{"db":[{"id":1,"system-id":7312345678901234567,"version":"15"},{"id":2,"system-id":7312345678901234567}]}]')).toEqual(['7312345678901234567']);
  });
});
