// A delaying TCP proxy (node:net) for the fault-injection lab: `tc netem` does not exist in this
// kernel, so pure packet delay is injected here instead. A proxy listens on one or more addresses
// and forwards each accepted connection to its route's target; every chunk read in either
// direction is held for the delay in force when it arrived (chosen by the connection's source
// address, changeable at run time), then written in order. Order is kept even when the delay
// drops (a chunk never leaves before one read earlier). Memory is bounded per direction: above
// HIGH_WATER bytes held, the reading side is paused until the queue drains below LOW_WATER, and
// nothing is released while the writing side's buffer is full. A half-close (FIN) is passed on
// after the chunks before it; an error or reset on one side destroys the other.
//
// As a program (`node lab/delay-proxy.ts LISTEN=TARGET ...`, each host:port) it prints
// `listening` once every route listens, then reads delay settings as JSON lines on stdin:
// {"defaultMs": 0, "bySource": {"10.231.0.12": 300}}. It exits when stdin closes.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** Held bytes per direction above which the reading side pauses, and below which it resumes. */
export const HIGH_WATER = 1 << 20;
export const LOW_WATER = 1 << 18;

export interface Endpoint { host: string; port: number }
export interface Route { listen: Endpoint; target: Endpoint }

export const delaySettingsSchema = z.object({
  defaultMs: z.number().min(0).max(60_000),
  bySource: z.record(z.string(), z.number().min(0).max(60_000)).default({}),
}).strict();
export type DelaySettings = z.infer<typeof delaySettingsSchema>;

/** An IPv4-mapped IPv6 address (::ffff:10.0.0.1) as the IPv4 address a setting names. */
const plainAddress = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');

/** One direction of one connection: chunks from `src` held, then written to `dst` in order. */
class Hold {
  #queue: { dueMs: number; buf: Buffer }[] = [];
  #bytes = 0;
  #lastDueMs = 0;
  #timer: NodeJS.Timeout | null = null;
  #blocked = false;
  #ended = false;

  private readonly src: Socket;
  private readonly dst: Socket;
  private readonly delayMs: () => number;

