// lab/delay-proxy.ts with real sockets on loopback: the delay it adds, order, a delay changed at
// run time, clean close, many connections at once, bounded memory, and the program's stdin control.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { DelayProxy, HIGH_WATER, parseRoute } from '../../lab/delay-proxy.ts';

const PROXY_BIN = fileURLToPath(new URL('../../lab/delay-proxy.ts', import.meta.url));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

/** A TCP server on 127.0.0.1 with an ephemeral port; `onConn` handles each connection. */
async function server(onConn: (s: Socket) => void): Promise<{ port: number; server: Server }> {
  const conns = new Set<Socket>();
  const srv = createServer({ allowHalfOpen: true }, (s) => { conns.add(s); onConn(s); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { srv.close(() => r()); for (const c of conns) c.destroy(); }));
  return { port: (srv.address() as { port: number }).port, server: srv };
}

const echo = () => server((s) => s.pipe(s));

async function proxyTo(port: number, defaultMs = 0): Promise<{ proxy: DelayProxy; port: number }> {
  const proxy = new DelayProxy([{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port } }], { defaultMs });
  await proxy.listen();
  cleanups.push(() => proxy.close());
  return { proxy, port: proxy.ports[0]! };
}

async function dial(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  cleanups.push(() => { s.destroy(); });
  return s;
}

