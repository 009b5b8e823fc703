// A model of three agents sharing an etcd-like leader key, driven by random schedules of loop
// runs, clock advances, etcd partitions, PostgreSQL crashes and writes. The leader key behaves
// like ours: create-if-absent, bound to the holder's lease, gone TTL after the last keepalive
// etcd received. The fence timer stops a primary at its lease deadline. Invariant: never two
// running primaries, and every promotion is by the key holder. With failsafe_mode, a leader cut
// off from etcd asks the members it can reach (POST /failsafe, answered by the same rule as the
// agent's) and extends its deadline by the agent's rule; members can also be cut off from each
// other, and etcd can be down for everyone. Each modelled agent runs the real loop of the core:
// decide(observation) -> its steps, one Outcome each -> remember(memory, observation, outcomes),
// with the deadline arithmetic of src/ha/lease.ts. A `break` makes a member's data refuse to
// start until it is rewound or cloned afresh (start failures, release, rewind, re-clone). A
// `restart` restarts a member's agent: it forgets its failsafe promise and its memory.
import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decide } from '../../src/ha/decide.ts';
import { answerFailsafeCall } from '../../src/ha/failsafe.ts';
import { failsafeDeadline, leaseDeadline } from '../../src/ha/lease.ts';
import { initialMemory, perceive, remember, tagsFor, type Memory } from '../../src/ha/memory.ts';
import type { Action, ClusterView, FailsafeHold, FailsafeRecord, FailsafeRound, MemberInfo, Observation, Outcome } from '../../src/ha/types.ts';
import { absentRevisions } from '../../src/ha/view.ts';
import { defaultTags, dyn, SYSID } from '../support/observations.ts';

const TTL = 3000;
const MARGIN = 750;
const LEASE = { ttl: TTL / 1000, fence_margin: MARGIN / 1000 };
const ETCD_ELECTION_TIMEOUT = 1000;

interface Node {
  name: string;
  partitioned: boolean;
  running: boolean;
  role: 'primary' | 'standby';
  timeline: number;
  lsn: number;
  upstream: string | null;
  leaseRecv: number; // when etcd last received this member's keepalive
  leaseDeadline: number | null;
  wasPrimary: boolean;
  /** Cut off from the other members' REST APIs (failsafe calls fail both ways). */
  isolated: boolean;
  hold: FailsafeHold | null;
  lastLeader: string | null;
  memory: Memory;
  /** Its data does not start until rewound or cloned afresh. */
  broken: boolean;
  /** When its agent (last) started, on the model's monotonic clock. */
  startedAt: number;
}

class World {
  t = 0;
  holder: string | null = 'n1';
  lastLeaderLsn = 0;
  promotions: string[] = [];
  etcdDown = false;
  /**
   * etcd electing a new leader since this time (null: not electing): nobody reaches it, and no
   * lease expires meanwhile; when it ends, the new etcd leader extends every lease that was alive
   * at the start by its election timeout plus the TTL from then (etcd 3.4's lessor Promote).
   */
  electingSince: number | null = null;
  record: FailsafeRecord | null = null;
  readonly cfg: ReturnType<typeof dyn>;
  nodes: Node[] = ['n1', 'n2', 'n3'].map((name, i) => ({
    name, partitioned: false, running: true, role: i === 0 ? 'primary' : 'standby', timeline: 1, lsn: 0,
    upstream: i === 0 ? null : 'n1', leaseRecv: 0, leaseDeadline: TTL - MARGIN, wasPrimary: i === 0,
    isolated: false, hold: null, lastLeader: 'n1', memory: initialMemory, broken: false, startedAt: -TTL,
  }));

  constructor(cfg = dyn()) {
    this.cfg = { ...cfg, ttl: TTL / 1000 }; // the model's leases and promises last TTL
  }

  cutOff(n: Node) { return n.partitioned || this.etcdDown || this.electingSince !== null; }

