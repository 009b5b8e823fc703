// The files pgha renders for PostgreSQL (pgha.conf, the passfile, pg_hba.conf) and the small pure
// helpers around them: quoting, role options, error redaction, probe timeouts.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  REQUIRED_PARAMETERS, confValue, conninfo, defaultHba, libpqValue, renderHba, renderPghaConf, renderPgpass,
  syncNamesFromConf, upstreamFromConf, type StandbyConf,
} from '../../src/postgres/conf.ts';
import { syncStandbyNames } from '../../src/ha/quorum.ts';
import { redact } from '../../src/postgres/exec.ts';
import { healthFromRow, probeTimeouts } from '../../src/postgres/probe.ts';
import { scramVerifier, userOptions } from '../../src/postgres/roles.ts';

/** postgresql.conf's quoted-string rules, the reader side: '' is a quote, backslash escapes. */
function readConfValue(text: string): string {
  expect(text.startsWith("'") && text.endsWith("'")).toBe(true);
  const body = text.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i] ?? '';
    const next = body[i + 1] ?? '';
    if (ch === "'" && next === "'") { out += "'"; i++; continue; }
    expect(ch).not.toBe("'"); // a lone quote would end the string early
    if (ch === '\\') { out += ({ n: '\n', r: '\r' } as Record<string, string>)[next] ?? next; i++; continue; }
    out += ch;
  }
  return out;
}

/** libpq's conninfo rules, the reader side: bare words, or single quotes with backslash escapes. */
function readConninfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /\s*([a-z_]+)=(?:'((?:[^'\\]|\\.)*)'|([^\s']+))/gsy;
  let end = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    out[m[1] ?? ''] = m[2] !== undefined ? m[2].replace(/\\(.)/gs, '$1') : (m[3] ?? '');
    end = re.lastIndex;
  }
  expect(text.slice(end).trim()).toBe('');
  return out;
}

const base = { port: 5611, listenHost: '127.0.0.1', socketDir: '/run/pg', parameters: [] };
const standby: StandbyConf = {
  host: '10.0.0.1', port: 5432, user: 'replicator', passfile: "/var/lib/it's a pass\\file", applicationName: 'node2',
  slot: 'node2', upstreamName: 'node1',
};
const line = (text: string, key: string) => text.split('\n').find((l) => l.startsWith(`${key} = `))?.slice(key.length + 3);

