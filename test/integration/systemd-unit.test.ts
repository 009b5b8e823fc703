// The shipped systemd/pgha.service under a real systemd: three Debian 12 containers booted with
// systemd-nspawn (test/support/nspawn.ts), pgha installed from this checkout with the unit file
// copied unchanged, and `systemctl enable --now pgha`. Each test acts through systemctl, signals or
// the container's power and checks what the unit promises: Type=notify, the watchdog with
// WatchdogSignal=SIGKILL, KillMode=mixed, Restart=on-failure, and a member's return after a
// container crash or power-off. The measured times go to docs/benchmarks.md by hand.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpStatus, queryOnce, sleep, superuserClient, waitFor } from '../support/cluster.ts';
import { NspawnLab, labLeftovers, type Machine } from '../support/nspawn.ts';

const log = (msg: string) => console.log(`[systemd-lab] ${msg}`);
const lab = new NspawnLab({
  nodes: 3, log,
  // synchronous_mode: an acknowledged write is on a standby too, so "no acknowledged write lost"
  // is a strict check across a clean stop.
  configure: (_i, cfg) => { cfg.bootstrap.dcs.synchronous_mode = 'on'; },
});
const [n1, n2, n3] = lab.machines as [Machine, Machine, Machine];
const api = (m: Machine, path: string) => httpStatus(`http://${m.ip}:8008${path}`, 500);
const client = (m: Machine) => superuserClient({ host: m.ip, port: 5432, connectMs: 500, queryMs: 1000 });

async function primaryOf(ms: Machine[]): Promise<Machine | null> {
  const codes = await Promise.all(ms.map((m) => api(m, '/primary')));
  const p = ms.filter((_, k) => codes[k] === 200);
  return p.length === 1 ? p[0]! : null;
}

async function waitCluster(timeoutMs: number): Promise<Machine> {
  return waitFor('one primary and two streaming standbys', async () => {
    const p = await primaryOf(lab.machines);
    if (p === null) return null;
    const others = lab.machines.filter((m) => m !== p);
    const codes = await Promise.all(others.map((m) => api(m, '/replica?replication_state=streaming')));
    return codes.every((c) => c === 200) ? p : null;
  }, timeoutMs, 200);
}

function unitProp(m: Machine, prop: string): string {
  return lab.systemctl(m, 'show', '-p', prop, '--value', 'pgha').stdout.trim();
}

/** Write ids 1, 2, ... to one member until it fails or is stopped; each ack with its time. */
function writer(m: Machine, table: string) {
  const acks: Array<{ id: number; at: number }> = [];
  let stop = false;
  const done = (async () => {
    const c = client(m);
    try {
      await c.connect();
      await c.query(`create table if not exists ${table} (id int primary key)`);
      for (let id = 1; !stop; id++) {
        await c.query(`insert into ${table}(id) values ($1)`, [id]);
        acks.push({ id, at: performance.now() });
        await sleep(10);
      }
    } catch { /* the member went away: the writer ends */ }
    await c.end().catch(() => undefined);
  })();
  return { acks, stop: async () => { stop = true; await done; } };
}

/** The first moment one of `ms` takes a write (polled every 50 ms), and which member. */
async function firstWritable(ms: Machine[], table: string, timeoutMs: number): Promise<{ m: Machine; at: number }> {
  return waitFor('a writable new primary', async () => {
    for (const m of ms) {
      const ok = await queryOnce(client(m), `insert into ${table}(id) values (-1) on conflict do nothing`).then(() => true, () => false);
      if (ok) return { m, at: performance.now() };
    }
    return null;
  }, timeoutMs, 50);
}

async function ackedIdsOn(m: Machine, table: string): Promise<Set<number>> {
  const r = await queryOnce(client(m), `select id from ${table}`);
  return new Set(r.rows.map((row: { id: number }) => row.id));
}

beforeAll(async () => {
  await lab.start();
}, 900_000); // a fresh machine builds the image first (debootstrap, ~3 min); then ~10 s of boots

// On a failure, the tail of each member's journal says what the agents and systemd did.
afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const m of lab.machines) if (m.nspawn !== null) log(`${m.name} journal tail:\n${lab.journal(m).split('\n').slice(-25).join('\n')}`);
});

afterAll(async () => {
  await lab.destroy();
  expect(labLeftovers()).toEqual([]);
}, 120_000);

