// The PgBouncer pieces that need no PgBouncer: the pgbouncer: section's validation, the bounds of
// an admin call against sockets that never answer or refuse, the redaction of the admin password,
// and pghactl's sentence about the poolers paused.
import { createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgbouncerSchema } from '../../src/config/schema.ts';
import { isPgHaError } from '../../src/errors.ts';
import { createLogger } from '../../src/log/logger.ts';
import { adminCall } from '../../src/pooler/admin.ts';
import { pauseSince, poolerSentence } from '../../src/cli/poolers.ts';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import type { Poolers } from '../../src/pooler/poolers.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';

const pooler = (over: Record<string, unknown> = {}) => ({ host: '127.0.0.1', port: 16430, user: 'pgha_admin', password: 'pooler-pw', ...over });
const parsed = (over: Record<string, unknown> = {}) => pgbouncerSchema.parse({ poolers: [pooler(over)] }).poolers[0]!;

describe('pgbouncer section', () => {
  it('fills the bounds and pooler defaults', () => {
    expect(pgbouncerSchema.parse({ poolers: [{ host: 'pool.example', user: 'a' }] })).toEqual({
      poolers: [{ host: 'pool.example', port: 6432, user: 'a', sslmode: 'disable' }], pause_timeout: 2, call_timeout: 1, resume_timeout: 15,
    });
  });

  it.each([
    ['password and password_file together', { poolers: [pooler({ password_file: '/etc/p' })] }, 'password_file'],
    ['verify-full without sslrootcert', { poolers: [pooler({ sslmode: 'verify-full' })] }, 'sslrootcert'],
    ['a relative password_file', { poolers: [pooler({ password: undefined, password_file: 'p' })] }, 'password_file'],
    ['a host with a space', { poolers: [pooler({ host: 'a b' })] }, 'host'],
    ['two poolers with one name', { poolers: [pooler(), pooler()] }, '1'],
    ['a route_check without port', { route_check: '10.0.0.5' }, 'route_check'],
    ['a pause_timeout of a day', { pause_timeout: 86400 }, 'pause_timeout'],
  ])('refuses %s', (_what, input, field) => {
    const r = pgbouncerSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.')).join(' ')).toContain(field);
  });
});

describe('adminCall bounds', () => {
  let hung: Server;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    hung = createServer((s) => { sockets.push(s); s.on('error', () => undefined); });
    await new Promise<void>((r) => hung.listen(16431, '127.0.0.1', () => r()));
  });
  afterAll(() => { for (const s of sockets) s.destroy(); hung.close(); });

  it('gives up on a pooler that accepts TCP and never answers at its bound, naming it', async () => {
    const t = performance.now();
    const err = await adminCall(parsed({ name: 'hung', port: 16431 }), 'PAUSE', 300).catch((e: unknown) => e);
    const ms = performance.now() - t;
    expect(isPgHaError(err, 'PGHA_POOLER_FAILED')).toBe(true);
    expect(String((err as Error).message)).toBe('hung: PAUSE got no answer within 300 ms');
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1000);
  });

  it('fails at once, naming host:port, when nothing listens; the password is never in the message', async () => {
    const err = await adminCall(parsed({ port: 16432 }), 'RESUME', 2000).catch((e: unknown) => e);
    expect(isPgHaError(err, 'PGHA_POOLER_FAILED')).toBe(true);
    expect(String((err as Error).message)).toMatch(/^127\.0\.0\.1:16432: RESUME failed: .*ECONNREFUSED/);
    expect(String((err as Error).message)).not.toContain('pooler-pw');
  });
});

it('the logger redacts a pooler password wherever the configuration is logged', () => {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
  const log = createLogger({ destination });
  log.info({ config: { pgbouncer: { poolers: [pooler()] } } }, 'config');
  log.info({ pooler: pooler() }, 'one');
  expect(lines.join('')).not.toContain('pooler-pw');
  expect(lines.join('')).toContain('[REDACTED]');
});