describe('renderPghaConf', () => {
  it('writes every required default, and port, listen and socket settings', () => {
    const text = renderPghaConf({ ...base, standby: null });
    for (const [k, v] of Object.entries(REQUIRED_PARAMETERS)) expect(line(text, k)).toBe(confValue(v));
    expect(line(text, 'wal_level')).toBe("'replica'");
    expect(line(text, 'wal_log_hints')).toBe("'on'");
    expect(line(text, 'wal_sender_timeout')).toBe("'5s'");
    expect(line(text, 'wal_receiver_timeout')).toBe("'5s'");
    expect(line(text, 'port')).toBe('5611');
    expect(line(text, 'listen_addresses')).toBe("'127.0.0.1'");
    expect(line(text, 'unix_socket_directories')).toBe("'/run/pg'");
  });

  it('layers required < dynamic < node parameters and ignores the managed ones', () => {
    const text = renderPghaConf({
      ...base, standby: null,
      parameters: [{ max_connections: 50, wal_keep_size: '1GB', port: 1, work_mem: '8MB' }, { max_connections: 70, primary_conninfo: 'host=evil' }],
    });
    expect(line(text, 'max_connections')).toBe('70');
    expect(line(text, 'wal_keep_size')).toBe("'1GB'");
    expect(line(text, 'work_mem')).toBe("'8MB'");
    expect(line(text, 'port')).toBe('5611');
    expect(line(text, 'primary_conninfo')).toBe("''");
    expect(text.match(/^port = /gm)).toHaveLength(1);
  });

  it('refuses a parameter name that could inject a line', () => {
    expect(() => renderPghaConf({ ...base, standby: null, parameters: [{ 'x = 1\nfsync': 'off' }] })).toThrow(/not a parameter name/);
  });

  it('keeps a value with quotes, backslashes and line breaks on one line', () => {
    const v = "it's a\nC:\\path";
    const text = renderPghaConf({ ...base, standby: null, parameters: [{ application_name: v }] });
    expect(readConfValue(line(text, 'application_name') ?? '')).toBe(v);
    expect(text.split('\n').filter((l) => l.startsWith('fsync'))).toEqual([]);
  });

  it('writes the standby settings with a passfile, never a password, and records the upstream', () => {
    const text = renderPghaConf({ ...base, standby });
    expect(text).not.toMatch(/password=/);
    expect(upstreamFromConf(text)).toBe('node1');
    expect(line(text, 'primary_slot_name')).toBe("'node2'");
    expect(line(text, 'recovery_target_timeline')).toBe("'latest'");
    const info = readConninfo(readConfValue(line(text, 'primary_conninfo') ?? ''));
    expect(info).toMatchObject({ host: '10.0.0.1', port: '5432', user: 'replicator', passfile: standby.passfile, application_name: 'node2' });
  });

  it('clears the standby settings of a primary and has no upstream', () => {
    const text = renderPghaConf({ ...base, standby: null, syncNames: 'FIRST 1 ("b")' });
    expect(line(text, 'primary_conninfo')).toBe("''");
    expect(line(text, 'primary_slot_name')).toBe("''");
    expect(line(text, 'synchronous_standby_names')).toBe(`'FIRST 1 ("b")'`);
    expect(upstreamFromConf(text)).toBeNull();
  });

  it('keeps recovery_target_timeline on a primary, so a promotion leaves no setting pending a restart', () => {
    const primary = renderPghaConf({ ...base, standby: null });
    const standbyText = renderPghaConf({ ...base, standby });
    expect(line(primary, 'recovery_target_timeline')).toBe("'latest'");
    expect(primary.match(/^recovery_target_timeline = /gm)).toHaveLength(1);
    expect(standbyText.match(/^recovery_target_timeline = /gm)).toHaveLength(1);
  });

  it('writes an empty slot name without slots', () => {
    expect(line(renderPghaConf({ ...base, standby: { ...standby, slot: null } }), 'primary_slot_name')).toBe("''");
  });
});

describe('quoting', () => {
  it('renders conf values', () => {
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue('a\\b')).toBe("'a\\\\b'");
    expect(confValue(10)).toBe('10');
    expect(confValue(false)).toBe('off');
  });

  it('leaves plain libpq values bare and quotes the rest', () => {
    expect(libpqValue('/var/run/postgresql')).toBe('/var/run/postgresql');
    expect(libpqValue('')).toBe("''");
    expect(libpqValue("/tmp/with space/it's")).toBe("'/tmp/with space/it\\'s'");
  });

  test.prop([fc.string({ unit: 'binary' })])('conf values read back as written', (s) => {
    expect(readConfValue(confValue(s))).toBe(s);
    expect(confValue(s)).not.toMatch(/\n/);
  });

  test.prop([fc.string({ unit: 'binary' }), fc.string()])('conninfo values read back as written, inside pgha.conf too', (path, user) => {
    const info = conninfo([['passfile', path], ['user', user], ['port', 5432]]);
    expect(readConninfo(readConfValue(confValue(info)))).toEqual({ passfile: path, user, port: '5432' });
  });

  it('refuses a password in a connection string', () => {
    expect(() => conninfo([['host', 'h'], ['password', 'x']])).toThrow(/passfile/);
  });
});

describe('renderPgpass', () => {
  it('escapes : and \\ in every field', () => {
    expect(renderPgpass([
      { host: '*', port: '*', database: '*', user: 'u', password: 'a:b\\c' },
      { host: 'db:1', port: 5432, database: 'postgres', user: 'rep', password: "sp ace'q" },
    ])).toBe("*:*:*:u:a\\:b\\\\c\ndb\\:1:5432:postgres:rep:sp ace'q\n");
  });

  it('refuses a line break, which would split an entry', () => {
    expect(() => renderPgpass([{ host: '*', port: '*', database: '*', user: 'u', password: 'a\nb' }])).toThrow(/line break/);
  });
});

