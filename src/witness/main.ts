// The lease witness: a process of its own, started by the agent (src/agent/witness-client.ts),
// that connects to the local primary as a physical streaming-replication client named in
// synchronous_standby_names, and confirms WAL only while the leader's lease is valid. With
// synchronous_commit on (its default), a backend returns COMMIT only once the witness confirmed
// the commit's WAL; the witness reads CLOCK_MONOTONIC immediately before every confirmation, so a
// node frozen and thawed past its deadline acknowledges no commit, whatever process wakes first.
//
// It keeps no WAL (the bytes are only counted). Input: the agent's lines on stdin (lease.ts).
// Output: one JSON line per event on stdout ({"event":"streaming",...} or {"event":"disconnected",...}),
// never the password. It exits when the agent is gone and the last deadline has passed.
//
//   node src/witness/main.ts      (the first stdin line is the connection, see lease.ts)
import { connect as netConnect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { CLOSED, mayConfirm, orphaned, parseLease, parseStart, type Lease, type WitnessStart } from './lease.ts';
import {
  authRequest, copyDone, dataRow, errorFields, formatLsn, md5Password, parseLsn, passwordMessage, query, saslMechanisms, Scram,
  splitMessages, sslRequest, startupMessage, statusUpdate, streamMessage, type BackendMessage,
} from './protocol.ts';

/** 250 ms between connection attempts: commits wait while the witness is away, so retry soon, but not in a busy loop. */
const RETRY_MS = 250;
/**
 * 2 s from the connect to streaming (authentication, IDENTIFY_SYSTEM, START_REPLICATION): a
 * server that accepts but never answers is abandoned and asked again. It is the local server, which
 * answers in milliseconds, and every commit waits while the witness is away: a connection opened
 * while the member was promoting once sat without an answer until the old 10 s bound (chaos seed 3,
 * a 12 s write outage after a failover), when a fresh one streamed at once.
 */
const CONNECT_TIMEOUT_MS = 2_000;

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const report = (o: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

let start: WitnessStart | null = null;
let lease: Lease = CLOSED;
let conn: Connection | null = null;
let retry: NodeJS.Timeout | null = null;
let lastError = '';

type Phase = 'auth' | 'identify' | 'start' | 'streaming';

class Connection {
  readonly #s: WitnessStart;
  #sock: Socket;
  #buf = Buffer.alloc(0);
  #phase: Phase = 'auth';
  #scram: Scram | null = null;
  #timeline = 0;
  #startLsn = 0n;
  /** End of the WAL received (or the start position): what a confirmation claims. */
  #received = 0n;
  /** The flush position last confirmed. */
  #confirmed = 0n;
  #closed = false;
  readonly #timer: NodeJS.Timeout;

  constructor(s: WitnessStart) {
    this.#s = s;
    this.#sock = netConnect({ host: s.host, port: s.port });
    this.#sock.setNoDelay(true);
    this.#timer = setTimeout(() => this.close('connection timeout'), CONNECT_TIMEOUT_MS);
    this.#sock.on('error', (e) => this.close(e.message));
    this.#sock.on('close', () => this.close('connection closed'));
    this.#sock.once('connect', () => {
      if (!s.ssl) return this.#startup();
      this.#sock.write(sslRequest());
      this.#sock.once('data', (d: Buffer) => this.#sslAnswer(d));
    });
  }

  #sslAnswer(d: Buffer): void {
    try { this.#tls(d); } catch (e) { this.close((e as Error).message); }
  }

  #tls(d: Buffer): void {
    if (d[0] !== 0x53) return this.#startup(); // 'N': no TLS here; pg_hba decides
    // The replication role's TLS keys, as libpq applies them: a client certificate when one is
    // configured; the server's certificate checked only with sslmode verify-ca (the CA) or
    // verify-full (the CA and the host), otherwise not (it is this host's own server).
    const t = this.#s.tls;
    const verify = t.sslmode === 'verify-ca' || t.sslmode === 'verify-full';
    const plain = this.#sock;
    plain.removeAllListeners('data');
    this.#sock = tlsConnect({
      socket: plain, host: this.#s.host, rejectUnauthorized: verify,
      ...(t.sslrootcert === undefined ? {} : { ca: readFileSync(t.sslrootcert) }),
      ...(t.sslcert === undefined ? {} : { cert: readFileSync(t.sslcert) }),
      ...(t.sslkey === undefined ? {} : { key: readFileSync(t.sslkey) }),
      ...(t.sslmode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
    });
    this.#sock.on('error', (e) => this.close(e.message));
    this.#sock.once('secureConnect', () => this.#startup());
  }

  #startup(): void {
    this.#sock.on('data', (d: Buffer) => this.#data(d));
    this.#sock.write(startupMessage({ user: this.#s.user, replication: 'true', application_name: this.#s.applicationName }));
  }

  #data(d: Buffer): void {
    try {
      const { messages, rest } = splitMessages(this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]));
      this.#buf = Buffer.from(rest);
      for (const m of messages) this.#message(m);
      this.confirm(false);
    } catch (e) {
      this.close((e as Error).message);
    }
  }

  #message(m: BackendMessage): void {
    switch (m.type) {
      case 'R': return this.#auth(m.body);
      case 'E': { const f = errorFields(m.body); throw new Error(`${f.C ?? ''} ${f.M ?? 'server error'}`.trim()); }
      case 'Z': return this.#ready();
      case 'D': return this.#row(m.body);
      case 'W': return this.#streaming();
      case 'd': return this.#copyData(m.body);
      case 'c': throw new Error('end of timeline');
      default: return; // ParameterStatus, BackendKeyData, RowDescription, CommandComplete, notices
    }
  }

  #auth(body: Buffer): void {
    const { code, data } = authRequest(body);
    const s = this.#s;
    if (code === 0) return;
    if (code === 3) { this.#sock.write(passwordMessage(s.password)); return; }
    if (code === 5) { this.#sock.write(md5Password(s.user, s.password, data.subarray(0, 4))); return; }
    if (code === 10) {
      if (!saslMechanisms(data).includes('SCRAM-SHA-256')) throw new Error('the server offers no SCRAM-SHA-256');
      this.#scram = new Scram(s.password);
      this.#sock.write(this.#scram.initial());
      return;
    }
    if (code === 11 && this.#scram !== null) { this.#sock.write(this.#scram.continue(data.toString('utf8'))); return; }
    if (code === 12 && this.#scram !== null) { this.#scram.final(data.toString('utf8')); return; }
    throw new Error(`unsupported authentication request ${code}`);
  }

  #ready(): void {
    if (this.#phase === 'auth') {
      this.#phase = 'identify';
      this.#sock.write(query('IDENTIFY_SYSTEM'));
    } else if (this.#phase === 'identify') {
      if (this.#timeline === 0) throw new Error('IDENTIFY_SYSTEM returned no row');
      this.#phase = 'start';
      this.#sock.write(query(`START_REPLICATION PHYSICAL ${formatLsn(this.#startLsn)} TIMELINE ${this.#timeline}`));
    }
  }

  #row(body: Buffer): void {
    if (this.#phase !== 'identify') return;
    const [, timeline, xlogpos] = dataRow(body);
    this.#timeline = Number(timeline);
    // Streaming starts at the server's current flush position: the witness keeps no WAL, it only
    // confirms positions, so nothing before it is needed.
    this.#startLsn = parseLsn(xlogpos ?? '');
  }

  #streaming(): void {
    clearTimeout(this.#timer);
    this.#phase = 'streaming';
    this.#received = this.#startLsn;
    lastError = '';
    report({ event: 'streaming', timeline: this.#timeline, start: formatLsn(this.#startLsn) });
  }

  #copyData(body: Buffer): void {
    const m = streamMessage(body);
    if (m.kind === 'xlog') { if (m.end > this.#received) this.#received = m.end; return; }
    // The walsender asks for a reply when half its wal_sender_timeout passed without one: answer,
    // with a new position only if the lease allows (confirm reads the clock).
    if (m.kind === 'keepalive' && m.replyRequested) this.confirm(true);
  }

  /**
   * Confirm the WAL received, if the lease allows it at this very moment; `always`: send a status
   * update even without a new position (the last confirmed one), to keep the connection alive.
   */
  confirm(always: boolean): void {
    if (this.#phase !== 'streaming' || this.#closed) return;
    const target = this.#received;
    if (target <= this.#confirmed && !always) return;
    const wall = Date.now();
    // The deadline rule, on CLOCK_MONOTONIC read right before the write: after any freeze the
    // clock has moved on, so a thawed witness never confirms past the deadline.
    if (target > this.#confirmed && mayConfirm(lease, monotonicMs())) {
      this.#confirmed = target;
      this.#sock.write(statusUpdate(target, wall));
    } else if (always) {
      this.#sock.write(statusUpdate(this.#confirmed, wall));
    }
  }

  close(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    if (this.#phase === 'streaming') { try { this.#sock.write(copyDone()); } catch { /* closing anyway */ } }
    this.#sock.destroy();
    if (conn === this) conn = null;
    if (why !== lastError) report({ event: 'disconnected', why });
    // A stream that ends (a promotion ends the timeline or the cascading walsender; a restart)
    // is followed at once by one new attempt: commits wait meanwhile. Failed attempts then retry
    // every RETRY_MS.
    const wasStreaming = this.#phase === 'streaming';
    lastError = why;
    schedule(wasStreaming ? 0 : RETRY_MS);
  }
}

/** Connect when there is a lease to serve and no connection, after `delayMs`. */
function schedule(delayMs = lastError === '' ? 0 : RETRY_MS): void {
  if (retry !== null || conn !== null || start === null || lease.mode === 'closed') return;
  retry = setTimeout(() => {
    retry = null;
    if (conn === null && start !== null && lease.mode !== 'closed') conn = new Connection(start);
  }, delayMs);
}

function setLease(l: Lease): void {
  lease = l;
  conn?.confirm(false);
  schedule();
}

let input = '';
process.stdin.on('data', (d: Buffer) => {
  input += d.toString('utf8');
  let nl: number;
  while ((nl = input.indexOf('\n')) >= 0) {
    const line = input.slice(0, nl);
    input = input.slice(nl + 1);
    if (start === null) {
      try { start = parseStart(line); } catch (e) { report({ event: 'bad start', why: (e as Error).message }); process.exit(2); }
      schedule();
      continue;
    }
    const l = parseLease(line);
    if (l !== null) setLease(l);
  }
});
process.stdin.on('end', () => {
  // The agent is gone: a deadline still holds until it passes, then the witness leaves (its
  // connection closes, and a primary that lists it acknowledges no further commit).
  setLease(orphaned(lease));
  const left = lease.mode === 'deadline' ? Math.max(0, lease.at - monotonicMs()) : 0;
  setTimeout(() => process.exit(0), left);
});
process.on('SIGTERM', () => process.exit(0));
process.stdout.on('error', () => undefined); // the agent gone: reports fail, confirming does not
