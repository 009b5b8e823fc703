// The one HAProxy launcher of the lab: the configuration rendered by src/proxy/haproxy.ts (the
// template the product ships), written to `<dir>/haproxy.cfg`, and `haproxy -db -f` started by
// the caller's spawner (a plain child by default; the nspawn lab puts it in a cgroup). Used by the
// loopback cluster, the network-namespace and nspawn chaos labs, the demo and the Patroni bench.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderHaproxyConfig, type HaproxyInput } from '../src/proxy/haproxy.ts';

export const HAPROXY = '/usr/sbin/haproxy';

export interface HaproxyOptions extends Omit<HaproxyInput, 'checkIntervalMs'> {
  /** Where haproxy.cfg is written. */
  dir: string;
  /** Health-check interval; 250 ms everywhere in the lab (a failover is seen within a quarter second). */
  checkIntervalMs?: number;
  /** HAProxy's output appended there; discarded when unset. */
  logPath?: string;
  /** Its own process group (a Ctrl-C on the terminal reaches only the script, which tears down). */
  detached?: boolean;
  /** Start the command another way (e.g. in a cgroup); gets the argv and logPath. */
  spawner?: (argv: string[], logPath: string | undefined) => ChildProcess;
}

export interface HaproxyHandle {
  child: ChildProcess;
  configPath: string;
  /** SIGKILL HAProxy (it keeps no state worth a clean stop). */
  kill(): void;
}

export function startHaproxy(o: HaproxyOptions): HaproxyHandle {
  const { dir, logPath, detached, spawner, checkIntervalMs, ...input } = o;
  const configPath = join(dir, 'haproxy.cfg');
  writeFileSync(configPath, renderHaproxyConfig({ ...input, checkIntervalMs: checkIntervalMs ?? 250 }));
  const argv = [HAPROXY, '-db', '-f', configPath];
  let child: ChildProcess;
  if (spawner !== undefined) {
    child = spawner(argv, logPath);
  } else {
    child = spawn(HAPROXY, argv.slice(1), { detached: detached ?? false, stdio: logPath === undefined ? 'ignore' : ['ignore', 'pipe', 'pipe'] });
    if (logPath !== undefined) {
      const log = createWriteStream(logPath, { flags: 'a' });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
    }
  }
  return { child, configPath, kill: () => { try { child.kill('SIGKILL'); } catch { /* gone */ } } };
}