describe('pg_hba.conf', () => {
  it('lets only pgha roles in by default, always with scram-sha-256', () => {
    const hba = defaultHba({ superuser: 'postgres', replication: 'replicator', rewind: 'rewinder' });
    expect(hba).toEqual([
      'local all postgres scram-sha-256',
      'host all postgres 127.0.0.1/32 scram-sha-256',
      'host all postgres ::1/128 scram-sha-256',
      'host replication replicator all scram-sha-256',
      'host all rewinder all scram-sha-256',
    ]);
  });

  it('lets the superuser rewind from other hosts when there is no rewind role', () => {
    expect(defaultHba({ superuser: 'pg', replication: 'rep', rewind: null })).toContain('host all pg all scram-sha-256');
  });

  it('renders given lines verbatim under a header', () => {
    expect(renderHba(['local all all peer'])).toBe('# Written by pgha at bootstrap (bootstrap.pg_hba, or pgha\'s default).\nlocal all all peer\n');
  });
});

describe('synchronous_standby_names', () => {
  it('quotes names and blocks commits with an empty strict list', () => {
    expect(syncStandbyNames(['b', 'c"d'], 1)).toBe('FIRST 1 ("b", "c""d")');
    expect(syncStandbyNames([], 1)).toBe('FIRST 1 ("pgha_no_sync_standby")');
    expect(syncStandbyNames(null, 1)).toBe('');
    expect(syncStandbyNames(['b', 'c'], 1, 'any')).toBe('ANY 1 ("b", "c")');
    expect(syncStandbyNames(['b'], 3, 'any')).toBe('ANY 1 ("b")');
    expect(syncStandbyNames([], 1, 'any')).toBe('ANY 1 ("pgha_no_sync_standby")');
  });
  it('reads back the synchronous_standby_names pgha.conf holds', () => {
    for (const v of ['', 'FIRST 1 ("b")', 'ANY 2 ("a", "b\'c", "d\\e")']) {
      expect(syncNamesFromConf(`port = 5432\nsynchronous_standby_names = ${confValue(v)}\nwal_level = 'replica'\n`)).toBe(v);
    }
    expect(syncNamesFromConf('port = 5432\n')).toBe('');
  });
});

