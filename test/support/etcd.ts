// A real etcd (Debian's etcd-server) for tests: a child process on loopback with its data in a
// fresh temporary directory. `stop()` kills it and removes the directory.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdHandle {
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
}

const ETCD = '/usr/bin/etcd';

export async function startEtcd(o: { clientPort: number; peerPort: number; name?: string }): Promise<EtcdHandle> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} not found: run apt-get install etcd-server`);
  const dataDir = mkdtempSync(join(tmpdir(), 'pgha-etcd-'));
  const client = `http://127.0.0.1:${o.clientPort}`;
  const peer = `http://127.0.0.1:${o.peerPort}`;
  const name = o.name ?? 'test';
  const child = spawn(ETCD, [
    '--name', name, '--data-dir', dataDir, '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
    '--log-level', 'error',
  ], { stdio: 'ignore' });
  const kill = () => { try { child.kill('SIGCONT'); child.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', kill);
  const stop = async () => {
    kill();
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  };
  // etcd starts in well under a second here; 15 s covers a loaded CI machine.
  const end = performance.now() + 15_000;
  for (;;) {
    const ok = await fetch(`${client}/health`, { signal: AbortSignal.timeout(500) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (performance.now() > end || child.exitCode !== null) { await stop(); throw new Error(`etcd on ${client} did not become healthy`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint: `127.0.0.1:${o.clientPort}`, pid: child.pid ?? 0, stop,
    pause: () => child.kill('SIGSTOP'), resume: () => child.kill('SIGCONT'),
  };
}
