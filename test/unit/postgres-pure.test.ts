// Pure PostgreSQL knowledge: LSN arithmetic, pg_controldata parsing, rendered configuration.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { confValue, defaultHba, libpqValue, renderPghaConf, renderPgpass, upstreamFromConf } from '../../src/postgres/conf.ts';
import { parseControlData } from '../../src/postgres/controldata.ts';
import { formatLsn, parseLsn } from '../../src/postgres/lsn.ts';
import { slotNameFor } from '../../src/postgres/types.ts';

describe('lsn', () => {
  it('parses and formats', () => {
    expect(parseLsn('0/3000060')).toBe(0x3000060);
    expect(parseLsn('16/B374D848')).toBe(0x16 * 2 ** 32 + 0xb374d848);
    expect(formatLsn(0x16 * 2 ** 32 + 0xb374d848)).toBe('16/B374D848');
    expect(() => parseLsn('nope')).toThrow(/not a pg_lsn/);
  });
  test.prop([fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })])('round-trips', (n) => {
    expect(parseLsn(formatLsn(n))).toBe(n);
  });
});

describe('pg_controldata', () => {
  const sample = (state: string) => `pg_control version number:            1300
Database system identifier:           7301234567890123456
Database cluster state:               ${state}
Latest checkpoint's TimeLineID:       3
`;
  it.each([
    ['shut down', 'primary-clean'],
    ['in production', 'primary-crashed'],
    ['shut down in recovery', 'standby'],
    ['in archive recovery', 'standby'],
    ['in crash recovery', 'unknown'],
  ])('maps "%s" to %s', (state, want) => {
    const cd = parseControlData(sample(state));
    expect(cd.state).toBe(want);
    expect(cd.systemId).toBe('7301234567890123456');
    expect(cd.timeline).toBe(3);
  });
});

describe('pgha.conf', () => {
  const base = { port: 5441, listenHost: '127.0.0.1', socketDir: '/run/pg', parameters: [] };
  it('quotes values safely', () => {
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue('a\\b')).toBe("'a\\\\b'");
    expect(confValue(10)).toBe('10');
    expect(confValue(true)).toBe('on');
    expect(libpqValue('/tmp/with space/it\'s')).toBe("'/tmp/with space/it\\'s'");
  });
  it('layers parameters and keeps the managed ones', () => {
    const text = renderPghaConf({ ...base, parameters: [{ max_connections: 50, port: 1 }, { max_connections: 70 }], standby: null });
    expect(text).toContain('max_connections = 70');
    expect(text).toContain('port = 5441');
    expect(text).not.toContain('port = 1');
    expect(text).toContain('wal_log_hints = \'on\'');
    expect(text).toContain("primary_conninfo = ''");
  });
  it('writes primary_conninfo with a passfile, never a password, and records the upstream', () => {
    const text = renderPghaConf({ ...base, standby: { host: '10.0.0.1', port: 5432, user: 'replicator', passfile: '/var/lib/pg pass', applicationName: 'node2', slot: 'node2', upstreamName: 'node1' } });
    expect(text).toContain("passfile=''/var/lib/pg pass''");
    expect(text).not.toMatch(/password=/);
    expect(text).toContain("primary_slot_name = 'node2'");
    expect(upstreamFromConf(text)).toBe('node1');
    expect(upstreamFromConf('nothing')).toBeNull();
  });
  it('escapes the passfile', () => {
    expect(renderPgpass([{ host: '*', port: '*', database: '*', user: 'u', password: 'a:b\\c' }])).toBe('*:*:*:u:a\\:b\\\\c\n');
  });
  it('lets only pgha roles in by default', () => {
    const hba = defaultHba({ superuser: 'postgres', replication: 'replicator', rewind: 'rewinder' });
    expect(hba.every((l) => l.endsWith('scram-sha-256'))).toBe(true);
    expect(hba.some((l) => / all all /.test(l))).toBe(false);
  });
  it('derives slot names PostgreSQL accepts', () => {
    expect(slotNameFor('Node-1.a')).toBe('node_1_a');
  });
});
