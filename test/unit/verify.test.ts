// The pure parts of pghactl verify: chunk SQL, row diffs, the physical and logical rules that
// tell a proven difference from a write between the reads, xid widening, rate, exit codes.
import { describe, expect, it } from 'vitest';
import { classifyLogical, classifyPhysical, differingKeys, fullXid, keyLabel, parseSnapshot, rateDelay, toRows, type Entry, type RawRow, type XidFate } from '../../src/verify/compare.ts';
import { chunkWhere, checksumSql, nextBoundSql, quoteIdent, type TableInfo } from '../../src/verify/sql.ts';
import { exitCode, summarize, type SideReport } from '../../src/verify/report.ts';
import { busyProblem, selectTables, targetStandbys } from '../../src/cli/verify.ts';
import { clusterView, member, request } from '../support/observations.ts';

const col = (name: string, type = 'integer') => ({ name, type, generated: false });
const pkTable: TableInfo = { schema: 'app', name: 'Or"ders', pk: [col('tenant'), col('id', 'bigint')], columns: [col('tenant'), col('id', 'bigint'), col('v', 'text')], estRows: 0, bytes: 0 };
const noPk: TableInfo = { ...pkTable, name: 'log', pk: [] };

describe('chunk SQL', () => {
  it('quotes identifiers and passes bounds as typed parameters', () => {
    expect(quoteIdent('Or"ders')).toBe('"Or""ders"');
    const w = chunkWhere(pkTable, { lo: ['1', '10'], hi: ['2', '5'] });
    expect(w.sql).toBe('(t."tenant", t."id") > ($1::integer, $2::bigint) and (t."tenant", t."id") <= ($3::integer, $4::bigint)');
    expect(w.params).toEqual(['1', '10', '2', '5']);
    expect(chunkWhere(pkTable, { lo: null, hi: null })).toEqual({ sql: 'true', params: [] });
    expect(chunkWhere(noPk, { lo: ['1'], hi: ['2'] })).toEqual({ sql: 'true', params: [] });
  });
  it('the next bound is the chunk size-th key after lo, in key order', () => {
    const q = nextBoundSql(pkTable, ['3', '4'], 1000);
    expect(q.sql).toContain('from "app"."Or""ders" t where (t."tenant", t."id") > ($1::integer, $2::bigint) order by t."tenant", t."id" limit 1 offset 999');
  });
  it('a physical checksum covers xmin, a logical one does not', () => {
    expect(checksumSql(pkTable, { lo: null, hi: null }, true).sql).toContain("|| ':' || t.xmin::text");
    expect(checksumSql(pkTable, { lo: null, hi: null }, false).sql).not.toContain('xmin');
    expect(checksumSql(pkTable, { lo: null, hi: null }, false).sql).toContain('row(t."tenant", t."id", t."v")::text');
  });
});

const e = (hash: string, xmin = '100', xmaxes = ['0'], count = 1): Entry => ({ count, hash, xmin, xmaxes, text: hash });
const fates = (m: Record<string, XidFate>) => (x: string): XidFate => m[x] ?? 'recent';

describe('rows and keys', () => {
  it('groups rows by key and finds the keys that differ', () => {
    const raw: RawRow[] = [['[1]', 'a', '100', '0', '(1,a)'], ['h:7', 'h', '7', '0', '(x)'], ['h:7', 'h', '7', '0', '(x)']];
    const rows = toRows(raw);
    expect(rows.get('h:7')?.count).toBe(2);
    const other = toRows([['[1]', 'a', '101', '0', '(1,a)'], ['h:7', 'h', '7', '0', '(x)']]);
    expect(differingKeys(rows, other, true)).toEqual(['[1]', 'h:7']);
    expect(differingKeys(rows, other, false)).toEqual(['h:7']); // xmin does not count for a subscriber
  });
});

describe('physical rule: proven difference or a write between the reads', () => {
  const cases: Array<[string, Entry | undefined, Entry | undefined, Entry | undefined, Record<string, XidFate>, 'proven' | 'in-flux']> = [
    ['changed row, old version on the standby', e('a'), e('b'), e('a'), { 100: 'old-committed' }, 'proven'],
    ['standby shows a newer committed version (written after s1)', e('a'), e('b', '200'), e('b', '200'), { 200: 'recent' }, 'in-flux'],
    ['standby shows a version of an aborted transaction', e('a'), e('b', '300'), e('a'), { 300: 'aborted' }, 'proven'],
    ['standby shows a version the leader never assigned', undefined, e('b', '900'), undefined, { 900: 'future' }, 'proven'],
    ['extra row with an old xmin (deleted on the leader)', undefined, e('b'), undefined, { 100: 'old-committed' }, 'proven'],
    ['extra row inserted after s1 (then deleted before L2)', undefined, e('b', '200'), undefined, { 200: 'recent' }, 'in-flux'],
    ['missing row, unchanged on the leader', e('a'), undefined, e('a'), {}, 'proven'],
    ['missing row, row locked by a committed locker', e('a'), undefined, e('a', '100', ['150']), { 150: 'old-committed' }, 'proven'],
    ['missing row the leader deleted between the reads', e('a'), undefined, undefined, {}, 'in-flux'],
    ['missing row with a deleter still running on the leader', e('a'), undefined, e('a', '100', ['400']), { 400: 'recent' }, 'in-flux'],
    ['missing row rewritten on the leader (A-B-A: new xmin)', e('a'), undefined, e('a', '500'), {}, 'in-flux'],
    ['fewer copies of a row without a primary key', e('a', '100', ['0', '0'], 2), e('a', '100', ['0'], 1), e('a', '100', ['0', '0'], 2), {}, 'proven'],
    ['more copies of an old row without a primary key', e('a', '100', ['0'], 1), e('a', '100', ['0', '0'], 2), e('a'), { 100: 'old-committed' }, 'proven'],
  ];
  it.each(cases)('%s', (_, l1, s, l2, f, want) => {
    expect(classifyPhysical(l1, s, l2, fates(f))).toBe(want);
  });
});