  constructor(src: Socket, dst: Socket, delayMs: () => number) {
    this.src = src;
    this.dst = dst;
    this.delayMs = delayMs;
    src.on('data', (buf: Buffer) => this.#push(buf));
    src.on('end', () => { this.#ended = true; this.#pump(); });
  }

  get heldBytes(): number { return this.#bytes; }

  #push(buf: Buffer): void {
    // Never before a chunk read earlier: order holds when the delay is lowered at run time.
    const dueMs = Math.max(performance.now() + this.delayMs(), this.#lastDueMs);
    this.#lastDueMs = dueMs;
    this.#queue.push({ dueMs, buf });
    this.#bytes += buf.length;
    if (this.#bytes > HIGH_WATER) this.src.pause();
    this.#pump();
  }

  /** Write every chunk that is due, unless the other side's buffer is full; time the next one. */
  #pump(): void {
    if (this.#timer !== null || this.#blocked || this.dst.destroyed) return;
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.dueMs <= now) {
      const { buf } = this.#queue.shift()!;
      this.#bytes -= buf.length;
      if (!this.dst.write(buf)) {
        this.#blocked = true;
        this.dst.once('drain', () => { this.#blocked = false; this.#pump(); });
        break;
      }
    }
    if (this.#bytes < LOW_WATER && this.src.isPaused() && !this.src.destroyed) this.src.resume();
    if (this.#blocked) return;
    const next = this.#queue[0];
    if (next !== undefined) {
      this.#timer = setTimeout(() => { this.#timer = null; this.#pump(); }, Math.max(0, next.dueMs - now));
    } else if (this.#ended) {
      this.dst.end(); // the half-close, after every chunk before it
    }
  }

  drop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue = [];
    this.#bytes = 0;
  }
}

export class DelayProxy {
  #servers: Server[] = [];
  #sockets = new Set<Socket>();
  #holds = new Set<Hold>();
  #upstreams = new Set<Socket>();
  #settings: DelaySettings = { defaultMs: 0, bySource: {} };
  readonly routes: Route[];
  /** The ports actually bound, in route order (a route may ask for port 0). */
  readonly ports: number[] = [];

  constructor(routes: Route[], settings?: Partial<DelaySettings>) {
    this.routes = routes;
    if (settings !== undefined) this.set(settings);
  }

  /** Change the delays; chunks already held keep the delay they got. */
  set(s: Partial<DelaySettings>): void {
    this.#settings = delaySettingsSchema.parse({ defaultMs: s.defaultMs ?? 0, bySource: s.bySource ?? {} });
  }

  get settings(): DelaySettings { return this.#settings; }

  delayFor(source: string): number { return this.#settings.bySource[source] ?? this.#settings.defaultMs; }

  /** Bytes held right now over every connection and direction (bounded by the water marks). */
  get heldBytes(): number { let n = 0; for (const h of this.#holds) n += h.heldBytes; return n; }

  /** Open connections (both sides counted once: client sockets only). */
  get connections(): number { return this.#sockets.size; }

  async listen(): Promise<void> {
    for (const r of this.routes) {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => this.#accept(client, r.target));
      this.#servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(r.listen.port, r.listen.host, () => { server.off('error', reject); resolve(); });
      });
      const addr = server.address();
      this.ports.push(typeof addr === 'object' && addr !== null ? addr.port : r.listen.port);
    }
  }

  #accept(client: Socket, target: Endpoint): void {
    const source = plainAddress(client.remoteAddress);
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.#sockets.add(client);
    this.#upstreams.add(upstream);
    const delay = () => this.delayFor(source);
    const holds = [new Hold(client, upstream, delay), new Hold(upstream, client, delay)];
    for (const h of holds) this.#holds.add(h);
    for (const s of [client, upstream]) s.setNoDelay(true);
    // A clean close needs nothing here: a side is ended only after the other's FIN went through
    // (allowHalfOpen), and a socket closes once both its directions ended. An error or a reset on
    // one side (including a refused connect) takes the other down at once, dropping what is held.
    for (const s of [client, upstream]) {
      s.on('error', () => undefined); // reported through 'close' (hadError)
      s.on('close', (hadError) => {
        if (s === client) this.#sockets.delete(client);
        else this.#upstreams.delete(upstream);
        if (client.destroyed && upstream.destroyed) for (const h of holds) this.#holds.delete(h);
        if (!hadError) return;
        for (const h of holds) h.drop();
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.once('connect', () => client.resume());
  }

  async close(): Promise<void> {
    for (const s of [...this.#sockets, ...this.#upstreams]) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.#servers = [];
  }
}

const endpoint = (s: string): Endpoint => {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not host:port: ${s}`);
  return { host: s.slice(0, i), port };
};

/** `LISTEN=TARGET` (each host:port) as a route. */
export function parseRoute(arg: string): Route {
  const [listen, target, ...rest] = arg.split('=');
  if (listen === undefined || target === undefined || rest.length > 0) throw new Error(`not LISTEN=TARGET: ${arg}`);
  return { listen: endpoint(listen), target: endpoint(target) };
}

async function main(argv: string[]): Promise<void> {
  const proxy = new DelayProxy(argv.map(parseRoute));
  await proxy.listen();
  process.stdout.write('listening\n');
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    try {
      proxy.set(delaySettingsSchema.parse(JSON.parse(line)));
      process.stdout.write(`set ${JSON.stringify(proxy.settings)}\n`);
    } catch (e) {
      process.stderr.write(`delay-proxy: bad setting ${line}: ${(e as Error).message}\n`);
    }
  });
  // The lab owns this process through its stdin: when the lab goes, so does the proxy.
  lines.on('close', () => { void proxy.close().then(() => process.exit(0)); });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e: unknown) => { process.stderr.write(`delay-proxy: ${(e as Error).message}\n`); process.exit(1); });
}
