// src/cli/commands.ts: pghactl loads only the command it runs, so the names and descriptions it
// shows without loading the modules must be the modules' own, and commandOf must find the command
// where yargs does.
import { describe, expect, it } from 'vitest';
import { COMMANDS, commandFor, commandOf, nameOf } from '../../src/cli/commands.ts';

describe('pghactl commands, loaded lazily', () => {
  it('each command is named and described as in its module', async () => {
    for (const c of COMMANDS) {
      const m = await c.load();
      expect({ command: m.command, describe: m.describe }).toEqual({ command: c.command, describe: c.describe });
    }
    expect(new Set(COMMANDS.map(nameOf)).size).toBe(COMMANDS.length);
  });

  it('a stand-in that is run is a bug, not a silent success', async () => {
    const stub = await commandFor(COMMANDS[0]!, false);
    expect(() => (stub.handler as (a: unknown) => void)({})).toThrow(/not loaded/);
  });

  it('commandOf finds the command after global options, as yargs does', () => {
    expect(commandOf([]).name).toBeUndefined();
    expect(commandOf(['--help']).name).toBeUndefined();
    expect(commandOf(['--help', 'list']).name).toBe('list');
    expect(commandOf(['--version']).name).toBeUndefined();
    expect(commandOf(['list', '-W']).name).toBe('list');
    expect(commandOf(['-c', 'switchover', 'list']).name).toBe('list');
    expect(commandOf(['--config=/etc/pgha/pgha.yml', '-f', 'json', 'switchover', '--force']).name).toBe('switchover');
    expect(commandOf(['--etcd', 'h:2379', '--scope', 'main', '--namespace', '/x', 'history']).name).toBe('history');
    expect(commandOf(['--format', 'yaml', '--etcd-cacert', 'a', '--etcd-cert', 'b', '--etcd-key', 'c', 'dsn']).name).toBe('dsn');
    expect(commandOf(['-cfile.yml', 'topology']).name).toBe('topology');
    expect(commandOf(['completion'])).toEqual({ name: 'completion', completion: true });
    expect(commandOf(['--get-yargs-completions', 'switchover', '--c']).completion).toBe(true);
    expect(commandOf(['list']).completion).toBe(false);
  });
});
