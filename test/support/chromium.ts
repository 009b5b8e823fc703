// A headless Chromium (Debian's `chromium`) driven over the DevTools protocol with Node's global
// WebSocket: no npm package. One page per browser; close() kills the browser's process group and
// removes its profile directory, also when something failed half way.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';

interface Pending { resolve: (v: any) => void; reject: (e: Error) => void }

export class Browser {
  readonly #proc: ChildProcess;
  readonly #profile: string;
  #ws: WebSocket | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #stderr = '';

  private constructor(proc: ChildProcess, profile: string) {
    this.#proc = proc;
    this.#profile = profile;
    proc.stderr?.on('data', (d: Buffer) => { this.#stderr = (this.#stderr + d.toString()).slice(-4000); });
  }

  /** Start Chromium (its own process group) and attach to its first page. */
  static async launch(width = 1280, height = 900): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'pgha-chromium-'));
    const args = [
      '--headless=new', '--remote-debugging-port=0', `--user-data-dir=${profile}`,
      // As root Chromium refuses to start with its sandbox; the test machine's own pages only.
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-extensions',
      '--hide-scrollbars', `--window-size=${width},${height}`, 'about:blank',
    ];
    const proc = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    const b = new Browser(proc, profile);
    try {
      await b.#attach();
      return b;
    } catch (err) {
      await b.close();
      throw new Error(`chromium did not start: ${(err as Error).message}\n${b.#stderr}`);
    }
  }

  async #attach(): Promise<void> {
    // Chromium writes the port it chose into DevToolsActivePort; a cold start on a loaded 2-core
    // machine takes a few seconds, 30 s is generous.
    const portFile = join(this.#profile, 'DevToolsActivePort');
    const deadline = Date.now() + 30_000;
    while (!existsSync(portFile) || readFileSync(portFile, 'utf8').split('\n').length < 2) {
      if (Date.now() > deadline) throw new Error('no DevToolsActivePort after 30 s');
      if (this.#proc.exitCode !== null) throw new Error(`exited with ${this.#proc.exitCode}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const port = Number(readFileSync(portFile, 'utf8').split('\n')[0]);
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as Array<{ type: string; webSocketDebuggerUrl: string }>;
    const page = targets.find((t) => t.type === 'page');
    if (page === undefined) throw new Error('no page target');
    const ws = new WebSocket(page.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('DevTools WebSocket failed')), { once: true });
    });
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
      if (p === undefined) return;
      this.#pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(msg.error.message)); else p.resolve(msg.result);
    });
    this.#ws = ws;
  }

  /** One DevTools command on the page. */
  send<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const ws = this.#ws;
    if (ws === null) return Promise.reject(new Error('not attached'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async goto(url: string): Promise<void> {
    await this.send('Page.enable');
    await this.send('Page.navigate', { url });
  }

  /** Evaluate an expression in the page; its value (JSON-able). */
  async eval<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`page threw: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  async screenshot(path: string): Promise<void> {
    const r = await this.send<{ data: string }>('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
    writeFileSync(path, Buffer.from(r.data, 'base64'));
  }

  async close(): Promise<void> {
    try { this.#ws?.close(); } catch { /* already closed */ }
    for (const p of this.#pending.values()) p.reject(new Error('browser closed'));
    this.#pending.clear();
    const pid = this.#proc.pid;
    if (pid !== undefined && this.#proc.exitCode === null) {
      const exited = new Promise((r) => this.#proc.once('exit', r));
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
      // SIGKILL of the group: the exit event follows within milliseconds; 5 s guards a zombie.
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    rmSync(this.#profile, { recursive: true, force: true });
  }
}
