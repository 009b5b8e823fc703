// The part of PostgreSQL's frontend/backend protocol (version 3.0) the lease witness speaks: the
// startup of a physical replication connection, authentication (trust, password, md5,
// SCRAM-SHA-256), the simple queries IDENTIFY_SYSTEM and START_REPLICATION, and the CopyBoth
// stream (XLogData 'w', primary keepalive 'k', standby status update 'r'). Pure: bytes in, bytes
// or values out; the I/O is in main.ts. Reference: the PostgreSQL 15 manual, "Frontend/Backend
// Protocol" (message formats) and "Streaming Replication Protocol".
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** One message from the server: its type byte and its body (without type and length). */
export interface BackendMessage {
  type: string;
  body: Buffer;
}

/** Splits complete messages off the front of `buf`; `rest` is an incomplete tail to keep. */
export function splitMessages(buf: Buffer): { messages: BackendMessage[]; rest: Buffer } {
  const messages: BackendMessage[] = [];
  let off = 0;
  while (buf.length - off >= 5) {
    const len = buf.readInt32BE(off + 1);
    if (len < 4) throw new Error(`protocol: message length ${len}`);
    if (buf.length - off < 1 + len) break;
    messages.push({ type: String.fromCharCode(buf[off]!), body: buf.subarray(off + 5, off + 1 + len) });
    off += 1 + len;
  }
  return { messages, rest: buf.subarray(off) };
}

/** A typed frontend message: type byte, Int32 length (itself included), body. */
export function frontend(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstring = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

/** StartupMessage (protocol 3.0) of a physical replication connection. */
export function startupMessage(params: Record<string, string>): Buffer {
  const pairs = Object.entries(params).flatMap(([k, v]) => [cstring(k), cstring(v)]);
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), ...pairs, Buffer.from([0])]);
  const head = Buffer.alloc(4);
  head.writeInt32BE(body.length + 4, 0);
  return Buffer.concat([head, body]);
}

/** SSLRequest: the server answers one byte, 'S' (go on with TLS) or 'N'. */
export function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(80877103, 4);
  return b;
}

export const query = (sql: string): Buffer => frontend('Q', cstring(sql));
export const copyDone = (): Buffer => frontend('c', Buffer.alloc(0));
export const terminate = (): Buffer => frontend('X', Buffer.alloc(0));

/** The fields of an ErrorResponse or NoticeResponse, by code letter (S severity, C SQLSTATE, M message). */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const code = String.fromCharCode(body[off]!);
    const end = body.indexOf(0, off + 1);
    if (end < 0) break;
    out[code] = body.toString('utf8', off + 1, end);
    off = end + 1;
  }
  return out;
}

/** The columns of one DataRow (null for SQL NULL). */
export function dataRow(body: Buffer): Array<string | null> {
  const n = body.readInt16BE(0);
  const cols: Array<string | null> = [];
  let off = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(off);
    off += 4;
    if (len < 0) { cols.push(null); continue; }
    cols.push(body.toString('utf8', off, off + len));
    off += len;
  }
  return cols;
}

/** An LSN 'X/Y' as a bigint; throws on anything else. */
export function parseLsn(s: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(s);
  if (m === null) throw new Error(`protocol: not an LSN: ${s}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(l: bigint): string {
  return `${(l >> 32n).toString(16).toUpperCase()}/${(l & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** What one CopyData of the replication stream says. */
export type StreamMessage =
  | { kind: 'xlog'; start: bigint; end: bigint; serverEnd: bigint }
  | { kind: 'keepalive'; serverEnd: bigint; replyRequested: boolean }
  | { kind: 'other' };

/** A CopyData body from the walsender: XLogData 'w' (the WAL bytes are only counted) or keepalive 'k'. */
export function streamMessage(body: Buffer): StreamMessage {
  const t = String.fromCharCode(body[0] ?? 0);
  if (t === 'w' && body.length >= 25) {
    const start = body.readBigUInt64BE(1);
    return { kind: 'xlog', start, end: start + BigInt(body.length - 25), serverEnd: body.readBigUInt64BE(9) };
  }
  if (t === 'k' && body.length >= 18) return { kind: 'keepalive', serverEnd: body.readBigUInt64BE(1), replyRequested: body[17] === 1 };
  return { kind: 'other' };
}

/** Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01 00:00:00 UTC. */
const PG_EPOCH_US = 946_684_800_000_000n;

/** Standby status update 'r' in a CopyData: written, flushed and applied up to `lsn`. */
export function statusUpdate(lsn: bigint, nowUnixMs: number): Buffer {
  const b = Buffer.alloc(34);
  b.write('r', 0, 'latin1');
  b.writeBigUInt64BE(lsn, 1);
  b.writeBigUInt64BE(lsn, 9);
  b.writeBigUInt64BE(lsn, 17);
  b.writeBigInt64BE(BigInt(Math.floor(nowUnixMs)) * 1000n - PG_EPOCH_US, 25);
  b[33] = 0;
  return frontend('d', b);
}

/** AuthenticationXXX ('R'): the request code and its data. */
export function authRequest(body: Buffer): { code: number; data: Buffer } {
  return { code: body.readInt32BE(0), data: body.subarray(4) };
}

export const passwordMessage = (password: string): Buffer => frontend('p', cstring(password));

/** md5 password response: 'md5' + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Buffer): Buffer {
  const inner = createHash('md5').update(password + user).digest('hex');
  const outer = createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
  return passwordMessage(`md5${outer}`);
}

/** SASL mechanisms the server offers (AuthenticationSASL data: a list of C strings). */
export function saslMechanisms(data: Buffer): string[] {
  return data.toString('utf8').split('\0').filter((s) => s.length > 0);
}

/** A SCRAM-SHA-256 exchange (RFC 5802, RFC 7677) without channel binding. */
export class Scram {
  readonly #password: string;
  readonly #nonce: string;
  readonly #user: string;
  #firstBare = '';
  #serverSignature: Buffer | null = null;

  /** `user` stays empty for PostgreSQL, which takes the startup message's (RFC 7677's test vector names one). */
  constructor(password: string, nonce = randomBytes(18).toString('base64'), user = '') {
    this.#password = password;
    this.#nonce = nonce;
    this.#user = user;
  }

  /** SASLInitialResponse. */
  initial(): Buffer {
    this.#firstBare = `n=${this.#user},r=${this.#nonce}`;
    const msg = Buffer.from(`n,,${this.#firstBare}`);
    const len = Buffer.alloc(4);
    len.writeInt32BE(msg.length, 0);
    return frontend('p', Buffer.concat([cstring('SCRAM-SHA-256'), len, msg]));
  }

  /** SASLResponse to the server-first message. */
  continue(serverFirst: string): Buffer {
    const attrs = scramAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (nonce === undefined || !nonce.startsWith(this.#nonce) || salt === undefined || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error('SCRAM: the server-first message is malformed');
    }
    const salted = pbkdf2Sync(this.#password, Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#firstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
    this.#serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return frontend('p', Buffer.from(`${withoutProof},p=${proof.toString('base64')}`));
  }

  /** The server-final message: throws unless the server proved it knows the password too. */
  final(serverFinal: string): void {
    const v = scramAttributes(serverFinal).get('v');
    const got = v === undefined ? Buffer.alloc(0) : Buffer.from(v, 'base64');
    if (this.#serverSignature === null || got.length !== this.#serverSignature.length || !timingSafeEqual(got, this.#serverSignature)) {
      throw new Error('SCRAM: the server signature does not match');
    }
  }
}

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

function scramAttributes(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}