  /** The etcd election ends: Promote extends each lease alive at its start (election timeout 1 s). */
  elected() {
    const since = this.electingSince;
    if (since === null) return;
    for (const n of this.nodes) if (since < n.leaseRecv + TTL) n.leaseRecv = Math.max(n.leaseRecv, this.t + ETCD_ELECTION_TIMEOUT);
    this.electingSince = null;
  }

  /** The leader's POST /failsafe round, answered at once by every reachable member. */
  round(n: Node): FailsafeRound | null {
    const rec = this.record;
    if (!this.cfg.failsafe_mode || rec === null || rec.leader !== n.name || !n.running || n.role !== 'primary') return null;
    if (n.leaseDeadline === null || this.t >= n.leaseDeadline) return null;
    const asked = Object.keys(rec.members).filter((x) => x !== n.name);
    const confirmed = asked.filter((name) => {
      const m = this.nodes.find((x) => x.name === name);
      if (m === undefined || m.isolated || n.isolated) return false;
      const a = answerFailsafeCall({
        caller: n.name, self: m.name, failsafeMode: true, lastLeader: m.lastLeader, hold: m.hold, now: this.t, ttlMs: TTL, callerTtlMs: TTL, recordLeader: rec.leader,
        actsAsLeader: (m.running && m.role === 'primary') || (!this.cutOff(m) && this.keyHolder()?.name === m.name),
      });
      if (a.ok) m.hold = a.hold;
      return a.ok;
    });
    return { sentAt: this.t, asked, confirmed };
  }

  leaseAlive(n: Node) { return this.t < n.leaseRecv + TTL || (this.electingSince !== null && this.electingSince < n.leaseRecv + TTL); }
  keyHolder(): Node | null {
    const h = this.nodes.find((n) => n.name === this.holder);
    return h !== undefined && this.leaseAlive(h) ? h : null;
  }
  primaries() { return this.nodes.filter((n) => n.running && n.role === 'primary'); }

  advance(dt: number) {
    this.t += dt;
    // The fence timer: a primary whose deadline passed without renewal stops at once.
    for (const n of this.nodes) if (n.running && n.role === 'primary' && n.leaseDeadline !== null && this.t >= n.leaseDeadline) this.fence(n);
  }
  fence(n: Node) { n.running = false; n.wasPrimary = n.wasPrimary || n.role === 'primary'; }
  /**
   * The agent crashes and systemd starts it again: the promise (kept in memory only), the
   * memory, the last etcd view and the fence deadline are gone. A primary's PostgreSQL is
   * stopped with it (the model has no fencer outside the agent to keep its deadline armed).
   */
  restartAgent(n: Node) {
    if (n.running && n.role === 'primary') this.fence(n);
    n.hold = null; n.memory = initialMemory; n.lastLeader = null; n.leaseDeadline = null; n.startedAt = this.t;
  }

  view(): ClusterView {
    const holder = this.keyHolder();
    const members: MemberInfo[] = this.nodes.filter((n) => this.leaseAlive(n)).map((n) => ({
      name: n.name, role: n.running ? n.role : 'unknown', state: n.running ? 'running' : 'stopped', timeline: n.timeline, lsn: n.lsn,
      apiUrl: '', conn: '', tags: defaultTags, upstream: n.upstream, pendingRestart: false,
    }));
    return { leader: holder === null ? null : { name: holder.name, revision: '1', lease: '1' }, members, initialize: SYSID, config: this.cfg, lastLeaderLsn: this.lastLeaderLsn, failover: null, sync: null, failsafe: this.record, revisions: absentRevisions() };
  }

