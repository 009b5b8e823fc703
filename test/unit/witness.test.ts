// The lease witness's pure parts: protocol encoding and decoding, SCRAM-SHA-256 against RFC 7677's
// test vector, the deadline rule, the agent's lines, and synchronous_standby_names with the witness.
import { describe, expect, it } from 'vitest';
import { CLOSED, formatLease, mayConfirm, orphaned, parseLease, parseStart } from '../../src/witness/lease.ts';
import { WITNESS_NAME, witnessedSyncNames, withoutWitness } from '../../src/witness/names.ts';
import { syncStandbyNames } from '../../src/ha/quorum.ts';
import {
  dataRow, errorFields, formatLsn, frontend, parseLsn, Scram, splitMessages, startupMessage, statusUpdate, streamMessage,
} from '../../src/witness/protocol.ts';
import { witnessScript, witnessStart } from '../../src/agent/witness-client.ts';

const copyData = (body: Buffer): Buffer => frontend('d', body);

describe('protocol', () => {
  it('splits complete messages and keeps an incomplete tail', () => {
    const a = frontend('Z', Buffer.from('I'));
    const b = frontend('d', Buffer.from('hello'));
    const whole = Buffer.concat([a, b]);
    const { messages, rest } = splitMessages(whole.subarray(0, whole.length - 2));
    expect(messages).toEqual([{ type: 'Z', body: Buffer.from('I') }]);
    expect(rest.length).toBe(b.length - 2);
    const again = splitMessages(Buffer.concat([rest, whole.subarray(whole.length - 2)]));
    expect(again.messages.map((m) => [m.type, m.body.toString()])).toEqual([['d', 'hello']]);
    expect(again.rest.length).toBe(0);
  });

  it('refuses a length below 4', () => {
    expect(() => splitMessages(Buffer.from([0x64, 0, 0, 0, 2]))).toThrow(/length/);
  });

  it('encodes the startup message of a replication connection', () => {
    const m = startupMessage({ user: 'repl', replication: 'true' });
    expect(m.readInt32BE(0)).toBe(m.length);
    expect(m.readInt32BE(4)).toBe(196608);
    expect(m.subarray(8).toString('latin1')).toBe('user\0repl\0replication\0true\0\0');
  });

  it('decodes XLogData, keepalives and anything else', () => {
    const w = Buffer.alloc(25 + 100);
    w.write('w', 0, 'latin1');
    w.writeBigUInt64BE(0x1000n, 1);
    w.writeBigUInt64BE(0x2000n, 9);
    expect(streamMessage(w)).toEqual({ kind: 'xlog', start: 0x1000n, end: 0x1000n + 100n, serverEnd: 0x2000n });
    const k = Buffer.alloc(18);
    k.write('k', 0, 'latin1');
    k.writeBigUInt64BE(0x3000n, 1);
    k[17] = 1;
    expect(streamMessage(k)).toEqual({ kind: 'keepalive', serverEnd: 0x3000n, replyRequested: true });
    k[17] = 0;
    expect(streamMessage(k)).toMatchObject({ replyRequested: false });
    expect(streamMessage(Buffer.from('x'))).toEqual({ kind: 'other' });
    expect(splitMessages(copyData(k)).messages[0]?.type).toBe('d');
  });

  it('encodes a standby status update with the position three times and the time since 2000', () => {
    const m = statusUpdate(0x1_0000_0010n, Date.UTC(2000, 0, 1, 0, 0, 1));
    expect(m[0]).toBe(0x64); // 'd'
    expect(m.readInt32BE(1)).toBe(4 + 34);
    const body = m.subarray(5);
    expect(body.toString('latin1', 0, 1)).toBe('r');
    for (const off of [1, 9, 17]) expect(body.readBigUInt64BE(off)).toBe(0x1_0000_0010n);
    expect(body.readBigInt64BE(25)).toBe(1_000_000n);
    expect(body[33]).toBe(0);
  });

  it('reads LSNs, data rows and error fields', () => {
    expect(parseLsn('1/A0')).toBe(0x1_0000_00a0n);
    expect(formatLsn(0x1_0000_00a0n)).toBe('1/A0');
    expect(() => parseLsn('nope')).toThrow();
    const row = Buffer.alloc(2 + 4 + 3 + 4);
    row.writeInt16BE(2, 0);
    row.writeInt32BE(3, 2);
    row.write('abc', 6);
    row.writeInt32BE(-1, 9);
    expect(dataRow(row)).toEqual(['abc', null]);
    expect(errorFields(Buffer.from('SFATAL\0C28P01\0Mno\0\0'))).toEqual({ S: 'FATAL', C: '28P01', M: 'no' });
  });

  it('computes SCRAM-SHA-256 as RFC 7677 section 3', () => {
    const s = new Scram('pencil', 'rOprNGfwEbeRWgbNEkqO', 'user');
    expect(s.initial().subarray(5).toString('latin1')).toContain('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    const final = s.continue('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    expect(final.subarray(5).toString()).toBe('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
    expect(() => s.final('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).not.toThrow();
    expect(() => s.final('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).toThrow(/signature/);
  });

  it('refuses a server nonce that does not extend ours', () => {
    const s = new Scram('pencil', 'abc');
    s.initial();
    expect(() => s.continue('r=xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')).toThrow(/malformed/);
  });
});

describe('the deadline rule', () => {
  it('confirms strictly before the deadline, always when open, never when closed', () => {
    expect(mayConfirm({ mode: 'deadline', at: 1000 }, 999.9)).toBe(true);
    expect(mayConfirm({ mode: 'deadline', at: 1000 }, 1000)).toBe(false);
    expect(mayConfirm({ mode: 'deadline', at: 1000 }, 5000)).toBe(false);
    expect(mayConfirm({ mode: 'open' }, 1e12)).toBe(true);
    expect(mayConfirm(CLOSED, 0)).toBe(false);
  });

  it('keeps a deadline and closes an open lease when the agent is gone', () => {
    expect(orphaned({ mode: 'deadline', at: 5 })).toEqual({ mode: 'deadline', at: 5 });
    expect(orphaned({ mode: 'open' })).toEqual(CLOSED);
  });

  it('reads the lines the agent writes and ignores garbled ones', () => {
    for (const l of [CLOSED, { mode: 'open' } as const, { mode: 'deadline', at: 12.5 } as const]) expect(parseLease(formatLease(l).trim())).toEqual(l);
    expect(parseLease('{"lease":"deadline"}')).toBeNull();
    expect(parseLease('{"lease":"deadline","at":"soon"}')).toBeNull();
    expect(parseLease('not json')).toBeNull();
    expect(parseLease('{"lease":"open","at":5}')).toBeNull();
    expect(parseLease('[1]')).toBeNull();
    const start = { host: 'h', port: 1, user: 'u', password: '', applicationName: 'a', ssl: true, tls: { sslmode: 'verify-full', sslcert: '/c' } };
    expect(parseStart(JSON.stringify(start))).toEqual(start);
    expect(() => parseStart(JSON.stringify({ ...start, port: 0 }))).toThrow(/port/);
    expect(() => parseStart(JSON.stringify({ ...start, tls: { sslpassword: 'x' } }))).toThrow(/tls/);
  });

  it('never echoes the start line, which holds the password', () => {
    expect(() => parseStart('{"password":"s3cret"}')).toThrow();
    try { parseStart('{"password":"s3cret","host":1}'); } catch (e) { expect((e as Error).message).not.toContain('s3cret'); }
  });
});

describe('synchronous_standby_names with the witness', () => {
  it('requires the witness in every mode and keeps the real standbys counting', () => {
    expect(witnessedSyncNames(null, 1)).toBe(`FIRST 1 ("${WITNESS_NAME}")`);
    expect(witnessedSyncNames(['b'], 1, 'first')).toBe(`FIRST 2 ("${WITNESS_NAME}", "b")`);
    expect(witnessedSyncNames(['b', 'c'], 2, 'first')).toBe(`FIRST 3 ("${WITNESS_NAME}", "b", "c")`);
    expect(witnessedSyncNames(['b'], 3, 'first')).toBe(`FIRST 2 ("${WITNESS_NAME}", "b")`);
    expect(witnessedSyncNames(['b', 'c'], 1, 'any')).toBe(`ANY 2 ("${WITNESS_NAME}", "b", "c")`);
    expect(witnessedSyncNames([], 1, 'first')).toBe(`FIRST 2 ("${WITNESS_NAME}", "pgha_no_sync_standby")`);
  });

  it('undoes itself: withoutWitness gives the setting src/ha renders', () => {
    const cases: Array<[string[] | null, number, 'first' | 'any']> = [[null, 0, 'first'], [['b'], 1, 'first'], [['b', 'c'], 1, 'any'], [[], 1, 'first'], [['b', 'c'], 2, 'first']];
    for (const [names, count, method] of cases) expect(withoutWitness(witnessedSyncNames(names, count, method))).toBe(syncStandbyNames(names, count, method));
    expect(withoutWitness('FIRST 1 ("b")')).toBe('FIRST 1 ("b")');
    expect(withoutWitness('')).toBe('');
  });
});

describe('the agent side', () => {
  it('connects to loopback when PostgreSQL listens on every address, as the replication role', () => {
    const cfg = (listen: string) => ({ postgresql: { listen, ssl: undefined, authentication: { replication: { username: 'repl', password: 'pw' } } } }) as never;
    expect(witnessStart(cfg('0.0.0.0:5432'))).toMatchObject({ host: '127.0.0.1', port: 5432, user: 'repl', applicationName: WITNESS_NAME, ssl: false });
    expect(witnessStart(cfg('10.0.0.5:6000'))).toMatchObject({ host: '10.0.0.5', port: 6000, tls: {} });
    const tlsCfg = { postgresql: { listen: '127.0.0.1:5432', ssl: undefined, authentication: { replication: { username: 'r', password: 'p', sslmode: 'verify-full', sslrootcert: '/ca', sslcert: '/c', sslkey: '/k', channel_binding: 'require' } } } } as never;
    expect(witnessStart(tlsCfg)).toMatchObject({ ssl: true, tls: { sslmode: 'verify-full', sslrootcert: '/ca', sslcert: '/c', sslkey: '/k' } });
  });

  it('keeps the witness name for the witness: no member may carry it', async () => {
    const { nodeConfigSchema } = await import('../../src/config/schema.ts');
    const r = nodeConfigSchema.shape.name.safeParse(WITNESS_NAME);
    expect(r.success).toBe(false);
    expect(nodeConfigSchema.shape.name.safeParse('node1').success).toBe(true);
  });

  it('finds the witness beside the agent folder, .ts in a checkout and .js when compiled', () => {
    expect(witnessScript('file:///opt/pgha/dist/agent/witness-client.js')).toBe('/opt/pgha/dist/witness/main.js');
    expect(witnessScript('file:///repo/src/agent/witness-client.ts')).toBe('/repo/src/witness/main.ts');
  });
});

describe('the fence timer feeds the witness', () => {
  it('passes the absolute deadline when armed, and holds (open) instead of arming while paused', async () => {
    const { FenceTimer, combineFences } = await import('../../src/agent/fence.ts');
    const calls: string[] = [];
    const rec = { arm: (ms: number, at?: number) => calls.push(`arm ${ms} ${String(at)}`), disarm: () => calls.push('disarm'), hold: () => calls.push('hold') };
    const plain = { arm: (ms: number) => calls.push(`plain ${ms}`), disarm: () => calls.push('plain disarm') };
    let paused = false;
    const t = new FenceTimer({ now: () => 1000, paused: () => paused, fence: async () => undefined, external: combineFences([plain, rec]) });
    t.arm(2500);
    paused = true;
    t.arm(3000);
    t.disarm();
    expect(calls).toEqual(['plain disarm', 'disarm', 'plain 1500', 'arm 1500 2500', 'plain disarm', 'disarm', 'plain disarm', 'disarm', 'hold', 'plain disarm', 'disarm']);
  });
});
