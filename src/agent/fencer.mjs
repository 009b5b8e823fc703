// The fencing process: a small watchdog outside the agent's event loop. A frozen agent (SIGSTOP,
// a stuck event loop, a VM pause) cannot run its own fence timer; this process can. The agent
// sends it, on stdin, one JSON line per change: {"armed": bool, "deadline": ms on CLOCK_MONOTONIC}.
// When an armed deadline passes without a newer one, it SIGKILLs PostgreSQL's backends and then
// the postmaster, so no further commit is acknowledged (only a process that is our postmaster by
// name and working directory: see isOurPostmaster). If the agent dies, the last deadline still
// holds: the lease will expire, so PostgreSQL must stop by then too.
//
// Plain JavaScript on purpose: a .ts file would make Node load its TypeScript stripper (about
// 18 MB) into this process, and the fencer needs nothing but node:fs and node:readline.
// Run as: node fencer.mjs <data_dir>
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const dataDir = process.argv[2];
if (dataDir === undefined) {
  process.stderr.write('usage: fencer.mjs DATA_DIR\n');
  process.exit(2);
}

/** CLOCK_MONOTONIC in ms: the same clock in every process on this host. */
const monotonicMs = () => Number(process.hrtime.bigint() / 1_000_000n);

let armed = false;
let deadline = 0;
let agentGone = false;

/** @returns {number | null} */
function postmasterPid() {
  try {
    const pid = Number(readFileSync(join(/** @type {string} */ (dataDir), 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Is `pid` our postmaster? The same check as the agent's (src/postgres/datadir.ts livePostmaster):
 * a live, non-zombie process named postgres (or postmaster) whose working directory is our data
 * directory. After a crash the PID in a stale postmaster.pid may belong to any other program by
 * now, or to another cluster's postgres: those are never signalled. When /proc hides the cwd (it
 * does not for the same user), the name check stands.
 * @param {number} pid
 */
function isOurPostmaster(pid) {
  let stat;
  try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return false; }
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  if ((comm !== 'postgres' && comm !== 'postmaster') || stat.slice(close + 2, close + 3) === 'Z') return false;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(/** @type {string} */ (dataDir));
  } catch (err) {
    return /** @type {NodeJS.ErrnoException} */ (err).code === 'EACCES';
  }
}

/** @param {number} pid */
function isPostgres(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === 'postgres';
  } catch {
    return false;
  }
}

function fence() {
  const found = postmasterPid();
  const pid = found !== null && isOurPostmaster(found) ? found : null;
  if (found !== null && pid === null) process.stdout.write(`${JSON.stringify({ event: 'not our postmaster', pid: found })}\n`);
  if (pid !== null) {
    /** @type {number[]} */
    let children = [];
    // Freeze the postmaster first so it forks no backend between reading its children and the
    // kill; then the backends (one outliving its postmaster could still acknowledge a commit),
    // then the postmaster itself (SIGKILL ends a stopped process too).
    try { process.kill(pid, 'SIGSTOP'); } catch { /* gone */ }
    try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* gone */ }
    for (const p of [...children.filter(isPostgres), pid]) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  }
  process.stdout.write(`${JSON.stringify({ event: 'fenced', pid, at: new Date().toISOString() })}\n`);
}

/** @type {ReturnType<typeof setTimeout> | null} */
let timer = null;

// One timer at the deadline (not polling: no wake-ups while nothing changes). Node's timers run
// on CLOCK_MONOTONIC and never fire early by their own clock; the deadline is checked again
// against monotonicMs() anyway, and a timer that came a little early is simply set again.
function check() {
  timer = null;
  if (armed) {
    const left = deadline - monotonicMs();
    if (left > 0) {
      timer = setTimeout(check, Math.min(left, 2 ** 31 - 1)); // Node's timer limit (24.8 days)
      return;
    }
    armed = false;
    fence();
  }
  if (agentGone) process.exit(0);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const m = JSON.parse(line);
    armed = m.armed === true && typeof m.deadline === 'number';
    deadline = typeof m.deadline === 'number' ? m.deadline : 0;
  } catch { return; /* ignore a garbled line */ }
  if (timer !== null) clearTimeout(timer);
  check();
}).on('close', () => {
  agentGone = true; // keep the last deadline: fence at it if armed, then exit
  if (timer === null) check();
});

process.on('SIGTERM', () => { if (timer !== null) clearTimeout(timer); process.exit(0); });