  tick(n: Node) {
    let sentAt: number | null = null;
    if (!this.cutOff(n)) { sentAt = this.t; n.leaseRecv = this.t; n.lastLeader = this.keyHolder()?.name ?? null; } // the member keepalive of every loop
    const o: Observation = {
      now: this.t,
      memory: n.memory,
      wallNow: 0,
      self: { name: n.name, tags: tagsFor(defaultTags, n.memory, this.t), leaseDeadline: n.leaseDeadline, failsafeHold: n.hold, startedAt: n.startedAt },
      local: perceive({
        dataDir: 'initialized', systemId: SYSID, controlState: n.wasPrimary ? 'primary-crashed' : 'standby', running: n.running, accepting: n.running,
        role: n.running ? n.role : null, timeline: n.timeline, lsn: n.lsn, streaming: n.running && n.role === 'standby', upstream: n.upstream, pendingRestart: false, syncStandbys: [],
        syncSetting: '', replicas: [], syncChangedAt: null,
      }, n.memory),
      cluster: this.cutOff(n) ? null : this.view(),
      fallbackConfig: this.cfg,
      failsafe: this.cutOff(n) ? this.round(n) : null,
    };
    const outcomes: Outcome[] = [];
    for (const a of decide(o).actions) {
      const r = this.apply(n, a, sentAt);
      outcomes.push(r);
      if (!r.ok) break;
    }
    n.memory = remember(n.memory, o, outcomes);
  }

  /** The executor's part: one step, its outcome. */
  apply(n: Node, a: Action, sentAt: number | null): Outcome {
    const ok = (facts: Partial<Extract<Outcome, { ok: true }>> = {}): Outcome => ({ action: a, ok: true, ...facts });
    const failed: Outcome = { action: a, ok: false, error: 'modelled failure', retryable: false };
    const leader = this.keyHolder();
    switch (a.kind) {
      case 'fence': this.fence(n); return ok();
      case 'renew':
        if (sentAt === null || leader?.name !== n.name) { if (a.fenceOnFailure) this.fence(n); return { ...failed, retryable: true }; }
        n.leaseDeadline = leaseDeadline(sentAt, LEASE.ttl, LEASE); return ok({ lease: { sentAt, ttl: LEASE.ttl } });
      case 'acquire':
        if (n.hold !== null && this.t < n.hold.until) return failed; // the executor re-checks the promise
        if (sentAt === null || leader !== null) return failed;
        this.holder = n.name; n.leaseDeadline = leaseDeadline(sentAt, LEASE.ttl, LEASE); return ok({ lease: { sentAt, ttl: LEASE.ttl } });
      case 'release': if (leader?.name === n.name) this.holder = null; n.leaseDeadline = null; return ok();
      case 'promote':
        expect(this.keyHolder()?.name).toBe(n.name);
        if (!n.running || n.role !== 'standby') return failed;
        n.role = 'primary'; n.timeline += 1; n.upstream = null; n.wasPrimary = true; this.promotions.push(n.name); return ok();
      case 'start':
        if (a.as === 'primary') expect(leader?.name).toBe(n.name);
        if (n.broken) return failed;
        n.running = true; n.role = a.as; n.upstream = a.upstream; if (a.as === 'standby') n.wasPrimary = false; return ok();
      case 'rewind': case 'reclone': {
        const src = this.nodes.find((x) => x.name === a.from);
        if (src === undefined) return failed;
        n.running = false; n.broken = false; n.timeline = src.timeline; n.lsn = Math.min(n.lsn, src.lsn); n.wasPrimary = false; return ok();
      }
      case 'follow': n.upstream = a.upstream; return ok();
      case 'publish_leader_lsn': this.lastLeaderLsn = n.lsn; return ok({ published: { lsn: n.lsn, slots: 'null' } });
      case 'write_failsafe': if (sentAt === null) return failed; this.record = a.record; return ok();
      case 'failsafe_extend': { // the executor arms the fence at failsafeDeadline
        const d = failsafeDeadline(n.leaseDeadline, a.sentAt, LEASE);
        if (d !== null) n.leaseDeadline = d;
        return ok();
      }
      default: return ok();
    }
  }

  write(k: number) {
    for (const p of this.primaries()) {
      p.lsn += k;
      for (const s of this.nodes) if (s.running && s.role === 'standby' && s.upstream === p.name && s.timeline <= p.timeline && !s.partitioned) { s.lsn = p.lsn; s.timeline = p.timeline; }
    }
  }
}

