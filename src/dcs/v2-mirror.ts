// A copy of the leader key in etcd's v2 API, for tools that read only v2: vip-manager 1.x (Debian
// 12's 1.0.2) polls `<namespace>/<scope>/leader` through the v2 client and puts a virtual IP on the
// host whose name it finds there. pgha's real leader key is the v3 lease key (etcd.ts); this copy
// follows it and never decides anything: no pgha code reads it back.
//
// Rules (docs/vip-manager.md):
// - only the member that holds the v3 key writes its name, create-only (prevExist=false) or as a
//   refresh of its own value (prevValue=<name>), so it never overwrites another member's copy;
// - the copy's TTL is the whole seconds left of this member's own lease deadline (at least 1), so
//   it expires at most a second after the deadline at which this member fences itself;
// - a member that stops leading (switchover, release, fence, shutdown) deletes the copy only if it
//   still holds its own name (prevValue), and once at start to clear a copy left by a crash.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface V2MirrorOptions {
  /** host:port of each etcd client endpoint; tried in order, the first answer counts. */
  hosts: string[];
  protocol: 'http' | 'https';
  /** Full v2 key path, e.g. /service/demo/leader (Patroni's and vip-manager's layout). */
  key: string;
  /** This member's name: the value vip-manager compares with its trigger-value. */
  name: string;
  /** etcd v2 basic auth (the same user as v3; v2 auth is a separate store in etcd 3.4). */
  auth?: { username: string; password: string };
  /** PEM contents for https endpoints. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** Called when the copy's state changes (written, deleted, failing), for the log. */
  onChange?(event: MirrorEvent): void;
}

export type MirrorEvent =
  | { kind: 'written'; ttl: number }
  | { kind: 'deleted' }
  | { kind: 'held_by_other' }
  | { kind: 'failed'; error: string };

interface Reply { status: number; body: string }

/** What this member last knew of the copy: `unknown` at start (a crash may have left one). */
type Known = 'ours' | 'not_ours' | 'unknown';

// What one request may wait for: etcd answers a v2 PUT in milliseconds; a slower answer means the
// endpoint is down or partitioned, and the next tick (half a second later) tries again.
const REQUEST_TIMEOUT_MS = 1000;

export class LeaderMirror {
  readonly #o: V2MirrorOptions;
  #known: Known = 'unknown';
  #inFlight = false;
  #lastEvent = '';

  constructor(o: V2MirrorOptions) {
    this.#o = o;
  }

  /**
   * One step, called on a timer: `leaseLeftMs` is the time to this member's fence deadline while
   * it holds the v3 key, null when it does not. Skipped while the previous step still runs.
   */
  async tick(leaseLeftMs: number | null): Promise<void> {
    if (this.#inFlight) return;
    this.#inFlight = true;
    try {
      if (leaseLeftMs !== null && leaseLeftMs > 0) await this.#write(Math.max(1, Math.floor(leaseLeftMs / 1000)));
      else if (this.#known !== 'not_ours') await this.#delete();
    } catch (err) {
      this.#emit({ kind: 'failed', error: err instanceof Error ? err.message : String(err) });
    } finally {
      this.#inFlight = false;
    }
  }

  /** Delete our copy now (agent shutdown), waiting for a step in flight to end first. */
  async release(): Promise<void> {
    for (let i = 0; i < 20 && this.#inFlight; i++) await new Promise((r) => setTimeout(r, 50));
    await this.tick(null);
  }

  async #write(ttl: number): Promise<void> {
    const body = new URLSearchParams({ value: this.#o.name, ttl: String(ttl) });
    // Refresh our own copy first when we believe it is ours; else create it only if absent.
    const first = this.#known === 'ours' ? 'prevValue' : 'prevExist';
    let r = await this.#call('PUT', first === 'prevValue' ? { prevValue: this.#o.name } : { prevExist: 'false' }, body);
    if (r.status === 412 || r.status === 404) {
      // Absent (expired) or present: try the other form once; a copy with another name stays.
      r = await this.#call('PUT', first === 'prevValue' ? { prevExist: 'false' } : { prevValue: this.#o.name }, body);
    }
    if (r.status === 200 || r.status === 201) {
      this.#known = 'ours';
      this.#emit({ kind: 'written', ttl });
    } else if (r.status === 412 || r.status === 404) {
      this.#known = 'not_ours';
      this.#emit({ kind: 'held_by_other' });
    } else {
      throw new Error(`etcd v2 PUT ${this.#o.key}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    }
  }

  async #delete(): Promise<void> {
    const r = await this.#call('DELETE', { prevValue: this.#o.name });
    // 404: no copy; 412: another member's copy. Either way nothing of ours is left.
    if (r.status === 200 || r.status === 404 || r.status === 412) {
      if (r.status === 200) this.#emit({ kind: 'deleted' });
      this.#known = 'not_ours';
      return;
    }
    throw new Error(`etcd v2 DELETE ${this.#o.key}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  }

  #emit(e: MirrorEvent): void {
    const sig = e.kind === 'written' ? 'written' : JSON.stringify(e);
    if (sig === this.#lastEvent) return;
    this.#lastEvent = sig;
    this.#o.onChange?.(e);
  }

  async #call(method: 'PUT' | 'DELETE', query: Record<string, string>, body?: URLSearchParams): Promise<Reply> {
    let last: unknown = null;
    for (const host of this.#o.hosts) {
      try {
        return await this.#one(host, method, query, body);
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof Error ? last : new Error('no etcd endpoint');
  }

  #one(host: string, method: string, query: Record<string, string>, body?: URLSearchParams): Promise<Reply> {
    const i = host.lastIndexOf(':');
    const payload = body?.toString() ?? '';
    const path = `/v2/keys${this.#o.key.split('/').map(encodeURIComponent).join('/')}?${new URLSearchParams(query).toString()}`;
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(payload)) };
    if (this.#o.auth) headers.authorization = `Basic ${Buffer.from(`${this.#o.auth.username}:${this.#o.auth.password}`).toString('base64')}`;
    const common = { host: host.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(host.slice(i + 1)), method, path, headers, timeout: REQUEST_TIMEOUT_MS };
    return new Promise((resolve, reject) => {
      const onReply = (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { if (text.length < 4096) text += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      };
      const req = this.#o.protocol === 'https'
        ? httpsRequest({ ...common, ...this.#o.tls }, onReply)
        : httpRequest(common, onReply);
      req.on('timeout', () => req.destroy(new Error(`etcd v2 ${host}: no answer in ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
