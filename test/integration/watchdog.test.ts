// systemd's notify protocol with a real agent: a python unix datagram socket stands in for
// systemd's NOTIFY_SOCKET (Node has none; systemd is not running on the test machine). The agent,
// holding the lease as the only member, sends READY=1 once and WATCHDOG=1 over and over; frozen
// (SIGSTOP) it sends nothing; woken up past its deadline it fences, then pets again as a member
// without a lease.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestCluster } from '../../lab/loopback.ts';
import { sleep, waitFor } from '../../lab/util.ts';

// The test hands the agent WATCHDOG_USEC itself: 1500 ms here, looser than the unit's
// WatchdogSec=1000ms so that a loaded CI machine does not miss a beat; the rule tested is the same.
const WATCHDOG_MS = 1500;
const sockDir = mkdtempSync(join(tmpdir(), 'pgha-notify-'));
chmodSync(sockDir, 0o755); // the agent runs as postgres
const SOCKET = join(sockDir, 'notify.sock');
const cluster = new TestCluster({
  ttl: 3,
  env: () => ({ NOTIFY_SOCKET: SOCKET, WATCHDOG_USEC: String(WATCHDOG_MS * 1000) }),
});
const node = cluster.nodes[0]!;
const received: Array<{ at: number; text: string }> = [];
let listener: ChildProcess | null = null;

// recv() without room for ancillary data: the fd systemd-notify attaches to its BARRIER=1 message
// is closed at once, which is how systemd tells it the message was processed.
const LISTENER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
print("listening", flush=True)
while True:
    d = s.recv(4096)
    print(d.decode().replace("\\n", " "), flush=True)
`;

beforeAll(async () => {
  listener = spawn('python3', ['-c', LISTENER, SOCKET], { stdio: ['ignore', 'pipe', 'inherit'] });
  cluster.onDestroy(() => { listener?.kill('SIGKILL'); rmSync(sockDir, { recursive: true, force: true }); });
  let buf = '';
  listener.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      received.push({ at: Date.now(), text: buf.slice(0, i) });
      buf = buf.slice(i + 1);
    }
  });
  await waitFor('the notify listener', async () => received.some((r) => r.text === 'listening'), 5000);
  await cluster.startEtcd();
  cluster.startAgent(node);
  await waitFor('node1 as primary', async () => (await cluster.probe(node, '/primary')) === 200, 60_000);
});
afterAll(async () => {
  node.agent?.kill('SIGCONT');
  await cluster.destroy();
});

it('notifies from its own process, without a child per message, when started with NOTIFY_SOCKET alone', () => {
  // bin/pgha.js re-executed itself through bin/notify-socket.pl (the same PID), which left the
  // connected socket as PGHA_NOTIFY_FD: each message is one write(2), no systemd-notify child.
  const pid = node.agent?.pid ?? 0;
  expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').some((e) => /^PGHA_NOTIFY_FD=\d+$/.test(e))).toBe(true);
  expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('bin/pgha.js');
  expect(cluster.logs(node)).not.toContain('NOTIFY_SOCKET without PGHA_NOTIFY_FD');
});

const pets = (from: number, to = Infinity) => received.filter((r) => r.text === 'WATCHDOG=1' && r.at >= from && r.at < to).length;

it('sends READY=1, and WATCHDOG=1 while holding the lease, nothing while frozen', async () => {
  expect(received.filter((r) => r.text === 'READY=1')).toHaveLength(1);
  const t0 = Date.now();
  await sleep(3000);
  // At most one every WatchdogSec/4, at least one every WatchdogSec.
  expect(pets(t0)).toBeGreaterThanOrEqual(3000 / WATCHDOG_MS);
  expect(pets(t0)).toBeLessThanOrEqual(3000 / (WATCHDOG_MS / 4) + 1);
  expect(await cluster.probe(node, '/primary')).toBe(200);

  node.agent?.kill('SIGSTOP');
  const frozen = Date.now();
  await sleep(4000); // longer than the ttl (3 s): the lease is gone meanwhile
  // A systemd-notify child already running when the agent froze may still deliver one message.
  expect(pets(frozen + 300)).toBe(0);

  node.agent?.kill('SIGCONT');
  const woken = Date.now();
  // Past its deadline it stops PostgreSQL (or finds the fencing process did), then pets again
  // as a member without a lease; as the only member it takes the key back and leads.
  await waitFor('WATCHDOG=1 again', async () => pets(woken) > 0, 15_000);
  expect(received.filter((r) => r.text === 'READY=1')).toHaveLength(1);
});