type Cmd = { k: 'tick'; i: number } | { k: 'advance'; ms: number } | { k: 'partition'; i: number } | { k: 'heal'; i: number } | { k: 'crash'; i: number } | { k: 'write'; n: number }
  | { k: 'isolate'; i: number } | { k: 'rejoin'; i: number } | { k: 'etcd'; down: boolean } | { k: 'break'; i: number } | { k: 'election'; on: boolean }
  | { k: 'restart'; i: number };
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('tick' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 6 },
  { arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 2500 }) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('partition' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('heal' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('crash' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('break' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('restart' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('write' as const), n: fc.integer({ min: 1, max: 100 }) }), weight: 2 },
);
// Shorter clock steps than above, so that a leader often runs a round before its deadline.
const failsafeCmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('tick' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 8 },
  { arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 1200 }) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constantFrom('partition' as const, 'heal' as const, 'crash' as const, 'isolate' as const, 'rejoin' as const, 'restart' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('write' as const), n: fc.integer({ min: 1, max: 100 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('etcd' as const), down: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('election' as const), on: fc.boolean() }), weight: 2 },
);
// Agent restarts while the leader is cut off from etcd (after a warm-up that writes /failsafe): a
// restarted member forgets the promise it gave. Without the wait after a start (src/ha/failsafe.ts
// startBlocksRace) this finds two primaries in nearly every run of 600.
const restartCmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('tick' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 8 },
  { arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 800 }) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('restart' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constantFrom('partition' as const, 'heal' as const, 'crash' as const, 'isolate' as const, 'rejoin' as const), i: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('write' as const), n: fc.integer({ min: 1, max: 100 }) }), weight: 1 },
);
const WARM_UP_THEN_CUT_N1: Cmd[] = [...Array.from({ length: 3 }, () => [0, 1, 2].map((i): Cmd => ({ k: 'tick', i }))).flatMap((r) => [...r, { k: 'advance', ms: 500 } as Cmd]), { k: 'partition', i: 0 }];
function run(w: World, cmds: Cmd[]): void {
  for (const c of cmds) {
    const node = 'i' in c ? w.nodes[c.i] : undefined;
    if (c.k === 'tick' && node) w.tick(node);
    else if (c.k === 'advance') w.advance(c.ms);
    else if (c.k === 'partition' && node) node.partitioned = true;
    else if (c.k === 'heal' && node) node.partitioned = false;
    else if (c.k === 'crash' && node) node.running = false;
    else if (c.k === 'break' && node) { node.running = false; node.broken = true; }
    else if (c.k === 'write') w.write(c.n);
    else if (c.k === 'isolate' && node) node.isolated = true;
    else if (c.k === 'rejoin' && node) node.isolated = false;
    else if (c.k === 'restart' && node) w.restartAgent(node);
    else if (c.k === 'etcd') w.etcdDown = c.down;
    else if (c.k === 'election') { if (c.on) w.electingSince ??= w.t; else w.elected(); }
    expect(w.primaries().length, `t=${w.t} after ${JSON.stringify(c)}`).toBeLessThanOrEqual(1);
  }
}