describe('logical rule', () => {
  it('a candidate only when the leader is unchanged around the read', () => {
    expect(classifyLogical(e('a', '1'), e('a', '2'))).toBe('proven');
    expect(classifyLogical(e('a'), e('b'))).toBe('in-flux');
    expect(classifyLogical(undefined, undefined)).toBe('proven');
  });
});

describe('xids', () => {
  it('widens a 32-bit xid relative to the next full xid', () => {
    const next = (5n << 32n) + 1000n;
    expect(fullXid('999', next)).toBe((5n << 32n) + 999n);
    expect(fullXid('1000', next)).toBe(next); // not assigned yet: the future
    expect(fullXid(String(2 ** 32 - 10), next)).toBe((4n << 32n) + BigInt(2 ** 32 - 10)); // last epoch
    expect(fullXid('2', next)).toBeNull(); // frozen
    expect(parseSnapshot('748:752:748,750')).toEqual({ xmin: 748n, xmax: 752n });
  });
});

describe('rate, report and exit codes', () => {
  it('waits so that the rate is not exceeded', () => {
    expect(rateDelay(1000, 0, 0)).toBe(0);
    expect(rateDelay(1000, 500, 1000)).toBe(1000);
    expect(rateDelay(1000, 500, 3000)).toBe(0);
  });
  const side = (status: string | null, aborted?: string): SideReport => ({
    side: 'n2', kind: 'physical', database: 'postgres', ...(aborted ? { aborted } : {}),
    tables: [{ table: 'public.t', noPrimaryKey: false, rows: 10, bytes: 100, chunks: 1, problems: status === null ? [] : [{ bounds: { lo: null, hi: null }, status: status as 'different', rows: [] }] }],
  });
  it.each([
    ['all the same', [side(null)], 0],
    ['a difference', [side('different'), side('unsettled')], 3],
    ['a chunk not settled', [side('unsettled')], 4],
    ['a chunk that failed', [side('error')], 4],
    ['a side stopped early', [side(null, 'the leader changed')], 4],
  ] as const)('%s', (_, reports, code) => {
    const r = reports as unknown as SideReport[];
    expect(exitCode(r, summarize(r, 1))).toBe(code);
  });
  it('labels keys for people', () => {
    expect(keyLabel('[1,"a b"]')).toBe('1, a b');
    expect(keyLabel('0cc175b9c0f1b6a831c399e269772661:812')).toBe('row md5 0cc175b9c0f1b6a831c399e269772661');
  });
});

describe('when verify runs', () => {
  it('refuses during a switchover, a reinit, or without a running leader', () => {
    expect(busyProblem(clusterView(), null)).toBeNull();
    expect(busyProblem(clusterView({ failover: request() }), null)).toMatch(/switchover is pending/);
    expect(busyProblem(clusterView({ members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { state: 'cloning' })] }), null)).toMatch(/n2 is being reinitialized/);
    expect(busyProblem(clusterView({ leader: null }), null)).toMatch(/no leader/);
    expect(busyProblem(clusterView(), 'n3')).toMatch(/leader changed/);
    expect(busyProblem(clusterView({ config: { ...clusterView().config, pause: true } }), null)).toBeNull(); // paused is fine
  });
  it('compares running standbys only, by name or all', () => {
    expect(targetStandbys(clusterView(), []).map((m) => m.name)).toEqual(['n2', 'n3']);
    expect(() => targetStandbys(clusterView(), ['n1'])).toThrow(/is the leader/);
    expect(() => targetStandbys(clusterView({ members: [member('n1', { role: 'primary', state: 'running' }), member('n2', { state: 'stopped' })] }), [])).toThrow(/not a running standby/);
  });
  it('narrows tables by name, schema.name and schema', () => {
    const all = [pkTable, noPk, { ...noPk, schema: 'public', name: 't' }];
    expect(selectTables(all, ['t'], []).map((t) => t.name)).toEqual(['t']);
    expect(selectTables(all, ['app.log'], []).map((t) => t.name)).toEqual(['log']);
    expect(selectTables(all, [], ['app']).length).toBe(2);
  });
});

describe('the text report', () => {
  it('names the table, the key range, each row on both sides, and sums up', async () => {
    const { renderText } = await import('../../src/verify/report.ts');
    const r: SideReport[] = [{
      side: 'n3', kind: 'physical', database: 'app',
      tables: [
        { table: 'public.t', noPrimaryKey: false, rows: 100, bytes: 4096, chunks: 2, problems: [{ bounds: { lo: ['50'], hi: null }, status: 'different', rows: [{ key: '[13]', leader: '(13,a)', other: null, leaderCount: 1, otherCount: 0 }] }] },
        { table: 'public.log', noPrimaryKey: true, rows: 5, bytes: 100, chunks: 1, problems: [] },
      ],
    }];
    const text = renderText(r, summarize(r, 2));
    expect(text).toContain('n3 (physical standby), database app: 2 tables');
    expect(text).toContain('warning: public.log has no primary key');
    expect(text).toContain('public.t keys (50 .. +inf]: DIFFERENT');
    expect(text).toContain('    13: leader (13,a) | n3 absent');
    expect(text).toMatch(/summary: 2 tables, 105 rows, .* \(53 rows\/s\); 1 tables differ \(1 chunks, 1 rows\); 0 chunks not checked/);
  });
});