describe('pghactl switchover: the poolers paused', () => {
  const body = {
    configured: true, reports: [
      { step: 'pause', at: '2026-11-30T07:00:00.000Z', outcomes: [{ pooler: 'old', command: 'PAUSE', ok: true, ms: 1 }] },
      { step: 'pause', at: '2026-11-30T07:10:00.000Z', outcomes: [
        { pooler: 'pool1', command: 'PAUSE', ok: true, ms: 3 },
        { pooler: 'pool1', command: 'RECONNECT', ok: true, ms: 2 },
        { pooler: 'pool2', command: 'PAUSE', ok: false, ms: 2001, error: 'pool2: PAUSE got no answer within 2000 ms' }] },
      { step: 'resume', at: '2026-11-30T07:10:01.000Z', waitedMs: 300, outcomes: [] },
    ],
  };

  it('names the poolers paused and those that were not, from the last pause since the request', () => {
    expect(poolerSentence(pauseSince(body, '2026-11-30T07:05:00.000Z'))).toBe('poolers paused: pool1 (3 ms); NOT paused: pool2 (pool2: PAUSE got no answer within 2000 ms)');
  });

  it('says so when there is no report for this switchover', () => {
    expect(pauseSince(body, '2026-11-30T07:20:00.000Z')).toBeNull();
    expect(pauseSince({ configured: false, reports: [] }, '2026-11-30T07:00:00.000Z')).toBeNull();
    expect(pauseSince({ nonsense: 1 }, '2026-11-30T07:00:00.000Z')).toBeNull();
    expect(poolerSentence(null)).toMatch(/^poolers: none paused/);
  });
});

describe('the actor around a switchover', () => {
  const silent = createLogger({ destination: new Writable({ write(_c, _e, cb) { cb(); } }) });
  const deps = (events: string[], fence: FenceTimer) => ({
    fence, logger: silent, now: () => 0,
    config: { name: 'n1', postgresql: { listen: '127.0.0.1:5432' } },
    dynamic: () => ({ ttl: 2, fence_margin: 0.5, loop_wait: 60 }),
    dcs: { releaseLeader: async () => { events.push('release'); }, setShutdownLsn: async () => { events.push('shutdown lsn'); } },
    pg: {
      stop: async (mode: string) => { events.push(`stop ${mode}`); },
      checkpointLsn: async () => 100,
      start: async (as: string) => { events.push(`start ${as}`); },
      promote: async () => { events.push('pg_promote'); return { timeline: 2, lsn: '0/1' }; },
    } as unknown as PostgresControl,
    setLeadership: (held: boolean) => events.push(`leader ${held}`),
    poolers: {
      pause: async () => { events.push('PAUSE'); return null; },
      resumeWhenWritable: async (self: string | null, reconnect: boolean) => { events.push(`${reconnect ? 'reconnect and ' : ''}resume when writable (not ${self ?? '-'})`); },
    } as unknown as Poolers,
  }) as unknown as ActorDeps;

  it('the old leader pauses the poolers while still primary, and resumes them once the key is released', async () => {
    const events: string[] = [];
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
    fence.arm(60_000);
    // decide() follows step_down with its own start as a standby.
    await new Actor(deps(events, fence)).run([{ kind: 'step_down' }, { kind: 'start', as: 'standby', upstream: null }], { cluster: null, local: {} as never });
    expect(events).toEqual(['PAUSE', 'leader false', 'stop fast', 'shutdown lsn', 'leader false', 'release', 'resume when writable (not 127.0.0.1:5432)', 'start standby']);
  });

  it('the poolers are resumed even when the step-down fails half-way', async () => {
    const events: string[] = [];
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
    fence.arm(60_000);
    const d = deps(events, fence);
    (d.pg as unknown as { stop: () => Promise<void> }).stop = async () => { events.push('stop fails'); throw new Error('pg_ctl stop failed'); };
    await new Actor(d).run([{ kind: 'step_down' }, { kind: 'start', as: 'standby', upstream: null }], { cluster: null, local: {} as never });
    expect(events).toEqual(['PAUSE', 'leader false', 'stop fails', 'resume when writable (not 127.0.0.1:5432)']);
    fence.disarm();
  });

  it('a new leader reconnects and resumes the poolers after pg_promote', async () => {
    const events: string[] = [];
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
    fence.arm(60_000);
    const d = deps(events, fence);
    (d.dcs as unknown as Record<string, unknown>)['appendHistory'] = async () => { events.push('history'); };
    await new Actor(d).run([{ kind: 'promote', reason: 'failover' }], { cluster: null, local: {} as never });
    expect(events).toEqual(['pg_promote', 'reconnect and resume when writable (not -)', 'history']);
    fence.disarm();
  });

  it('a new leader after a switchover only resumes: a RECONNECT could follow the old leader\'s RESUME', async () => {
    const events: string[] = [];
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
    fence.arm(60_000);
    const d = deps(events, fence);
    (d.dcs as unknown as Record<string, unknown>)['appendHistory'] = async () => { events.push('history'); };
    await new Actor(d).run([{ kind: 'promote', reason: 'switchover' }], { cluster: null, local: {} as never });
    expect(events).toEqual(['pg_promote', 'resume when writable (not -)', 'history']);
    fence.disarm();
  });
});
