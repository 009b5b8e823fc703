// The DCS over etcd v3 (npm etcd3). Our own leader-key code: create-if-absent and
// compare-and-set transactions on a key bound to our lease, lease keepalives driven by the HA loop,
// and a deadline on every call. See ../../docs/architecture.md for why not etcd3's Election API.
import { performance } from 'node:perf_hooks';
import { Etcd3, EtcdLeaseInvalidError, isRecoverableError, type IKeyValue, type Lease, type IOptions } from 'etcd3';
import { ConstantBackoff, handleWhen, noop, retry } from 'cockatiel';
import type { DynamicConfig, NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import type { ClusterView, FailoverRequest, FailsafeRecord, Lsn, MemberInfo, SyncRecord, UnsafeMark } from '../ha/types.ts';
import { DecodeCache, decode, decodeFailover, decodeFailsafe, historySchema, memberValueSchema, restartSchema, statusSchema, storedConfigSchema, syncSchema, unsafeSchema } from './codec.ts';
import { restoreKey } from '../backup/restore-plan.ts';
import { toPatroniConfig } from './patroni-config.ts';
import { encodeFailover, encodeFailsafe, encodeHistory, encodeMember, encodeStatus, encodeSync, failoverFromValue } from './patroni.ts';
import { checkCertificateDates, explainEtcdFailure, readEtcdCredentials, type EtcdCredentials, type EtcdTlsContext } from './etcd-tls.ts';
import { KeepaliveStream } from './keepalive-stream.ts';
import { clusterKeys, type Keys } from './keys.ts';
import type { Dcs, HistoryEntry, KeepaliveResult, Revision } from './types.ts';

export interface EtcdDcsOptions {
  hosts: string[];
  namespace: string;
  scope: string;
  /** This agent's member name; absent for a read-only client (pghactl). */
  member?: string;
  /** Lease TTL, seconds. */
  ttl: number;
  /** Deadline of each unary call, ms. */
  callTimeoutMs: number;
  auth?: { username: string; password: string };
  /** http (default) or https; hosts may also carry the scheme. */
  protocol?: 'http' | 'https';
  /** PEM contents for TLS (readEtcdCredentials); absent with https: the system CAs, no client certificate. */
  credentials?: EtcdCredentials;
  /** The settings and their source, to explain a TLS or auth failure at startup (checkAccess). */
  tls?: EtcdTlsContext;
  onWarning?: (msg: string, fields?: Record<string, unknown>) => void;
}

let ipServernameQuiet = false;
/**
 * grpc-js sends the host as TLS server name (SNI) even when it is an IP address, and Node then
 * prints a DeprecationWarning (DEP0123) on stderr: noise in every pghactl call against etcd
 * hosts given as addresses (the usual case). The certificate is still checked against the IP;
 * only that one warning is dropped, every other warning passes.
 */
function quietIpServernameWarning(): void {
  if (ipServernameQuiet) return;
  ipServernameQuiet = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [, typeOrOpts, code] = args;
    const c = typeof typeOrOpts === 'object' && typeOrOpts !== null ? (typeOrOpts as { code?: unknown }).code : code;
    if (c === 'DEP0123') return;
    emit(...args);
  }) as typeof process.emitWarning;
}

/** An unchanged member key is written again after this long anyway (see publishMember). */
const MEMBER_REFRESH_MS = 10_000;

/** Map an etcd3/gRPC failure to our codes; deadline and connection problems are retryable. */
export function dcsError(err: unknown, what: string): PgHaError {
  if (err instanceof PgHaError) return err;
  const name = err instanceof Error ? err.constructor.name : '';
  const msg = err instanceof Error ? err.message : String(err);
  if (name === 'GRPCDeadlineExceededError') return new PgHaError('PGHA_DCS_TIMEOUT', `${what}: etcd did not answer in time`, { cause: err, retryable: true });
  return new PgHaError('PGHA_DCS_UNAVAILABLE', `${what}: ${msg}`, { cause: err, retryable: true });
}

