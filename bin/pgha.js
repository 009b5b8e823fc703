#!/usr/bin/env node
// Shim for `pgha`: needs Node 24. Runs dist/ (compiled by `npm run build`, what the Debian package
// ships) when it is current, else the TypeScript sources in src/ (type stripping): see bin/entry.js.
// Inside npm scripts and `npx`, node_modules/.bin (with the pinned Node 24) comes first on PATH;
// the package's /usr/bin/pgha and its systemd unit run /opt/pgha's own Node 24.
import { existsSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { entry } from './entry.js';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write('pgha needs Node 24: run it as `npx pgha` from the pgha checkout, or with node_modules/.bin/node\n');
  process.exit(2);
}

// Memory. The agent allocates little, but V8 sizes its young generation for throughput (16 MB
// semi-spaces): --max-semi-space-size=1 keeps it at a few MB, which is most of the difference
// between an idle agent's heap at about 25 MB and at about 55 MB. V8 reads heap sizes only when
// the process starts, so the shim replaces itself (execve: same pid, same stdio, no second
// process) with a Node started with those flags. PGHA_NODE_FLAGS replaces the list ("" = none).
// No re-exec when the flags are already there (systemd/pgha.service passes them on ExecStart),
// nor when bin/notify-socket.pl handed us systemd's notify socket (PGHA_NOTIFY_FD): Node's
// process.execve closes every inherited descriptor, and libuv then reuses that number for its
// own epoll instance, so every READY=1 and WATCHDOG=1 would fail (EINVAL), found under a real
// systemd (docs/systemd.md).
//
// systemd's notify socket without the launcher's descriptor (NOTIFY_SOCKET set, PGHA_NOTIFY_FD
// not: the agent started some other way than systemd/pgha.service's ExecStart): the same re-exec
// goes through bin/notify-socket.pl, which opens the socket and execs Node again (still the same
// PID). Otherwise every READY=1 and WATCHDOG=1 would be a systemd-notify child: four processes a
// second at the default WatchdogSec, about 2.5 % of a core (docs/performance.md). Only when the
// socket exists (a datagram connect to a missing path fails, and the launcher would stop) and
// perl is there; else the agent falls back to systemd-notify (src/agent/sd-notify.ts).
const PERL = '/usr/bin/perl';
const notifySocket = process.env.NOTIFY_SOCKET ?? '';
const viaLauncher = notifySocket !== '' && process.env.PGHA_NOTIFY_FD === undefined && existsSync(PERL)
  && (notifySocket.startsWith('@') || existsSync(notifySocket));
const flags = (process.env.PGHA_NODE_FLAGS ?? '--max-semi-space-size=1').split(/\s+/).filter(Boolean);
const missing = flags.filter((f) => !process.execArgv.includes(f));
if (process.env.PGHA_REEXEC !== '1' && (missing.length > 0 || viaLauncher) && (process.env.PGHA_NOTIFY_FD === undefined) && typeof process.execve === 'function') {
  const node = [process.execPath, ...process.execArgv, ...missing, fileURLToPath(import.meta.url), ...process.argv.slice(2)];
  const argv = viaLauncher ? [PERL, fileURLToPath(new URL('./notify-socket.pl', import.meta.url)), ...node] : node;
  process.execve(argv[0], argv, { ...process.env, PGHA_REEXEC: '1' });
}
delete process.env.PGHA_REEXEC;

// Flags that remove WebAssembly (--jitless, --lite-mode) cannot run the agent from src/: Node's
// TypeScript loader needs it (the compile cache is keyed by the flags, so it never spares the
// loader here). Say so and stop, instead of a stack trace. The compiled dist/ needs no loader.
// The agent's own HTTP calls (the failsafe round) use node:http, not fetch, so they do not
// depend on WebAssembly.
const main = entry('agent/main');
if (typeof WebAssembly === 'undefined' && main.endsWith('.ts')) {
  process.stderr.write(`pgha: the Node flags (${process.execArgv.join(' ')}) disable WebAssembly, which Node needs to load pgha's TypeScript sources: remove --jitless / --lite-mode (PGHA_NODE_FLAGS)\n`);
  process.exit(2);
}

// Node's compile cache keeps the modules' bytecode (and, run from src/, the type-stripped sources)
// on disk, so an agent that starts again does not compile them again, nor, from src/, load the
// TypeScript stripper (a WebAssembly module of about 18 MB resident). It lives in a directory of
// the agent's own user (a cache anyone could write to would be a way to run code as that user);
// the agent flushes it once it is up (src/agent/main.ts), since an agent usually ends by a signal, not by exiting.
if (process.env.NODE_COMPILE_CACHE === undefined) {
  enableCompileCache(process.env.PGHA_COMPILE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pgha'));
}

await import(main);
