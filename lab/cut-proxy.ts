// A TCP proxy on loopback that can be cut like a network partition: while cut, it forwards no
// byte either way (open connections hang, new ones are accepted and then hang too), so a client
// waits out its own deadlines instead of seeing a refused or reset connection. Healing destroys
// the connections the cut held (their byte streams lost data) and forwards again. Loopback tests
// put one in front of each etcd member and each REST API to partition one node from them.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class CutProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ a: Socket; b: Socket | null; held: boolean }>();
  #cut = false;

  readonly listenPort: number;
  readonly targetPort: number;
  readonly host: string;

  constructor(listenPort: number, targetPort: number, host = '127.0.0.1') {
    this.listenPort = listenPort;
    this.targetPort = targetPort;
    this.host = host;
    this.#server = createServer((a) => this.#accept(a));
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.listenPort, this.host, () => resolve());
    });
  }

  get isCut(): boolean { return this.#cut; }

  #accept(a: Socket): void {
    const pair: { a: Socket; b: Socket | null; held: boolean } = { a, b: null, held: this.#cut };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      a.destroy();
      pair.b?.destroy();
    };
    a.on('error', end).on('close', end);
    if (pair.held) return; // accepted during a cut: it hangs until the heal destroys it
    const b = createConnection({ port: this.targetPort, host: this.host });
    pair.b = b;
    b.on('error', end).on('close', end);
    a.on('data', (d) => { if (!this.#cut) b.write(d); else pair.held = true; });
    b.on('data', (d) => { if (!this.#cut) a.write(d); else pair.held = true; });
  }

  /** Forward nothing more: every open and every new connection hangs. */
  cut(): void {
    this.#cut = true;
    for (const p of this.#pairs) p.held = true;
  }

  /** Forward again; the connections the cut held are destroyed (their clients reconnect). */
  heal(): void {
    this.#cut = false;
    for (const p of [...this.#pairs]) {
      if (!p.held) continue;
      this.#pairs.delete(p);
      p.a.destroy();
      p.b?.destroy();
    }
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) { p.a.destroy(); p.b?.destroy(); }
    this.#pairs.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
