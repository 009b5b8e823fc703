// The fencing process: a small watchdog outside the agent's event loop. A frozen agent (SIGSTOP,
// a stuck event loop, a VM pause) cannot run its own fence timer; this process can. The agent
// sends it, on stdin, one JSON line per change: {"armed": bool, "deadline": ms on CLOCK_MONOTONIC}.
// When an armed deadline passes without a newer one, it SIGKILLs PostgreSQL's backends and then
// the postmaster, so no further commit is acknowledged. If the agent dies, the last deadline still
// holds: the lease will expire, so PostgreSQL must stop by then too.
//
// Run as: node fencer.ts <data_dir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const dataDir = process.argv[2];
if (dataDir === undefined) {
  process.stderr.write('usage: fencer.ts DATA_DIR\n');
  process.exit(2);
}

/** CLOCK_MONOTONIC in ms: the same clock in every process on this host. */
export const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n);

let armed = false;
let deadline = 0;
let agentGone = false;

function postmasterPid(): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir as string, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function fence(): void {
  const pid = postmasterPid();
  if (pid !== null) {
    let children: number[] = [];
    try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* gone */ }
    // Backends first: a backend outliving its postmaster could still acknowledge a commit.
    for (const p of [...children, pid]) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  }
  process.stdout.write(`${JSON.stringify({ event: 'fenced', pid, at: new Date().toISOString() })}\n`);
}

// Checked every 20 ms: the fence lands at most 20 ms after the deadline, well inside fence_margin.
const timer = setInterval(() => {
  if (armed && monotonicMs() >= deadline) {
    armed = false;
    fence();
  }
  if (agentGone && !armed) process.exit(0);
}, 20);

createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const m = JSON.parse(line) as { armed?: unknown; deadline?: unknown };
    armed = m.armed === true && typeof m.deadline === 'number';
    deadline = typeof m.deadline === 'number' ? m.deadline : 0;
  } catch { /* ignore a garbled line */ }
}).on('close', () => {
  agentGone = true; // keep the last deadline: fence at it if armed, then exit
});

process.on('SIGTERM', () => { clearInterval(timer); process.exit(0); });
