// The one agent spawner of the lab: `node bin/pgha.js --config <file>` as the postgres OS user,
// with a minimal environment, its output appended to a log file. The loopback lab and the demo
// spawn it directly; the network-namespace lab passes a spawner that enters the node's namespace.
// (The nspawn lab does not spawn agents: the shipped systemd unit inside each container does.)
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './util.ts';

export const PGHA_BIN = join(REPO, 'bin/pgha.js');

export interface AgentSpawn {
  configPath: string;
  logPath: string;
  /** The working directory and HOME. */
  dir: string;
  /** Run as this user (the postgres OS user); unset: as the caller. */
  user?: { uid: number; gid: number } | null;
  /** Added to PATH, HOME and LANG. */
  env?: Record<string, string>;
  /** Start the command another way (e.g. `ip netns exec`); gets argv, the user and the spawn options. */
  spawner?: (argv: string[], user: { uid: number; gid: number } | undefined, opts: { cwd: string; env: NodeJS.ProcessEnv }) => ChildProcess;
}

export function agentArgv(configPath: string): string[] {
  return [process.execPath, PGHA_BIN, '--config', configPath];
}

export function spawnAgent(o: AgentSpawn): ChildProcess {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: o.dir, LANG: 'C.UTF-8',
    ...o.env,
    ...(process.env.PGHA_NODE_FLAGS !== undefined ? { PGHA_NODE_FLAGS: process.env.PGHA_NODE_FLAGS } : {}),
  };
  const argv = agentArgv(o.configPath);
  const user = o.user ?? undefined;
  const child = o.spawner !== undefined
    ? o.spawner(argv, user, { cwd: o.dir, env })
    : spawn(argv[0]!, argv.slice(1), { ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }), cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'], env });
  const log = createWriteStream(o.logPath, { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return child;
}
