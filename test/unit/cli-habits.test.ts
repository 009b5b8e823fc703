// pghactl habits, the pure parts: TSV output, the default config path, list -W, the edit-config
// diff and editor command, remove's questions, and query's member choice and rendering.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { editorCommand } from '../../src/cli/config.ts';
import { configPath, DEFAULT_CONFIG_PATH } from '../../src/cli/context.ts';
import { unifiedDiff } from '../../src/cli/diff.ts';
import { buildListRows, renderList, renderTsv, tsvCell } from '../../src/cli/format.ts';
import { watchInterval } from '../../src/cli/list.ts';
import { pickMember, renderResults } from '../../src/cli/query.ts';
import { AWARE, removeQuestions } from '../../src/cli/remove.ts';
import { clusterView, member } from '../support/observations.ts';

describe('--format tsv', () => {
  it('escapes tabs, newlines and backslashes so each row stays one line; null is empty', () => {
    expect(tsvCell('a\tb\nc\\d\re')).toBe('a\\tb\\nc\\\\d\\re');
    expect(tsvCell(null)).toBe('');
    expect(tsvCell({ a: 1 })).toBe('{"a":1}');
    expect(renderTsv(['x', 'y'], [[1, null], ['p\tq', true]])).toBe('x\ty\n1\t\np\\tq\ttrue\n');
  });
  it('renders list as a header and one line per member, exact lag, no banner', () => {
    const v = clusterView({ lastLeaderLsn: 10_000_000, members: [member('n1', { role: 'primary', state: 'running', lsn: 10_000_000 }), member('n2', { lsn: 10_000_000 - 1234567 })] });
    const lines = renderList('demo', v, buildListRows(v), 'tsv', false).split('\n').slice(0, -1);
    expect(lines[0]).toBe('Member\tHost\tRole\tState\tTL\tLag in MB\tTags\tPending restart');
    expect(lines[1]).toBe('n1\t127.0.0.1:5432\tLeader\trunning\t1\t\t\t');
    expect(lines[2]).toBe(`n2\t127.0.0.1:5432\tReplica\tstreaming\t1\t${1234567 / 1048576}\t\t`);
    expect(lines).toHaveLength(3);
  });
});

describe('default config path', () => {
  const exists = (p: string) => p === DEFAULT_CONFIG_PATH;
  const none = () => false;
  it('is /etc/pgha/pgha.yml when neither -c, PGHA_CONFIG nor --etcd is given and the file exists', () => {
    expect(configPath({}, {}, exists)).toBe('/etc/pgha/pgha.yml');
    expect(configPath({}, {}, none)).toBeUndefined();
    expect(configPath({ etcd: '127.0.0.1:2379' }, {}, exists)).toBeUndefined();
    expect(configPath({ config: '/x.yml' }, { PGHA_CONFIG: '/y.yml' }, exists)).toBe('/x.yml');
    expect(configPath({}, { PGHA_CONFIG: '/y.yml' }, exists)).toBe('/y.yml');
    expect(configPath({}, { PGHA_CONFIG: '' }, exists)).toBe('/etc/pgha/pgha.yml');
  });
});

describe('list -W', () => {
  it('is --watch 2 (patronictl), and --watch N wins', () => {
    expect(watchInterval({ W: true })).toBe(2);
    expect(watchInterval({ W: true, watch: 5 })).toBe(5);
    expect(watchInterval({ watch: 0.5 })).toBe(0.5);
    expect(watchInterval({})).toBeNull();
  });
});

describe('edit-config in the editor', () => {
  it('shows what changed as a unified diff, nothing when nothing did', () => {
    expect(unifiedDiff('a: 1\nb: 2\n', 'a: 1\nb: 2\n')).toBe('');
    expect(unifiedDiff('ttl: 30\nloop_wait: 10\npause: false\n', 'ttl: 20\nloop_wait: 10\npause: false\nx: 1\n'))
      .toBe('--- etcd\n+++ edited\n-ttl: 30\n+ttl: 20\n loop_wait: 10\n pause: false\n+x: 1\n');
  });
  it('runs $VISUAL, else $EDITOR, else vi, split into words without a shell', () => {
    expect(editorCommand({ VISUAL: 'code --wait', EDITOR: 'nano' })).toEqual(['code', '--wait']);
    expect(editorCommand({ EDITOR: 'nano' })).toEqual(['nano']);
    expect(editorCommand({ EDITOR: '  ' })).toEqual(['vi']);
    expect(editorCommand({})).toEqual(['vi']);
  });
});

describe('remove', () => {
  it('asks like patronictl: the name, "Yes I am aware", and the leader when there is one', () => {
    expect(removeQuestions('demo', 'n1').map((q) => q.answer)).toEqual(['demo', AWARE, 'n1']);
    expect(removeQuestions('demo', null).map((q) => q.answer)).toEqual(['demo', 'Yes I am aware']);
  });
});

describe('query', () => {
  const v = clusterView({ members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { state: 'running' }), member('n3')] });
  it('runs on the leader, a named member, or a standby (streaming first)', () => {
    expect(pickMember(v, undefined, 'leader').name).toBe('n1');
    expect(pickMember(v, 'n2', 'leader').name).toBe('n2');
    expect(pickMember(v, undefined, 'replica').name).toBe('n3');
    expect(() => pickMember(v, 'nosuch', 'leader')).toThrow(/nosuch is not a member/);
    expect(() => pickMember(clusterView({ leader: null }), undefined, 'leader')).toThrow(/no leader now/);
  });
  it('renders result sets as table, tsv and json', () => {
    const sets = [{ command: 'SELECT 2', fields: ['a', 'b'], rows: [{ a: '1', b: null }, { a: 'x\ty', b: 'z' }] }];
    expect(renderResults(sets, 'tsv')).toBe('a\tb\n1\t\nx\\ty\tz\n');
    expect(JSON.parse(renderResults(sets, 'json'))).toEqual([{ a: '1', b: null }, { a: 'x\ty', b: 'z' }]);
    expect(renderResults(sets, 'table')).toContain('(2 rows)');
    expect(renderResults([{ command: 'CREATE TABLE', fields: [], rows: [] }], 'table')).toBe('CREATE TABLE\n');
  });
});

describe('shell completion', () => {
  const run = (args: string[]) => new Promise<string>((resolve, reject) => {
    // One pghactl start: a second or two on a loaded machine; 20 s bounds a hang.
    execFile(process.execPath, [new URL('../../bin/pghactl.js', import.meta.url).pathname, ...args], { timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
  it('prints a completion script, and completes commands and a command\'s options', { timeout: 60_000 }, async () => {
    expect(await run(['completion'])).toContain('pghactl --get-yargs-completions');
    const commands = (await run(['--get-yargs-completions', 'pghactl', ''])).split('\n');
    expect(commands).toEqual(expect.arrayContaining(['list', 'query', 'remove', 'version', 'edit-config']));
    expect((await run(['--get-yargs-completions', 'pghactl', 'list', '--'])).split('\n')).toEqual(expect.arrayContaining(['--watch', '--W', '--format']));
  });
});