describe('roles', () => {
  it('accepts allowed options in any case and adds LOGIN', () => {
    expect(userOptions('app', ['createdb', 'CreateRole'])).toEqual(['LOGIN', 'CREATEDB', 'CREATEROLE']);
    expect(userOptions('ro', ['NOLOGIN'])).toEqual(['NOLOGIN']);
  });

  it('refuses options outside the allow-list (no SQL can ride along)', () => {
    expect(() => userOptions('app', ['CREATEDB', "PASSWORD 'x'"])).toThrow(/not allowed: PASSWORD 'X'/);
    expect(() => userOptions('app', ['CONNECTION LIMIT 5'])).toThrow(/PGHA|not allowed/);
  });

  it('computes a SCRAM-SHA-256 verifier in PostgreSQL\'s format', () => {
    // RFC 7677's example user: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
    const v = scramVerifier('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    expect(v).toBe('SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
    expect(scramVerifier('pencil')).not.toContain('pencil');
  });
});

describe('redact', () => {
  it('cuts secrets and password= pairs out of messages', () => {
    expect(redact('FATAL: bad s3cr3t here', ['s3cr3t'])).toBe('FATAL: bad [REDACTED] here');
    expect(redact("host=h password='a b' user=u", [])).toBe('host=h password=[REDACTED] user=u');
    expect(redact('password=xyz', [''])).toBe('password=[REDACTED]');
  });
});

describe('probe', () => {
  it('nests statement_timeout < query_timeout, and connect + query inside the budget', () => {
    for (const b of [200, 1000, 5000]) {
      const t = probeTimeouts(b);
      expect(t.statement).toBeLessThan(t.query);
      expect(t.connect + t.query).toBeLessThan(b);
    }
  });

  const row = {
    in_recovery: false, current_lsn: '0/3000060', receive_lsn: null, replay_lsn: null, primary_tli: 2, receiver_tli: null,
    streaming: null, fallback_tli: 1, pending_restart: false,
    sync_setting: 'ANY 1 ("b", "c")',
    flush_lsn: '0/3000050', written_lsn: null, replay_ts: null, replay_paused: false, postmaster_start: 1700000000.25, server_version: 150014,
    standbys: [
      { name: 'b', state: 'streaming', sync_state: 'sync', write: '0/3000040', flush: '0/3000000', replay: '0/2000000', write_lag: 0.001, flush_lag: 0.002, replay_lag: 1.5 },
      { name: 'c', state: 'streaming', sync_state: 'potential', write: null, flush: null, replay: null, write_lag: null, flush_lag: null, replay_lag: null },
      { name: 'd', state: 'catchup', sync_state: 'sync', write: '0/1000000', flush: null, replay: null, write_lag: null, flush_lag: null, replay_lag: null },
    ],
  };
  it('reads a primary from its current WAL file, not its last checkpoint; replicas and sync standbys only when streaming', () => {
    expect(healthFromRow(row)).toEqual({
      inRecovery: false, timeline: 2, lsn: 0x3000060, streaming: false, sender: null, pendingRestart: false, syncStandbys: ['b'],
      syncSetting: 'ANY 1 ("b", "c")', replicas: [{ name: 'b', flushLsn: 0x3000000 }, { name: 'c', flushLsn: null }],
      stats: {
        flushLsn: 0x3000050, receivedLsn: null, replayedLsn: null, replayedAt: null, replayPaused: false, postmasterStart: 1700000000.25, serverVersion: 150014,
        standbys: [
          { name: 'b', state: 'streaming', syncState: 'sync', writeLsn: 0x3000040, flushLsn: 0x3000000, replayLsn: 0x2000000, writeLag: 0.001, flushLag: 0.002, replayLag: 1.5 },
          { name: 'c', state: 'streaming', syncState: 'potential', writeLsn: null, flushLsn: null, replayLsn: null, writeLag: null, flushLag: null, replayLag: null },
          { name: 'd', state: 'catchup', syncState: 'sync', writeLsn: 0x1000000, flushLsn: null, replayLsn: null, writeLag: null, flushLag: null, replayLag: null },
        ],
      },
    });
  });
  it('reads a standby\'s received position from the WAL receiver\'s written_lsn first, and no standbys', () => {
    const s = { ...row, in_recovery: true, current_lsn: null, flush_lsn: null, receive_lsn: '0/5000000', written_lsn: '0/5000100', replay_lsn: '0/4000000', replay_ts: 1700000100.5, replay_paused: true };
    expect(healthFromRow(s).stats).toEqual({
      flushLsn: null, receivedLsn: 0x5000100, replayedLsn: 0x4000000, replayedAt: 1700000100.5, replayPaused: true,
      postmasterStart: 1700000000.25, serverVersion: 150014, standbys: [],
    });
    expect(healthFromRow({ ...s, written_lsn: null }).stats.receivedLsn).toBe(0x5000000);
  });
  it('reads a standby: the furthest of receive and replay, the receiver timeline first', () => {
    const s = { ...row, in_recovery: true, current_lsn: null, receive_lsn: '0/5000000', replay_lsn: '0/4000000', primary_tli: null, receiver_tli: 3, streaming: true };
    expect(healthFromRow(s)).toMatchObject({ inRecovery: true, timeline: 3, lsn: 0x5000000, streaming: true, syncStandbys: [] });
    // The WAL receiver's sender (pghactl topology), only while it streams.
    expect(healthFromRow({ ...s, sender: '10.0.0.2:5432' }).sender).toBe('10.0.0.2:5432');
    expect(healthFromRow({ ...s, sender: '10.0.0.2:5432', streaming: false }).sender).toBeNull();
    expect(healthFromRow({ ...s, receiver_tli: null, streaming: null, fallback_tli: 2 })).toMatchObject({ timeline: 2, streaming: false });
  });
});