/** Send `msg` and resolve with the milliseconds until as many bytes came back. */
async function roundTrip(s: Socket, msg: string): Promise<number> {
  const t0 = performance.now();
  let got = 0;
  const done = new Promise<void>((resolve) => {
    const on = (b: Buffer) => { got += b.length; if (got >= msg.length) { s.off('data', on); resolve(); } };
    s.on('data', on);
  });
  s.write(msg);
  await done;
  return performance.now() - t0;
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('DelayProxy', () => {
  it('adds the delay in each direction, within bounds', async () => {
    const { port } = await echo();
    const { port: pp } = await proxyTo(port, 100);
    const s = await dial(pp);
    const rtt = await roundTrip(s, 'ping');
    // 100 ms each way: at least 200 ms, and the proxy adds little beyond (a loaded 2-core machine: 300 ms slack).
    expect(rtt).toBeGreaterThanOrEqual(199);
    expect(rtt).toBeLessThan(500);
  });

  it('adds next to nothing at delay 0', async () => {
    const { port } = await echo();
    const { port: pp } = await proxyTo(port, 0);
    const s = await dial(pp);
    await roundTrip(s, 'warm');
    const rtts: number[] = [];
    for (let i = 0; i < 20; i++) rtts.push(await roundTrip(s, 'ping'));
    rtts.sort((a, b) => a - b);
    expect(rtts[10]!).toBeLessThan(50); // the median; on loopback well under 1 ms when idle
  });

  it('changes the delay at run time and keeps the order when it drops', async () => {
    const { port } = await echo();
    const { proxy, port: pp } = await proxyTo(port, 0);
    const s = await dial(pp);
    expect(await roundTrip(s, 'a')).toBeLessThan(100);
    proxy.set({ defaultMs: 150 });
    expect(await roundTrip(s, 'b')).toBeGreaterThanOrEqual(299);
    // 200 numbered chunks, the delay lowered from 300 ms to 0 halfway: every byte back in order.
    const received: Buffer[] = [];
    s.on('data', (b: Buffer) => received.push(b));
    proxy.set({ defaultMs: 300 });
    let sent = '';
    for (let i = 0; i < 200; i++) {
      if (i === 100) proxy.set({ defaultMs: 0 });
      const chunk = `<${i}>`;
      sent += chunk;
      s.write(chunk);
      await new Promise((r) => setImmediate(r));
    }
    await until(() => Buffer.concat(received).length >= sent.length);
    expect(Buffer.concat(received).toString()).toBe(sent);
  });

  it('chooses the delay by the source address', async () => {
    const { port } = await echo();
    const { proxy, port: pp } = await proxyTo(port, 0);
    proxy.set({ defaultMs: 0, bySource: { '127.0.0.1': 100 } });
    expect(proxy.delayFor('127.0.0.1')).toBe(100);
    expect(proxy.delayFor('10.0.0.9')).toBe(0);
    const s = await dial(pp);
    expect(await roundTrip(s, 'x')).toBeGreaterThanOrEqual(199);
  });

  it('passes a half-close on after the held data and closes both sides cleanly', async () => {
    let serverGot = '';
    let serverSawEnd = false;
    const { port } = await server((s) => {
      s.on('data', (b: Buffer) => { serverGot += b.toString(); });
      s.on('end', () => { serverSawEnd = true; s.end('bye'); });
    });
    const { proxy, port: pp } = await proxyTo(port, 50);
    const s = await dial(pp);
    let clientGot = '';
    s.on('data', (b: Buffer) => { clientGot += b.toString(); });
    const closed = once(s, 'close');
    s.end('hello');
    const [hadError] = await closed as [boolean];
    expect(hadError).toBe(false);
    expect(serverGot).toBe('hello');
    expect(serverSawEnd).toBe(true);
    expect(clientGot).toBe('bye');
    await until(() => proxy.connections === 0);
  });

  it('resets the client when the target refuses', async () => {
    const { port, server: srv } = await echo();
    await new Promise<void>((r) => srv.close(() => r()));
    const { proxy, port: pp } = await proxyTo(port, 0);
    const s = connect({ host: '127.0.0.1', port: pp });
    s.on('error', () => undefined);
    await once(s, 'close');
    await until(() => proxy.connections === 0);
  });

  it('serves many connections at once', async () => {
    const { port } = await echo();
    const { proxy, port: pp } = await proxyTo(port, 20);
    const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const s = await dial(pp);
      const msg = `conn-${i}-`.repeat(50);
      let got = '';
      s.on('data', (b: Buffer) => { got += b.toString(); });
      const closed = once(s, 'close');
      s.end(msg);
      await closed;
      return got === msg;
    }));
    expect(results.every(Boolean)).toBe(true);
    await until(() => proxy.connections === 0);
  });

  it('bounds the bytes it holds when the target does not read', async () => {
    // The target pauses: its kernel buffers fill, then the proxy's, then the client's writes back up.
    const { port } = await server((s) => s.pause());
    const { proxy, port: pp } = await proxyTo(port, 0);
    const s = await dial(pp);
    const chunk = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    // Write as fast as the client's socket drains, until it stops draining for 300 ms.
    for (;;) {
      written += chunk.length;
      if (s.write(chunk)) continue;
      const drained = await Promise.race([once(s, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 300))]);
      if (!drained || written >= 64 * 1024 * 1024) break;
    }
    expect(proxy.heldBytes).toBeLessThanOrEqual(HIGH_WATER + chunk.length);
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });
});

describe('delay-proxy program', () => {
  it('parses routes', () => {
    expect(parseRoute('10.0.0.1:2390=10.0.0.1:2379')).toEqual({ listen: { host: '10.0.0.1', port: 2390 }, target: { host: '10.0.0.1', port: 2379 } });
    expect(() => parseRoute('10.0.0.1:2390')).toThrow();
    expect(() => parseRoute('a:1=b:x')).toThrow();
  });

  it('takes delay settings on stdin and exits when stdin closes', async () => {
    const { port } = await echo();
    // A fixed free port is not available to the program; take one from a throw-away listener.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const pp = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const child = spawn(process.execPath, [PROXY_BIN, `127.0.0.1:${pp}=127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    cleanups.push(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    await until(() => out.includes('listening'), 10_000);
    const s = await dial(pp);
    expect(await roundTrip(s, 'a')).toBeLessThan(100);
    child.stdin.write('{"defaultMs":100}\n');
    await until(() => out.includes('set '));
    expect(await roundTrip(s, 'b')).toBeGreaterThanOrEqual(199);
    const exited = once(child, 'exit');
    child.stdin.end();
    expect((await exited)[0]).toBe(0);
  }, 20_000);
});