describe('pgha.service under systemd', () => {
  it('Type=notify: a bad config fails the start, and journalctl names the field', async () => {
    const cfg = lab.configFor(n1);
    cfg.bootstrap.dcs.ttl = 'two seconds';
    lab.writeConfig(n1, cfg);
    const r = lab.systemctl(n1, 'start', 'pgha');
    expect(r.code).not.toBe(0);
    // Restart=on-failure tries again every RestartSec; stop that before the next test starts it.
    lab.systemctl(n1, 'stop', 'pgha');
    lab.systemctl(n1, 'reset-failed', 'pgha');
    const journal = lab.journal(n1);
    expect(journal).toMatch(/PGHA_CONFIG_\w+/);
    expect(journal).toContain('ttl');
    lab.writeConfig(n1, lab.configFor(n1));
  });

  it('Type=notify: systemctl enable --now returns only once the REST API answers', async () => {
    for (const m of lab.machines) {
      let apiFirst: number | null = null;
      let returned = false;
      const poll = (async () => {
        while (!returned) {
          if (apiFirst === null && (await api(m, '/liveness')) !== 0) apiFirst = performance.now();
          await sleep(20);
        }
      })();
      const t0 = performance.now();
      const r = await lab.execAsync(m, ['systemctl', 'enable', '--now', 'pgha']);
      const tReturn = performance.now();
      // The API is up the moment systemctl returns: READY=1 came after it. Any HTTP status counts;
      // 0 means refused (not listening) or no answer within 5 s (a member that is busy joining
      // may be slow to answer its first request on a loaded machine, but it is listening).
      const atReturn = await httpStatus(`http://${m.ip}:8008/liveness`, 5000);
      returned = true;
      await poll;
      expect(r.code, r.stderr).toBe(0);
      expect(atReturn).not.toBe(0);
      expect(unitProp(m, 'ActiveState')).toBe('active');
      log(`${m.name}: systemctl start took ${Math.round(tReturn - t0)} ms; API first seen ${apiFirst === null ? 'never' : Math.round(apiFirst - t0)} ms`);
    }
    const p = await waitCluster(90_000);
    log(`primary: ${p.name}`);
  }, 240_000);

  it('reload: without ExecReload, systemctl reload is refused and the agent keeps running', async () => {
    // The unit has no ExecReload until the agent handles SIGHUP (see its comment): a reload must
    // then be refused, not turned into a signal that would end the agent. Once ExecReload is in the
    // unit, this test must change to "re-reads the configuration without a restart".
    const unitText = lab.exec(n1, ['systemctl', 'cat', 'pgha']).stdout;
    if (/^ExecReload=/m.test(unitText)) throw new Error('the unit has ExecReload now: test the live reload instead');
    const pid = unitProp(n1, 'MainPID');
    const r = lab.systemctl(n1, 'reload', 'pgha');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not applicable|not support|reload/i);
    await sleep(1000);
    expect(unitProp(n1, 'MainPID')).toBe(pid);
    expect(unitProp(n1, 'ActiveState')).toBe('active');
  });

  it('watchdog: a SIGSTOPped leader agent gets the whole unit SIGKILLed and restarted, and rejoins as a standby', async () => {
    const leader = await waitCluster(60_000);
    const others = lab.machines.filter((m) => m !== leader);
    const before = lab.unitProcesses(leader);
    expect(before.some((p) => p.comm === 'postgres')).toBe(true);
    const restartsBefore = Number(unitProp(leader, 'NRestarts'));
    const main = unitProp(leader, 'MainPID');
    const w = writer(leader, 'wd');
    await waitFor('first writes', async () => w.acks.length > 5, 10_000);
    const t0 = performance.now();
    lab.exec(leader, ['kill', '-STOP', main]);
    // Every process the unit had (agent, fencer, postmaster, backends) gone.
    const allGone = await waitFor('the unit\'s old processes killed', async () => {
      const now = new Set(lab.unitProcesses(leader).map((p) => p.pid));
      return before.every((p) => !now.has(p.pid)) ? performance.now() : null;
    }, 15_000, 20);
    const killMs = allGone - t0;
    const fresh = await firstWritable(others, 'wd', 30_000);
    await w.stop();
    const failoverMs = fresh.at - t0;
    log(`watchdog: unit killed ${Math.round(killMs)} ms after SIGSTOP; ${fresh.m.name} writable after ${Math.round(failoverMs)} ms`);
    // WatchdogSec=1000ms plus up to a full pet interval and systemd's timer slack: 3 s is the
    // bound on a loaded 2-core machine.
    expect(killMs).toBeLessThan(3000);
    const lastAck = w.acks.at(-1)?.at ?? 0;
    expect(lastAck).toBeLessThan(fresh.at);
    expect(lab.journal(leader)).toMatch(/[Ww]atchdog timeout/);
    // Restart=on-failure: the agent comes back and the member rejoins as a standby.
    await waitFor('the old leader streaming again', async () => (await api(leader, '/replica?replication_state=streaming')) === 200, 60_000, 200);
    expect(Number(unitProp(leader, 'NRestarts'))).toBeGreaterThan(restartsBefore);
    const ids = await ackedIdsOn(fresh.m, 'wd');
    const lost = w.acks.filter((a) => !ids.has(a.id));
    expect(lost).toEqual([]);
    await waitCluster(60_000);
  }, 180_000);

  it('KillMode=mixed: systemctl stop on the leader hands over with no acknowledged write lost', async () => {
    const leader = await waitCluster(60_000);
    const others = lab.machines.filter((m) => m !== leader);
    const w = writer(leader, 'stop_handover');
    await waitFor('first writes', async () => w.acks.length > 5, 10_000);
    const t0 = performance.now();
    const stopped = lab.execAsync(leader, ['systemctl', 'stop', 'pgha']);
    const fresh = await firstWritable(others, 'stop_handover', 30_000);
    await w.stop();
    const r = await stopped;
    expect(r.code, r.stderr).toBe(0);
    log(`systemctl stop: ${fresh.m.name} writable after ${Math.round(fresh.at - t0)} ms`);
    expect(fresh.at - t0).toBeLessThan(5000);
    expect(lab.unitProcesses(leader)).toEqual([]);
    const ids = await ackedIdsOn(fresh.m, 'stop_handover');
    expect(w.acks.filter((a) => !ids.has(a.id))).toEqual([]);
    expect(lab.systemctl(leader, 'start', 'pgha').code).toBe(0);
    await waitCluster(60_000);
  }, 180_000);

  it('KillMode=mixed: SIGKILL to the agent alone leaves no PostgreSQL in the unit', async () => {
    const leader = await waitCluster(60_000);
    const m = lab.machines.find((x) => x !== leader)!;
    const before = lab.unitProcesses(m);
    expect(before.filter((p) => p.comm === 'postgres').length).toBeGreaterThan(1);
    const t0 = performance.now();
    expect(lab.systemctl(m, 'kill', '-s', 'SIGKILL', '--kill-whom=main', 'pgha').code).toBe(0);
    await waitFor('every old process of the unit gone', async () => {
      const now = new Set(lab.unitProcesses(m).map((p) => p.pid));
      return before.every((p) => !now.has(p.pid));
    }, 5000, 20);
    log(`kill --kill-whom=main: the unit's PostgreSQL gone after ${Math.round(performance.now() - t0)} ms`);
    await waitFor('the member streaming again', async () => (await api(m, '/replica?replication_state=streaming')) === 200, 60_000, 200);
    await waitCluster(60_000);
  }, 120_000);

  it('a container killed outright fails over; booted again, the member rejoins as a standby', async () => {
    const leader = await waitCluster(60_000);
    const others = lab.machines.filter((m) => m !== leader);
    const w = writer(leader, 'crash');
    await waitFor('first writes', async () => w.acks.length > 5, 10_000);
    const t0 = performance.now();
    await lab.killMachine(leader);
    const fresh = await firstWritable(others, 'crash', 30_000);
    await w.stop();
    log(`container killed: ${fresh.m.name} writable after ${Math.round(fresh.at - t0)} ms`);
    const ids = await ackedIdsOn(fresh.m, 'crash');
    expect(w.acks.filter((a) => !ids.has(a.id))).toEqual([]);
    lab.boot(leader);
    await lab.waitBooted(leader);
    await waitFor('the old leader streaming again', async () => (await api(leader, '/replica?replication_state=streaming')) === 200, 90_000, 200);
    await waitCluster(60_000);
  }, 240_000);

  it('a container powered off by its systemd hands over; booted again, the member rejoins', async () => {
    const leader = await waitCluster(60_000);
    const others = lab.machines.filter((m) => m !== leader);
    const w = writer(leader, 'poweroff');
    await waitFor('first writes', async () => w.acks.length > 5, 10_000);
    const t0 = performance.now();
    lab.exec(leader, ['systemctl', 'poweroff', '--no-block']);
    const fresh = await firstWritable(others, 'poweroff', 30_000);
    await w.stop();
    log(`container powered off: ${fresh.m.name} writable after ${Math.round(fresh.at - t0)} ms`);
    await lab.waitGone(leader, 60_000);
    const ids = await ackedIdsOn(fresh.m, 'poweroff');
    expect(w.acks.filter((a) => !ids.has(a.id))).toEqual([]);
    lab.boot(leader);
    await lab.waitBooted(leader);
    await waitFor('the old leader streaming again', async () => (await api(leader, '/replica?replication_state=streaming')) === 200, 90_000, 200);
    await waitCluster(60_000);
  }, 240_000);
});

void n2; void n3;