describe('three agents over a shared leader key (model)', () => {
  test.prop([fc.array(cmdArb, { minLength: 10, maxLength: 200 })], { numRuns: 400 })('never two running primaries (failsafe_mode off)', (cmds) => {
    run(new World(dyn({ failsafe_mode: false })), cmds);
  });

  test.prop([fc.array(failsafeCmdArb, { minLength: 10, maxLength: 300 })], { numRuns: 600 })(
    'failsafe_mode: never two running primaries, whatever etcd (down, or electing a leader) and the members can reach',
    (cmds) => run(new World(dyn({ failsafe_mode: true })), cmds),
  );

  test.prop([fc.array(restartCmdArb, { minLength: 10, maxLength: 300 })], { numRuns: 600 })(
    'failsafe_mode: never two running primaries when agents restart (a promise lives in the agent\'s memory only)',
    (cmds) => run(new World(dyn({ failsafe_mode: true })), [...WARM_UP_THEN_CUT_N1, ...cmds]),
  );

  test('failsafe_mode: with etcd down for everyone, a leader every member confirms stays primary', () => {
    const w = new World(dyn({ failsafe_mode: true }));
    const [n1, n2, n3] = w.nodes as [Node, Node, Node];
    for (let i = 0; i < 3; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    expect(w.record?.leader).toBe('n1');
    w.etcdDown = true;
    for (let i = 0; i < 40; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); } // 20 s
    expect(w.primaries().map((n) => n.name)).toEqual(['n1']);
    n3.isolated = true; // one member stops answering: the leader stops at its deadline
    for (let i = 0; i < 6; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    expect(w.primaries()).toEqual([]);
    expect(w.promotions).toEqual([]);
  });

  test('failsafe_mode (the default): an etcd leader election of 2.5 s neither fences the leader nor promotes anyone', () => {
    const w = new World();
    expect(w.cfg.failsafe_mode).toBe(true);
    const [n1, n2, n3] = w.nodes as [Node, Node, Node];
    for (let i = 0; i < 3; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    w.electingSince = w.t;
    for (let i = 0; i < 5; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    w.elected();
    for (let i = 0; i < 6; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    expect(w.primaries().map((n) => n.name)).toEqual(['n1']);
    expect(w.promotions).toEqual([]);
    // The same election with failsafe_mode off: the leader stops at its deadline.
    const off = new World(dyn({ failsafe_mode: false }));
    const [m1, m2, m3] = off.nodes as [Node, Node, Node];
    for (let i = 0; i < 3; i++) { off.tick(m1); off.tick(m2); off.tick(m3); off.advance(500); }
    off.electingSince = off.t;
    for (let i = 0; i < 5; i++) { off.tick(m1); off.tick(m2); off.tick(m3); off.advance(500); }
    expect(off.primaries()).toEqual([]);
  });

  test('failsafe_mode: a member whose agent restarts after confirming the leader does not take the key for a ttl', () => {
    const w = new World();
    const [n1, n2, n3] = w.nodes as [Node, Node, Node];
    for (let i = 0; i < 3; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    expect(w.record?.leader).toBe('n1');
    n1.partitioned = true; // the leader loses etcd, not its members: every one confirms it
    for (let i = 0; i < 6; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    expect(w.keyHolder()).toBe(null); // its key expired in etcd
    w.tick(n1);
    expect(n2.hold?.leader).toBe('n1');
    w.restartAgent(n2); // n2 forgets its promise, reaches etcd before the leader's next call
    w.tick(n2);
    expect(w.primaries().map((n) => n.name)).toEqual(['n1']);
    for (let i = 0; i < 8; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(250); }
    expect(w.primaries().map((n) => n.name)).toEqual(['n1']);
    expect(w.promotions).toEqual([]);
    n1.running = false; // the leader's host dies: a member takes over once its promise ran out
    for (let i = 0; i < 16; i++) { w.tick(n2); w.tick(n3); w.advance(250); }
    expect(w.promotions.length).toBe(1);
  });

  test('a crashed primary is replaced once its lease expires, and the old one rejoins as standby', () => {
    const w = new World();
    const [n1, n2, n3] = w.nodes as [Node, Node, Node];
    for (let i = 0; i < 3; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    n1.running = false; n1.partitioned = true; // the host is gone: no renewals, no PostgreSQL
    for (let i = 0; i < 12; i++) { w.tick(n2); w.tick(n3); w.advance(500); }
    expect(w.promotions).toEqual(['n2']);
    expect(w.primaries().map((n) => n.name)).toEqual(['n2']);
    expect(n3.upstream).toBe('n2');
    n1.partitioned = false;
    for (let i = 0; i < 3; i++) { w.tick(n1); w.tick(n2); w.tick(n3); w.advance(500); }
    expect(n1.running && n1.role === 'standby' && n1.upstream === 'n2').toBe(true);
  });
});