/** A conditional write found `key` moved on since `expected` was read. */
function conflict(what: string, key: string, expected: Revision, cur: IKeyValue | undefined): PgHaError {
  const now = cur === undefined ? 'now absent' : `now at revision ${cur.mod_revision}`;
  const was = expected === '0' ? 'absent' : `at revision ${expected}`;
  return new PgHaError('PGHA_DCS_CONFLICT', `${what}: ${key} changed since it was read (was ${was}, ${now}); nothing written`);
}

export class EtcdDcs implements Dcs {
  readonly keys: Keys;
  readonly client: Etcd3;
  readonly #o: EtcdDcsOptions;
  #lease: Lease | null = null;
  #leaseId: string | null = null;
  /** The loop's keepalives, on one stream kept open (keepalive-stream.ts). */
  #keepalives: KeepaliveStream;
  #watchers = new Set<() => void>();
  #lastGoodConfig: DynamicConfig | null = null;
  /** Values of the cluster prefix decoded at their mod_revision (readCluster decodes changed ones only). */
  readonly #decoded = new DecodeCache();
  #history: { revision: string; entries: HistoryEntry[] } | null = null;
  /** One member value schema per member name, so the decode cache recognises it between reads. */
  readonly #memberSchemas = new Map<string, ReturnType<typeof memberValueSchema>>();
  /** When this client first saw the /failover revision it holds: the request time of a value without one (Patroni's). */
  #failoverSeen: { revision: string; at: number } | null = null;
  /** The leader key's holder at the last read of /failsafe beside it, and that /failsafe revision. */
  #failsafeWriter: { revision: string; leader: string } | null = null;
  /** Patroni's `pause` flag for our member value (set from the last /config read). */
  #paused = false;

