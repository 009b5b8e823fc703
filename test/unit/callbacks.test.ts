// The callback runner with real scripts in a temp dir, the callbacks around PostgreSQL's steps,
// and the pre_promote veto in the actor (the key must not stay with a member refusing to promote).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Actor, type ActorDeps } from '../../src/agent/act.ts';
import { CallbackPostgres, Callbacks, callbackEnv, runCommand } from '../../src/agent/callbacks.ts';
import { FenceTimer } from '../../src/agent/fence.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { NodeConfig } from '../../src/config/schema.ts';
import { PgHaError, isPgHaError } from '../../src/errors.ts';
import type { Logger } from '../../src/log/logger.ts';
import type { PostgresControl } from '../../src/postgres/types.ts';
import { clusterView } from '../support/observations.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgha-cb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** An executable /bin/sh script; returns its path. */
function script(body: string, mode = 0o755): string {
  const p = join(dir, `s${n++}.sh`);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, mode);
  return p;
}
const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : []);
/** Running (a zombie left for init to reap counts as dead). */
const alive = (pid: number) => { try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

const logs: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
const mk = (level: string) => (fields: Record<string, unknown>, msg: string) => { logs.push({ level, fields, msg }); };
const logger = { info: mk('info'), warn: mk('warn'), error: mk('error'), debug: () => undefined } as unknown as Logger;

function config(pg: Record<string, unknown> = {}): NodeConfig {
  const c = parseConfig('scope: demo\nname: n1\nrestapi: {listen: 127.0.0.1:8008}\npostgresql:\n  data_dir: /var/lib/pgha/x\n  authentication:\n    superuser: {username: postgres, password: pw1}\n    replication: {username: rep, password: pw2}\n', 'test.yml');
  Object.assign(c.postgresql, pg);
  return c;
}

describe('runCommand', () => {
  it('passes the arguments as given and captures the output', async () => {
    const out = join(dir, 'argv.txt');
    const s = script(`echo "$@" >> ${out}; echo hello; echo oops >&2`);
    const r = await runCommand([s, 'fixed arg', 'on_start', 'replica', 'demo'], 5000, {});
    expect(r).toMatchObject({ ok: true, code: 0, timedOut: false, error: null, stdout: 'hello\n', stderr: 'oops\n' });
    expect(lines(out)).toEqual(['fixed arg on_start replica demo']);
  });

  it('reports a non-zero exit', async () => {
    const r = await runCommand([script('exit 3')], 5000, {});
    expect(r).toMatchObject({ ok: false, code: 3, timedOut: false });
  });

  it('kills the whole process group of a script that hangs, at the timeout', async () => {
    const pidFile = join(dir, 'child.pid');
    const s = script(`sleep 30 & echo $! > ${pidFile}; wait`);
    const t0 = performance.now();
    const r = await runCommand([s], 300, {});
    expect(r).toMatchObject({ ok: false, timedOut: true, signal: 'SIGKILL' });
    expect(performance.now() - t0).toBeLessThan(3000);
    const child = Number(readFileSync(pidFile, 'utf8'));
    await new Promise((res) => setTimeout(res, 100)); // the kernel reaps the killed sleep
    expect(alive(child)).toBe(false);
  });

  it('reports a script that is not executable, and one that is missing, without throwing', async () => {
    const notExec = await runCommand([script('exit 0', 0o644)], 5000, {});
    expect(notExec.ok).toBe(false);
    expect(notExec.error).toMatch(/^EACCES/);
    const missing = await runCommand([join(dir, 'nope.sh')], 5000, {});
    expect(missing.ok).toBe(false);
    expect(missing.error).toMatch(/^ENOENT/);
  });

  it('keeps secrets out of the environment', () => {
    expect(callbackEnv({ PATH: '/bin', PGPASSWORD: 'x', ETCD_TOKEN: 'y', MY_SECRET_KEY: 'z', HOME: '/h' })).toEqual({ PATH: '/bin', HOME: '/h' });
  });
});

describe('Callbacks', () => {
  it('runs on_* callbacks as `command action role scope`, logged, without waiting', async () => {
    const out = join(dir, 'fire.txt');
    const s = script(`sleep 0.5; echo "$@" >> ${out}`);
    const cb = new Callbacks({ config: () => config({ callbacks: { on_start: [s, '--x'] } }), logger, env: {} });
    cb.fire('on_start', 'replica');
    expect(lines(out)).toEqual([]); // fired, not awaited: the script has not written yet
    await cb.idle();
    expect(lines(out)).toEqual(['--x on_start replica demo']);
    expect(logs.some((l) => l.fields.callback === 'on_start' && l.msg === 'callback on_start replica done')).toBe(true);
  });

  it('drain waits for running callbacks, at most the given time', async () => {
    const cb = new Callbacks({ config: () => config({ callbacks: { on_stop: [script('sleep 0.3')], on_start: [script('sleep 1.5')] } }), logger, env: {} });
    cb.fire('on_stop', 'primary');
    expect(await cb.drain(3000)).toBe(true);
    cb.fire('on_start', 'primary');
    const t0 = performance.now();
    expect(await cb.drain(200)).toBe(false);
    expect(performance.now() - t0).toBeLessThan(1000);
    await cb.idle();
  }, 15_000);

  it('runs one instance per callback; events meanwhile collapse to the latest', async () => {
    const out = join(dir, 'queue.txt');
    const s = script(`echo "$2" >> ${out}; sleep 0.3`);
    const cb = new Callbacks({ config: () => config({ callbacks: { on_role_change: [s] } }), logger, env: {} });
    cb.fire('on_role_change', 'primary');
    cb.fire('on_role_change', 'replica');
    cb.fire('on_role_change', 'primary');
    await cb.idle();
    expect(lines(out)).toEqual(['primary', 'primary']);
  });

  it('a broken on_* callback is logged with PGHA_CALLBACK_FAILED and never throws', async () => {
    const cb = new Callbacks({ config: () => config({ callbacks: { on_stop: [join(dir, 'missing')], on_reload: [script('exit 0', 0o600)] } }), logger, env: {} });
    expect(() => cb.fire('on_stop', 'primary')).not.toThrow();
    cb.fire('on_reload', 'primary');
    await cb.idle();
    const failed = logs.filter((l) => (l.fields.err as { code?: string } | undefined)?.code === 'PGHA_CALLBACK_FAILED').map((l) => l.fields.callback);
    expect(failed).toEqual(expect.arrayContaining(['on_stop', 'on_reload']));
  });

  it('pre_promote: exit 0 lets the promotion go; non-zero, timeout or a missing script veto it', async () => {
    const run = async (cmd: string | undefined, timeout = 10) => {
      const cb = new Callbacks({ config: () => config({ pre_promote: cmd === undefined ? undefined : [cmd], pre_promote_timeout: timeout }), logger, env: {} });
      try { await cb.prePromote(); return 'go'; } catch (err) { return isPgHaError(err, 'PGHA_PROMOTE_VETOED') ? 'veto' : String(err); }
    };
    expect(await run(undefined)).toBe('go');
    expect(await run(script('exit 0'))).toBe('go');
    expect(await run(script('exit 1'))).toBe('veto');
    expect(await run(join(dir, 'missing'))).toBe('veto');
    const t0 = performance.now();
    expect(await run(script('sleep 30'), 1)).toBe('veto');
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe('CallbackPostgres', () => {
  const setup = (extra: Record<string, unknown> = {}) => {
    const out = join(dir, `pg${n++}.txt`);
    const s = script(`echo "$1 $2" >> ${out}`);
    const events: string[] = [];
    const inner = {
      start: async () => { events.push('start'); },
      stop: async (mode: string) => { events.push(`stop ${mode}${lines(out).includes('before_stop primary') ? ' after before_stop' : ''}`); },
      promote: async () => { events.push('promote'); return { timeline: 2, lsn: '0/1' }; },
      reload: async () => { events.push('reload'); },
      observe: async () => ({ running: true, role: 'standby' }),
    } as unknown as PostgresControl;
    const cbs = Object.fromEntries(['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'].map((a) => [a, [s]]));
    const cb = new Callbacks({ config: () => config({ callbacks: cbs, before_stop: [script(`echo "before_stop $2" >> ${out}; sleep 0.2`)], ...extra }), logger, env: {} });
    return { pg: new CallbackPostgres(inner, cb), cb, out, events };
  };

  it('fires on_start, on_role_change, on_reload and on_stop with the role, and awaits before_stop before a clean stop', async () => {
    const { pg, cb, out, events } = setup();
    await pg.start('standby', null);
    await cb.idle();
    await pg.promote();
    await cb.idle();
    await pg.reload();
    await cb.idle();
    await pg.stop('fast');
    await cb.idle();
    expect(lines(out)).toEqual(['on_start replica', 'on_role_change primary', 'on_reload primary', 'before_stop primary', 'on_stop primary']);
    await pg.start('standby', null); // back as a standby after being primary: a role change
    await cb.idle();
    expect(lines(out).at(-1)).toBe('on_role_change replica');
    expect(events).toEqual(['start', 'promote', 'reload', 'stop fast after before_stop', 'start']);
  });

  it('runs no before_stop before an immediate (fencing) stop', async () => {
    const { pg, cb, out } = setup();
    await pg.start('primary', null);
    await cb.idle(); // on_start and on_stop are different callbacks: they may run side by side
    await pg.stop('immediate');
    await cb.idle();
    expect(lines(out)).toEqual(['on_start primary', 'on_stop primary']);
  });

  it('an operator restart fires on_restart only', async () => {
    const { pg, cb, out } = setup();
    await pg.observe();
    await pg.restart(async () => { await pg.stop('fast'); await pg.start('standby', null); });
    await cb.idle();
    expect(lines(out)).toEqual(['before_stop replica', 'on_restart replica']);
  });
});

describe('pre_promote veto in the actor', () => {
  it('releases the key it just took, never calls pg_promote, and stays out of the race for one ttl', async () => {
    const events: string[] = [];
    let now = 1000;
    const fence = new FenceTimer({ now: () => now, paused: () => false, fence: async () => undefined });
    const cb = new Callbacks({ config: () => config({ pre_promote: [script('echo fencing failed >&2; exit 2')] }), logger, env: {} });
    const actor = new Actor({
      fence, logger, now: () => now,
      config: config(),
      dynamic: () => ({ ttl: 2, fence_margin: 0.5, loop_wait: 0.5 }),
      dcs: {
        acquireLeader: async () => { events.push('acquire'); return true; },
        releaseLeader: async () => { events.push('release'); },
        clearFailover: async () => { events.push('clear request'); },
      },
      pg: { promote: async () => { events.push('pg_promote'); return { timeline: 2, lsn: '0/1' }; } } as unknown as PostgresControl,
      lastKeepalive: () => ({ sentAt: now, ttl: 2 }),
      failsafeHold: () => null,
      setLeadership: (held: boolean) => events.push(`leader ${held}`),
      prePromote: () => cb.prePromote(),
    } as unknown as ActorDeps);
    await actor.run([{ kind: 'acquire' }, { kind: 'promote', reason: 'failover' }], { cluster: null, local: {} as never });
    expect(events).toEqual(['acquire', 'leader true', 'leader false', 'release']);
    expect(fence.deadline).toBeNull();
    expect(logs.some((l) => l.fields.event === 'action failed' && (l.fields.err as { code?: string }).code === 'PGHA_PROMOTE_VETOED')).toBe(true);
    // Within one ttl the member does not take the key again, so another member can.
    events.length = 0;
    now += 1000;
    await actor.run([{ kind: 'acquire' }, { kind: 'promote', reason: 'failover' }], { cluster: null, local: {} as never });
    expect(events).toEqual([]);
    now += 1500;
    await actor.run([{ kind: 'acquire' }], { cluster: null, local: {} as never });
    expect(events).toEqual(['acquire', 'leader true']);
    fence.disarm();
  });

  it('a vetoed switchover publishes the member as vetoed and drops its request before releasing the key', async () => {
    const events: string[] = [];
    const fence = new FenceTimer({ now: () => 0, paused: () => false, fence: async () => undefined });
    fence.arm(60_000);
    const actor = new Actor({
      fence, logger, now: () => 0, config: config(),
      dynamic: () => ({ ttl: 2, fence_margin: 0.5, loop_wait: 0.5 }),
      dcs: { releaseLeader: async () => { events.push('release'); }, clearFailover: async () => { events.push('clear request'); } },
      pg: { promote: async () => { events.push('pg_promote'); return { timeline: 2, lsn: '0/1' }; } } as unknown as PostgresControl,
      setLeadership: (held: boolean) => events.push(`leader ${held}`),
      prePromote: async () => { throw new PgHaError('PGHA_PROMOTE_VETOED', 'no'); },
      republish: async () => { events.push(`publish, vetoed ${String(actor.vetoed)}`); },
    } as unknown as ActorDeps);
    await actor.run([{ kind: 'promote', reason: 'switchover' }, { kind: 'clear_failover' }], { cluster: clusterView(), local: {} as never });
    expect(events).toEqual(['publish, vetoed true', 'clear request', 'leader false', 'release']);
    expect(fence.deadline).toBeNull();
  });
});
