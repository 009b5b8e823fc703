// The daemon's log lines: level names, scope and member on every line, the journald prefix.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, journaldPrefix, type LoggerOptions } from '../../src/log/logger.ts';

function capture(opts: LoggerOptions): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString().split('\n').filter((l) => l !== '')); cb(); } });
  return { lines, log: createLogger({ ...opts, destination }) };
}

describe('logger', () => {
  it('writes level names and the scope and member on every line', () => {
    const { lines, log } = capture({ level: 'debug', name: 'db1', scope: 'main' });
    log.info({ event: 'x' }, 'hello');
    log.child({ component: 'api' }).warn('careful');
    log.debug('detail');
    expect(lines).toHaveLength(3);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((p) => p['level'])).toEqual(['info', 'warn', 'debug']);
    for (const p of parsed) expect(p).toMatchObject({ scope: 'main', member: 'db1' });
    expect(lines[0]).toMatch(/^\{"level":"info","time":"\d{4}-\d\d-\d\dT[^"]+Z","scope":"main","member":"db1","event":"x","msg":"hello"\}$/);
  });

  it('prefixes each line with its sd-daemon priority when journald is on', () => {
    const { lines, log } = capture({ level: 'trace', scope: 'main', journald: true });
    log.error('e'); log.warn('w'); log.info('i'); log.debug('d'); log.trace('t'); log.fatal('f');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<3>', '<4>', '<6>', '<7>', '<7>', '<2>']);
    // After the prefix, each line is still one JSON object.
    for (const l of lines) expect(JSON.parse(l.slice(3))).toHaveProperty('scope', 'main');
  });

  it('writes no prefix by default', () => {
    const { lines, log } = capture({});
    log.warn('w');
    expect(lines[0]?.startsWith('{"level":"warn"')).toBe(true);
  });

  it('journaldPrefix falls back to info for a line it cannot read', () => {
    expect(journaldPrefix('{"level":"warn","msg":"x"}\n')).toBe('<4>{"level":"warn","msg":"x"}\n');
    expect(journaldPrefix('not json\n')).toBe('<6>not json\n');
  });

  it('still redacts secrets', () => {
    const { lines, log } = capture({ journald: true });
    log.info({ password: 'hunter2', conninfo: 'host=a password=b' }, 'x');
    expect(lines.join('')).not.toMatch(/hunter2|password=b/);
  });
});