  #memberSchema(name: string): ReturnType<typeof memberValueSchema> {
    let schema = this.#memberSchemas.get(name);
    if (schema === undefined) this.#memberSchemas.set(name, (schema = memberValueSchema(name)));
    return schema;
  }

  constructor(o: EtcdDcsOptions) {
    this.#o = o;
    this.keys = clusterKeys(o.namespace, o.scope);
    if (o.protocol === 'https') quietIpServernameWarning();
    this.client = new Etcd3(this.#clientOptions(o.hosts));
    this.#keepalives = new KeepaliveStream(this.client);
  }

  /** The etcd3 options for `hosts` (all of them, or one for checkAccess). */
  #clientOptions(hosts: string[]): IOptions {
    const o = this.#o;
    const scheme = o.protocol ?? 'http';
    const c = o.credentials;
    return {
      hosts: hosts.map((h) => (h.includes('://') ? h : `${scheme}://${h}`)),
      // Every unary call gets a deadline: without one a call to a frozen etcd hangs forever.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.callTimeoutMs }),
      // No per-host circuit breaker (it keeps failing for 5 s after etcd is back); one quick
      // retry of recoverable errors, 50 ms apart, still inside the loop's budget.
      faultHandling: { host: () => noop, global: retry(handleWhen(isRecoverableError), { maxAttempts: 1, backoff: new ConstantBackoff(50) }) },
      ...(o.auth ? { auth: o.auth } : {}),
      // etcd3 types rootCertificate as required; grpc-js takes none as "the system CAs".
      ...(c === undefined ? {} : { credentials: { rootCertificate: c.rootCertificate as Buffer, ...(c.certChain ? { certChain: c.certChain, privateKey: c.privateKey } : {}) } }),
    };
  }

  /**
   * The agent's first contact with etcd: one read per host, each within callTimeoutMs. A TLS or
   * authentication misconfiguration on any host throws PGHA_DCS_TLS / PGHA_DCS_AUTH naming the
   * setting and the file (fatal: retrying cannot fix it). 'ok' when some host answered,
   * 'unavailable' when none did for ordinary reasons (the HA loop keeps retrying, as always).
   */
  async checkAccess(): Promise<'ok' | 'unavailable'> {
    const ctx = this.#o.tls ?? { source: 'etcd', protocol: this.#o.protocol ?? 'http' };
    checkCertificateDates(ctx, this.#o.credentials);
    // The whole check, probes included, stays within one call deadline (retry_timeout).
    const end = performance.now() + this.#o.callTimeoutMs;
    const results = await Promise.all(this.#o.hosts.map(async (h) => {
      const one = new Etcd3({ ...this.#clientOptions([h]), faultHandling: { host: () => noop, global: noop } });
      try {
        await one.get(this.keys.leader).exec();
        return 'ok' as const;
      } catch (err) {
        const fatal = await explainEtcdFailure(err, ctx, h.replace(/^https?:\/\//, ''), Math.max(50, end - performance.now()));
        if (fatal !== null) throw fatal;
        this.#o.onWarning?.('etcd unreachable at startup', { host: h, error: err instanceof Error ? err.message : String(err) });
        return 'unavailable' as const;
      } finally {
        one.close();
      }
    }).map((p) => p.catch((e: unknown) => e)));
    const fatal = results.find((r) => r instanceof PgHaError);
    if (fatal !== undefined) throw fatal;
    return results.includes('ok') ? 'ok' : 'unavailable';
  }

  get leaseId(): string | null {
    return this.#leaseId;
  }

  #name(): string {
    if (this.#o.member === undefined) throw new PgHaError('PGHA_CLI_USAGE', 'read-only etcd client cannot write member state');
    return this.#o.member;
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw dcsError(err, what);
    }
  }

  async readCluster(fallback: DynamicConfig): Promise<ClusterView> {
    const res = await this.#call('read cluster', () => this.client.getAll().prefix(this.keys.prefix).exec());
    let failsafeText: string | null = null;
    const view: ClusterView = {
      leader: null, members: [], initialize: null, config: fallback, lastLeaderLsn: null, failover: null, sync: null, failsafe: null,
      revisions: { sync: '0', failsafe: '0', failover: '0', status: '0' },
    };
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const value = kv.value.toString();
      if (key === this.keys.leader) view.leader = { name: value, revision: kv.mod_revision, lease: kv.lease };
      else if (key === this.keys.initialize) view.initialize = value;
      else if (key === this.keys.config) {
        const c = this.#decoded.decode(storedConfigSchema, key, kv.mod_revision, value);
        if (c.ok) view.config = this.#lastGoodConfig = c.value;
        else {
          // Falling back to the node file would silently drop pause, synchronous mode ...: keep
          // the last valid value and flag it (decide() does not race without one).
          if (this.#lastGoodConfig !== null) view.config = this.#lastGoodConfig;
          view.configInvalid = { error: c.error, kept: this.#lastGoodConfig !== null };
          this.#o.onWarning?.(`invalid /config in etcd: ${this.#lastGoodConfig !== null ? 'keeping the last valid one' : 'no valid one known'}`, { error: c.error });
        }
      } else if (key === this.keys.history) {
        if (kv.mod_revision !== this.#history?.revision) {
          const h = decode(historySchema, value);
          this.#history = h.ok ? { revision: kv.mod_revision, entries: h.value } : null;
        }
      } else if (key.startsWith(this.keys.restartPrefix)) {
        const r = this.#decoded.decode(restartSchema, key, kv.mod_revision, value);
        if (r.ok) (view.restarts ??= {})[key.slice(this.keys.restartPrefix.length)] = { ...r.value, revision: kv.mod_revision };
        else this.#o.onWarning?.('ignoring invalid scheduled restart', { key, error: r.error });
      } else if (key.startsWith(this.keys.unsafePrefix)) {
        const u = decode(unsafeSchema, value);
        // An unreadable mark still marks: it was written because the member differed.
        (view.unsafe ??= {})[key.slice(this.keys.unsafePrefix.length)] = u.ok ? u.value : { at: 0, reason: 'unreadable /unsafe mark' };
      } else if (key === this.keys.failover) {
        view.revisions.failover = kv.mod_revision;
        if (this.#failoverSeen?.revision !== kv.mod_revision) this.#failoverSeen = { revision: kv.mod_revision, at: Date.now() };
        const f = decodeFailover(value, this.#failoverSeen.at);
        if (f.ok) view.failover = f.value;
        else {
          view.failoverUnreadable = true;
          this.#o.onWarning?.('ignoring invalid /failover in etcd', { error: f.error });
        }
      } else if (key === this.keys.sync) {
        view.revisions.sync = kv.mod_revision;
        const y = this.#decoded.decode(syncSchema, key, kv.mod_revision, value);
        if (y.ok) view.sync = y.value;
        else {
          view.syncUnreadable = true; // not "no record": nobody may race on it (decide.ts)
          this.#o.onWarning?.('invalid /sync in etcd: nobody races for the key in synchronous mode until the leader rewrites it', { error: y.error });
        }
      } else if (key === this.keys.failsafe) {
        view.revisions.failsafe = kv.mod_revision;
        failsafeText = value; // decoded below: Patroni's value names no leader, the leader key does
      } else if (key === this.keys.status) {
        view.revisions.status = kv.mod_revision;
        const s = this.#decoded.decode(statusSchema, key, kv.mod_revision, value);
        if (s.ok) {
          view.lastLeaderLsn = s.value.lsn;
          if (s.value.slots !== undefined) view.logicalSlots = s.value.slots;
        }
      } else if (key.startsWith(this.keys.membersPrefix)) {
        const m = this.#decoded.decode(this.#memberSchema(key.slice(this.keys.membersPrefix.length)), key, kv.mod_revision, value);
        if (m.ok) view.members.push(m.value);
        else this.#o.onWarning?.('ignoring invalid member key', { code: 'PGHA_DCS_BAD_VALUE', key, error: m.error });
      }
    }
    this.#decoded.sweep();
    view.members.sort((a, b) => (a.name < b.name ? -1 : 1));
    if (failsafeText !== null) {
      // Patroni's value names no writer: the holder of the leader key read with it wrote it. Once
      // that key expires (the leader cut off from etcd alone, living on failsafe), the same
      // revision of /failsafe still comes from the last holder seen beside it; without this the
      // members refused the very leader they protect as soon as its key expired, and it fenced.
      const rev = view.revisions.failsafe;
      if (view.leader !== null) this.#failsafeWriter = { revision: rev, leader: view.leader.name };
      const writer = view.leader?.name ?? (this.#failsafeWriter?.revision === rev ? this.#failsafeWriter.leader : null);
      const f = decodeFailsafe(failsafeText, writer);
      if (f.ok) view.failsafe = f.value;
      else this.#o.onWarning?.('ignoring invalid /failsafe in etcd', { error: f.error });
    }
    if (!res.kvs.some((kv) => kv.key.toString() === this.keys.failover)) this.#failoverSeen = null;
    this.#paused = view.config.pause;
    if (!res.kvs.some((kv) => kv.key.toString() === this.keys.history)) this.#history = { revision: '0', entries: [] };
    return view;
  }

  /** /history as of the last readCluster (decoded only when it changed); null before one or when invalid. */
  cachedHistory(): HistoryEntry[] | null {
    return this.#history?.entries ?? null;
  }

  /** Schedule a restart of `member` at `at` (epoch ms) unless one is scheduled. False: one is. */
  async scheduleRestart(member: string, at: number, requestedAt: number): Promise<boolean> {
    const key = this.keys.restart(member);
    const r = await this.#call('schedule restart', () =>
      this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(JSON.stringify({ at, requestedAt }))).commit());
    return r.succeeded;
  }

  /** Cancel `member`'s scheduled restart. False when there was none. */
  async cancelRestart(member: string): Promise<boolean> {
    const r = await this.#call('cancel restart', () => this.client.delete().key(this.keys.restart(member)).exec());
    return Number(r.deleted) > 0;
  }

  /** Mark `member` unsafe (pghactl verify found it different from the leader). */
  async markUnsafe(member: string, mark: UnsafeMark): Promise<void> {
    await this.#call('mark unsafe', () => this.client.put(this.keys.unsafe(member)).value(JSON.stringify(mark)).exec());
  }

  /** Remove `member`'s unsafe mark (a clean re-check, or a fresh clone). False when there was none. */
  async clearUnsafe(member: string): Promise<boolean> {
    const r = await this.#call('clear unsafe', () => this.client.delete().key(this.keys.unsafe(member)).exec());
    return Number(r.deleted) > 0;
  }

  /** Remove a due scheduled restart if it is still the one read at `revision`. True: ours to run. */
  async takeRestart(member: string, revision: string): Promise<boolean> {
    const key = this.keys.restart(member);
    const r = await this.#call('take restart', () =>
      this.client.if(key, 'Mod', '==', revision).then(this.client.delete().key(key)).commit());
    return r.succeeded;
  }

  /** The lease object; a fresh one (granted on first use) after etcd forgot or refused the old. */
  #currentLease(): Lease {
    if (this.#lease === null) {
      this.#lease = this.client.lease(this.#o.ttl, { autoKeepAlive: false });
      this.#lease.on('lost', () => undefined); // we detect loss ourselves; never crash on this event
      this.#leaseId = null;
    }
    return this.#lease;
  }

  #dropLease(): void {
    this.#lease?.release();
    this.#lease = null;
    this.#leaseId = null;
  }

  /** Keepalive streams opened so far (tests: a healthy one is kept open). */
  get keepaliveStreamsOpened(): number {
    return this.#keepalives.opened;
  }

  async keepalive(): Promise<KeepaliveResult> {
    try {
      return await this.#keepaliveOnce();
    } catch (err) {
      // etcd forgot our lease (it expired while we could not renew): grant a fresh one at once.
      if (err instanceof PgHaError && err.cause instanceof EtcdLeaseInvalidError) return this.#keepaliveOnce();
      throw err;
    }
  }

  async #keepaliveOnce(): Promise<KeepaliveResult> {
    const lease = this.#currentLease();
    const sentAt = performance.now();
    const fresh = this.#leaseId === null;
    try {
      this.#leaseId = await this.#withDeadline(lease.grant(), 'grant lease');
    } catch (err) {
      this.#dropLease(); // a Lease whose grant failed stays failed: start over next time
      throw dcsError(err, 'keepalive');
    }
    const id = this.#leaseId;
    if (fresh) return { sentAt, ttl: this.#o.ttl };
    // One deadline for all attempts: the caller's budget is callTimeoutMs (retry_timeout), kept on
    // the monotonic clock (a wall-clock jump can neither stretch nor cut it).
    const end = performance.now() + this.#o.callTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      const attemptSentAt = performance.now();
      try {
        const res = await this.#keepalives.once(id, Math.max(0, end - attemptSentAt));
        // The fence timer counts from this attempt's send time: etcd extended the lease after it.
        return { sentAt: attemptSentAt, ttl: Number(res.TTL) };
      } catch (err) {
        // Only etcd saying the lease is gone ends it. A transport failure (one etcd member down,
        // a broken connection) leaves the lease intact in etcd, still holding the leader key:
        // dropping it here turned the loss of one etcd member into a failover (chaos seed 2).
        // A failed attempt closed its stream; the next opens another, on a member the pool picks
        // (in a fresh random order): try others while time remains.
        if (err instanceof EtcdLeaseInvalidError) {
          this.#dropLease();
          throw dcsError(err, 'keepalive');
        }
        if (attempt >= this.#o.hosts.length || performance.now() >= end - 50) throw dcsError(err, 'keepalive');
      }
    }
  }

  /** lease.grant() has no deadline of its own when the grant RPC is stuck. */
  async #withDeadline<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PgHaError('PGHA_DCS_TIMEOUT', `${what}: etcd did not answer in time`, { retryable: true })), this.#o.callTimeoutMs);
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Put `value` bound to `lease` if `key` is absent; else report who holds it. */
  async #createIfAbsent(key: string, value: string, lease: string, what: string): Promise<{ created: boolean; holder: IKeyValue | undefined }> {
    const r = await this.#call(what, () =>
      this.client.if(key, 'Version', '==', 0)
        .then(this.client.put(key).value(value).lease(lease))
        .else(this.client.get(key))
        .commit());
    return { created: r.succeeded, holder: r.succeeded ? undefined : r.responses[0]?.response_range?.kvs[0] };
  }

  async acquireLeader(): Promise<boolean> {
    const name = this.#name();
    const id = this.#leaseId;
    if (id === null) return false;
    const { created, holder } = await this.#createIfAbsent(this.keys.leader, name, id, 'acquire leader');
    if (created) return true;
    if (holder === undefined || holder.value.toString() !== name) return false;
    if (holder.lease === id) return true; // a retried request that had committed
    // The key names us but sits on an older lease: this agent restarted while its key lived.
    // Move the key to our lease by compare-and-set on its revision; it was ours by name.
    const moved = await this.#call('adopt leader key', () =>
      this.client.if(this.keys.leader, 'Mod', '==', holder.mod_revision)
        .then(this.client.put(this.keys.leader).value(name).lease(id))
        .commit());
    return moved.succeeded;
  }

  async renewLeader(): Promise<KeepaliveResult> {
    const name = this.#name();
    const ka = await this.keepalive();
    const id = this.#leaseId;
    const r = await this.#call('check leader key', () =>
      this.client.if(this.keys.leader, 'Value', '==', name).and(this.keys.leader, 'Lease', '==', id ?? '0')
        .then(this.client.get(this.keys.leader)).commit());
    if (!r.succeeded) throw new PgHaError('PGHA_LEASE_LOST', 'the leader key no longer holds our name and lease');
    return ka;
  }

  async releaseLeader(): Promise<void> {
    const name = this.#name();
    await this.#call('release leader', () =>
      this.client.if(this.keys.leader, 'Value', '==', name).then(this.client.delete().key(this.keys.leader)).commit());
  }

  /** The member key as last written: value, lease and when. */
  #published: { value: string; lease: string; at: number } | null = null;

  /**
   * The member key lives on our lease, so while the lease is the same the key stays as written:
   * an unchanged value is not written again (at idle that is one etcd write per loop saved),
   * except every MEMBER_REFRESH_MS in case someone removed the key behind our back.
   */
  async publishMember(info: MemberInfo): Promise<void> {
    const id = this.#leaseId;
    if (id === null) throw new PgHaError('PGHA_DCS_UNAVAILABLE', 'no lease yet', { retryable: true });
    const value = JSON.stringify(encodeMember(info, this.#paused));
    const now = performance.now();
    const last = this.#published;
    if (last !== null && last.value === value && last.lease === id && now - last.at < MEMBER_REFRESH_MS) return;
    this.#published = null;
    await this.#call('publish member', () => this.client.put(this.keys.member(this.#name())).value(value).lease(id).exec());
    this.#published = { value, lease: id, at: now };
  }

  async deleteMember(): Promise<void> {
    this.#published = null;
    await this.#call('delete member', () => this.client.delete().key(this.keys.member(this.#name())).exec());
  }

  async claimInitialize(): Promise<boolean> {
    const claim = `claim:${this.#name()}`;
    const id = this.#leaseId;
    if (id === null) return false;
    const { created, holder } = await this.#createIfAbsent(this.keys.initialize, claim, id, 'claim initialize');
    return created || holder?.value.toString() === claim; // a retried request that had committed
  }

  async setInitialize(systemId: string): Promise<void> {
    const r = await this.#call('set initialize', () =>
      this.client.if(this.keys.initialize, 'Value', '==', `claim:${this.#name()}`)
        .then(this.client.put(this.keys.initialize).value(systemId)).commit());
    if (!r.succeeded) throw new PgHaError('PGHA_DCS_CONFLICT', 'our initialize claim is gone');
  }

  async abandonInitialize(): Promise<void> {
    await this.#call('abandon initialize', () =>
      this.client.if(this.keys.initialize, 'Value', '==', `claim:${this.#name()}`)
        .then(this.client.delete().key(this.keys.initialize)).commit());
  }

  async writeConfigIfAbsent(config: DynamicConfig): Promise<void> {
    await this.#call('write config', () =>
      this.client.if(this.keys.config, 'Version', '==', 0).then(this.client.put(this.keys.config).value(JSON.stringify(toPatroniConfig(config, undefined)))).commit());
  }

  async writeLeaderLsn(lsn: Lsn, slots: Record<string, Lsn> | undefined, expected: Revision): Promise<Revision> {
    return this.#putIfRevision('write status', this.keys.status, JSON.stringify(encodeStatus(lsn, slots)), expected);
  }

  async readStoredConfig(): Promise<{ value: unknown; revision: Revision }> {
    const cur = await this.#getJson(this.keys.config);
    return { value: cur.value, revision: cur.modRevision };
  }

  async writeStoredConfig(value: unknown, expected: Revision): Promise<Revision> {
    return this.#putIfRevision('write config', this.keys.config, JSON.stringify(value), expected);
  }

  /**
   * Put `value` if `key` is still at `expected` ("0": still absent), in one transaction that
   * otherwise reads the key back. Lost: PGHA_DCS_CONFLICT, except when the key already holds
   * exactly `value` (a retried call whose first attempt landed). The key's new revision.
   */
  async #putIfRevision(what: string, key: string, value: string, expected: Revision): Promise<Revision> {
    const r = await this.#call(what, () =>
      this.#ifAt(key, expected).then(this.client.put(key).value(value)).else(this.client.get(key)).commit());
    if (r.succeeded) return r.header.revision;
    const cur = r.responses[0]?.response_range?.kvs[0];
    if (cur !== undefined && cur.value.toString() === value) return cur.mod_revision;
    throw conflict(what, key, expected, cur);
  }

  /** Delete `key` if it is still at `expected`; a key already gone counts as deleted. */
  async #deleteIfRevision(what: string, key: string, expected: Revision): Promise<void> {
    const r = await this.#call(what, () =>
      this.#ifAt(key, expected).then(this.client.delete().key(key)).else(this.client.get(key)).commit());
    const cur = r.responses[0]?.response_range?.kvs[0];
    if (!r.succeeded && cur !== undefined) throw conflict(what, key, expected, cur);
  }

  /** The compare "`key` is at `revision`": absent for "0" (etcd's version 0), else its mod_revision. */
  #ifAt(key: string, revision: Revision): ReturnType<Etcd3['if']> {
    return revision === '0' ? this.client.if(key, 'Version', '==', 0) : this.client.if(key, 'Mod', '==', revision);
  }

  /** Read a JSON key with its mod revision ("0" when absent). */
  async #getJson(key: string): Promise<{ value: unknown; modRevision: string }> {
    const r = await this.#call(`read ${key}`, () => this.client.get(key).exec());
    const kv = r.kvs[0];
    if (kv === undefined) return { value: undefined, modRevision: '0' };
    try {
      return { value: JSON.parse(kv.value.toString()), modRevision: kv.mod_revision };
    } catch {
      throw new PgHaError('PGHA_DCS_BAD_VALUE', `${key} does not hold JSON`);
    }
  }

  /** Put `value` only if the key is still at `modRevision` ("0": only if absent). */
  async #putJsonIfRevision(key: string, value: unknown, modRevision: string): Promise<boolean> {
    const r = await this.#call(`write ${key}`, () => this.#ifAt(key, modRevision).then(this.client.put(key).value(JSON.stringify(value))).commit());
    return r.succeeded;
  }

  async appendHistory(entry: HistoryEntry): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.#getJson(this.keys.history);
      const list = cur.value === undefined ? [] : historySchema.parse(cur.value);
      if (await this.#putJsonIfRevision(this.keys.history, encodeHistory([...list, entry]), cur.modRevision)) return;
    }
    throw new PgHaError('PGHA_DCS_CONFLICT', 'history kept changing under us');
  }

  async writeSync(record: SyncRecord, expected: Revision): Promise<Revision> {
    const { leader, members, acks } = record;
    const value = encodeSync(acks === undefined ? { leader, members } : { leader, members, acks });
    return this.#putIfRevision('write sync', this.keys.sync, JSON.stringify(value), expected);
  }

  async writeFailsafe(record: FailsafeRecord | null, expected: Revision): Promise<Revision> {
    if (record !== null) return this.#putIfRevision('write failsafe', this.keys.failsafe, JSON.stringify(encodeFailsafe(record)), expected);
    await this.#deleteIfRevision('delete failsafe', this.keys.failsafe, expected);
    return '0';
  }

  async writeFailover(request: FailoverRequest, expected: Revision): Promise<Revision> {
    return this.#putIfRevision('write failover', this.keys.failover, JSON.stringify(encodeFailover(request)), expected);
  }

  async readRestoreRecord(): Promise<{ value: unknown; revision: Revision }> {
    const cur = await this.#getJson(restoreKey(this.keys.prefix));
    return { value: cur.value, revision: cur.modRevision };
  }

  async writeRestoreRecord(value: unknown, expected: Revision): Promise<boolean> {
    return this.#putJsonIfRevision(restoreKey(this.keys.prefix), value, expected);
  }

  async deleteRestoreRecord(): Promise<void> {
    await this.#call('delete restore', () => this.client.delete().key(restoreKey(this.keys.prefix)).exec());
  }

  /** pghactl remove: delete every key under the cluster's prefix; the number deleted. */
  async deleteCluster(): Promise<number> {
    const r = await this.#call('delete cluster', () => this.client.delete().prefix(this.keys.prefix).exec());
    return Number(r.deleted);
  }

  async clearFailover(expected: Revision): Promise<void> {
    await this.#deleteIfRevision('clear failover', this.keys.failover, expected);
  }

  /** The stepping-down leader records its last WAL position in the request, if it is still there. */
  async setShutdownLsn(lsn: Lsn): Promise<void> {
    const cur = await this.#getJson(this.keys.failover);
    if (cur.value === undefined) return;
    const r = failoverFromValue(cur.value, Date.now());
    if (!r.ok || r.value === null) return;
    await this.#putJsonIfRevision(this.keys.failover, encodeFailover({ ...r.value, shutdownLsn: lsn }), cur.modRevision);
  }

  async readHistory(): Promise<HistoryEntry[]> {
    const cur = await this.#getJson(this.keys.history);
    return cur.value === undefined ? [] : historySchema.parse(cur.value);
  }

  async watchLeader(onChange: (holder: string | null) => void): Promise<() => void> {
    let stopped = false;
    let watcher: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | null = null;
    const open = async (): Promise<void> => {
      while (!stopped) {
        try {
          const w = await this.client.watch().key(this.keys.leader).create();
          watcher = w;
          w.on('put', (kv) => onChange(kv.value.toString()));
          w.on('delete', () => onChange(null));
          w.on('connected', () => onChange(null)); // (re)connected: make the loop look again
          w.on('error', () => undefined);
          return;
        } catch {
          // etcd unreachable: the loop still polls every loop_wait; retry the watch after 1 s.
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    await Promise.race([open(), new Promise((r) => setTimeout(r, this.#o.callTimeoutMs))]);
    const stop = () => {
      stopped = true;
      void watcher?.cancel().catch(() => undefined);
      this.#watchers.delete(stop);
    };
    this.#watchers.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    for (const stop of [...this.#watchers]) stop();
    this.#keepalives.close();
    this.#lease?.release();
    this.client.close();
  }
}

/** The connection part of EtcdDcsOptions from the node YAML's etcd section (`source`: its path). */
export function etcdConnection(e: NodeConfig['etcd'], source: string): Pick<EtcdDcsOptions, 'hosts' | 'protocol' | 'credentials' | 'auth' | 'tls'> {
  const credentials = readEtcdCredentials(e, source);
  return {
    hosts: e.hosts, protocol: e.protocol,
    ...(credentials === undefined ? {} : { credentials }),
    ...(e.username !== undefined && e.password !== undefined ? { auth: { username: e.username, password: e.password } } : {}),
    tls: { source, protocol: e.protocol, cacert: e.cacert, cert: e.cert, key: e.key, username: e.username },
  };
}

export async function createEtcdDcs(o: EtcdDcsOptions): Promise<EtcdDcs> {
  return new EtcdDcs(o);
}
