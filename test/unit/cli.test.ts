// pghactl: rendering of `list`, exit codes, the confirmation flag of every disruptive command,
// help text for every option, the verdicts of the waiting commands, and the CI summary line.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { confirm, DISRUPTIVE_COMMANDS, FORCE_FLAG } from '../../src/cli/confirm.ts';
import { buildListRows, renderList } from '../../src/cli/format.ts';
import { handoverSentence } from '../../src/cli/handover.ts';
import { backInService, handoverTimeoutMs, judgeHandover } from '../../src/cli/wait.ts';
import { mergeReports, summaryLine } from '../../scripts/summary.mjs';
import { clusterView, dyn, member, request, WALL } from '../support/observations.ts';

const view = clusterView({
  members: [member('n3', { lsn: 1000 - 2 * 1024 * 1024 }), member('n1', { role: 'primary', state: 'running', lsn: 1000 }), member('n2')],
});

describe('pghactl list rendering', () => {
  it('puts the leader first and computes lag in MB', () => {
    const rows = buildListRows(view);
    expect(rows.map((r) => `${r.member}:${r.role}`)).toEqual(['n1:Leader', 'n2:Replica', 'n3:Replica']);
    expect(rows[0]?.lag_mb).toBeNull();
    expect(rows[2]?.lag_mb).toBe(2);
  });
  it('rounds lag to 0.01 MB in the table and keeps it exact in JSON', () => {
    const v = clusterView({ lastLeaderLsn: 10_000_000, members: [member('n1', { role: 'primary', state: 'running', lsn: 10_000_000 }), member('n2', { lsn: 10_000_000 - 1234567 })] });
    expect(renderList('demo', v, buildListRows(v), 'table', false)).toMatch(/│ 1\.18 +│/);
    expect((JSON.parse(renderList('demo', v, buildListRows(v), 'json', false)) as Array<{ lag_mb: number }>)[1]?.lag_mb).toBe(1234567 / 1048576);
  });
  it('renders JSON with stable keys and a pause banner in tables', () => {
    const json = JSON.parse(renderList('demo', view, buildListRows(view), 'json', false)) as object[];
    expect(Object.keys(json[0] ?? {})).toEqual(['member', 'host', 'role', 'state', 'tl', 'lag_mb', 'tags', 'pending_restart']);
    const paused = clusterView({ config: dyn({ pause: true }) });
    expect(renderList('demo', paused, buildListRows(paused), 'table', false)).toContain('Maintenance mode: on');
  });
  it('names quorum standbys and the quorum in quorum mode, sync standbys in on mode', () => {
    const q = clusterView({ config: dyn({ synchronous_mode: 'quorum' }), sync: { leader: 'n1', members: ['n2', 'n3'], acks: 1 } });
    expect(buildListRows(q).map((r) => `${r.member}:${r.role}`)).toEqual(['n1:Leader', 'n2:Quorum Standby', 'n3:Quorum Standby']);
    expect(renderList('demo', q, buildListRows(q), 'table', false)).toContain('Quorum: every acknowledged commit is on at least 1 of n2, n3');
    const on = clusterView({ config: dyn({ synchronous_mode: 'on' }), sync: { leader: 'n1', members: ['n2'] } });
    expect(buildListRows(on).map((r) => `${r.member}:${r.role}`)).toEqual(['n1:Leader', 'n2:Sync Standby', 'n3:Replica']);
    const gone = clusterView({ config: dyn({ synchronous_mode: 'quorum' }), sync: { leader: 'n1', members: [], acks: 0 } });
    expect(renderList('demo', gone, buildListRows(gone), 'table', false)).toContain('replication is asynchronous');
  });
});

function pghactl(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [new URL('../../bin/pghactl.js', import.meta.url).pathname, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

describe('pghactl pending requests (topology: upstream.test.ts)', () => {
  it('shows a scheduled switchover in list', () => {
    const v = clusterView({ failover: request({ candidate: 'n2', scheduledAt: WALL }) });
    expect(renderList('demo', v, buildListRows(v), 'table', false)).toContain(`Switchover scheduled at ${new Date(WALL).toISOString()}: n1 -> n2`);
  });
});

describe('pghactl exit codes', () => {
  it('exits 2 on a usage error', async () => {
    expect((await pghactl(['list', '--no-such-option'])).code).toBe(2);
    expect((await pghactl(['list'])).code).toBe(2); // neither --config nor --etcd/--scope
  });
  it('exits 0 for --help and lists the commands', async () => {
    const r = await pghactl(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('list');
  });
  it('exits 1 with a PGHA_DCS code when etcd cannot be reached', async () => {
    const r = await pghactl(['--etcd', '127.0.0.1:1', '--scope', 'x', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PGHA_DCS_(UNAVAILABLE|TIMEOUT)/);
  });
});

describe('CI summary line', () => {
  it('counts passes, failures, skips and files that failed to load', () => {
    expect(summaryLine({ numPassedTests: 3, numFailedTests: 0, numPendingTests: 0, testResults: [] })).toBe('3 passed, 0 failed');
    expect(summaryLine({ numPassedTests: 3, numFailedTests: 1, numPendingTests: 2, testResults: [{ status: 'failed', assertionResults: [] }] })).toBe('3 passed, 2 failed, 2 skipped');
    // A beforeAll that threw: every test of the file skipped, the file failed.
    expect(summaryLine({ numPassedTests: 3, numFailedTests: 0, numPendingTests: 2, testResults: [{ status: 'failed', assertionResults: [{ status: 'skipped' }, { status: 'skipped' }] }] })).toBe('3 passed, 1 failed, 2 skipped');
    expect(summaryLine(mergeReports([{ numPassedTests: 2, numFailedTests: 0, testResults: [] }, { numPassedTests: 5, numFailedTests: 1, testResults: [] }]))).toBe('7 passed, 1 failed');
  });
});

/** Run child processes three at a time: the machine is shared, and each pghactl has 20 s. */
async function inBatches<T>(jobs: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += 3) out.push(...(await Promise.all(jobs.slice(i, i + 3).map((j) => j()))));
  return out;
}

/** Arguments that let each disruptive command get past its own usage checks. */
const SAMPLE_ARGS: Record<(typeof DISRUPTIVE_COMMANDS)[number], string[]> = {
  switchover: ['switchover'], failover: ['failover', '--candidate', 'n2'], restart: ['restart', 'n2'], reinit: ['reinit', 'n2'],
  drill: ['drill', '--kind', 'kill-primary'], remove: ['remove', 'x'], 'edit-config': ['edit-config'],
  verify: ['verify', '--repair'], restore: ['restore', '--latest'],
};

describe('pghactl confirmation flag', () => {
  // Child processes on a shared 2-core machine: 90 s for a dozen of them.
  it('names one flag in the refusal, and every disruptive command accepts it and its alias', { timeout: 90_000 }, async () => {
    const stdin = process.stdin.isTTY;
    Object.defineProperty(process.stdin, 'isTTY', { value: false, configurable: true });
    let refusal = '';
    try { await confirm('Do it?', undefined); } catch (err) { refusal = (err as Error).message; } finally {
      Object.defineProperty(process.stdin, 'isTTY', { value: stdin, configurable: true });
    }
    const named = /Not confirmed: add (--[a-z-]+) to run without a terminal/.exec(refusal)?.[1];
    expect(named).toBe(FORCE_FLAG);
    // The flag parses for every command: each gets as far as etcd (exit 1, PGHA_DCS_...), or for
    // drill to its need of -c (exit 2 with PGHA_CLI_USAGE), never to "Unknown argument".
    const runs = await inBatches(DISRUPTIVE_COMMANDS.flatMap((c) => [named!, '--yes'].map((flag) => async () => ({ c, flag, r: await pghactl(['--etcd', '127.0.0.1:1', '--scope', 'x', ...SAMPLE_ARGS[c], flag]) }))));
    for (const { c, flag, r } of runs) {
      expect(r.stderr, `${c} ${flag}`).not.toMatch(/Unknown argument/);
      expect(r.stderr, `${c} ${flag}`).toMatch(c === 'drill' ? /PGHA_CLI_USAGE: drill needs -c\/--config/ : /PGHA_DCS_(UNAVAILABLE|TIMEOUT)/);
    }
  });
});

describe('pghactl --help', () => {
  it('describes every option of every command and shows an example for each disruptive command', { timeout: 90_000 }, async () => {
    const top = await pghactl(['--help']);
    const commands = [...top.stdout.matchAll(/^ {2}pghactl ([a-z-]+)/gm)].map((m) => m[1]!);
    expect(commands).toEqual(expect.arrayContaining([...DISRUPTIVE_COMMANDS, 'list', 'availability', 'history']));
    const helps = await inBatches(commands.map((c) => async () => ({ c, out: (await pghactl([c, '--help'])).stdout })));
    for (const { c, out } of helps) {
      // An option line is its flags, then the description; a line that goes straight to the
      // [type] column has none.
      const bare = out.split('\n').filter((l) => /^ {2}(-\w, |    )--[\w-]+(, --[\w-]+)?\s+\[/.test(l) || /^ {2}[a-z]+\s+\[/.test(l));
      expect(bare, `${c} --help`).toEqual([]);
      if ((DISRUPTIVE_COMMANDS as readonly string[]).includes(c)) expect(out, `${c} --help`).toMatch(new RegExp(`Examples:\\n {2}pghactl [\\s\\S]*${c}[\\s\\S]*--force`));
    }
  });
  it('names in its messages and help only flags that some command declares', { timeout: 90_000 }, async () => {
    const top = await pghactl(['--help']);
    const commands = [...top.stdout.matchAll(/^ {2}pghactl ([a-z-]+)/gm)].map((m) => m[1]!);
    const declared = new Set<string>();
    for (const { out } of await inBatches(commands.map((c) => async () => ({ out: (await pghactl([c, '--help'])).stdout })))) {
      for (const m of out.matchAll(/^ {2}(?:-\w, | {4})(--[\w-]+)(?:, (--[\w-]+))?/gm)) {
        // yargs also takes --no-<option> (boolean negation).
        for (const f of [m[1]!, m[2]].filter((x) => x !== undefined)) declared.add(f).add(`--no-${f.slice(2)}`);
      }
    }
    // Every "--flag" written in pghactl's sources (refusals, advice, help text and examples).
    const dirs = ['src/cli', 'src/ops', 'src/availability'].map((d) => new URL(`../../${d}/`, import.meta.url));
    const mentioned = new Set<string>();
    for (const dir of dirs) {
      for (const f of readdirSync(dir)) for (const m of readFileSync(new URL(f, dir), 'utf8').matchAll(/(?<![\w-])--[a-z][a-z-]+/g)) mentioned.add(m[0]);
    }
    expect([...mentioned].filter((f) => !declared.has(f))).toEqual([]);
  });

  it('says where to look after a usage error', { timeout: 20_000 }, async () => {
    const r = await pghactl(['switchover', '--candiate', 'n2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Run pghactl switchover --help for the options.');
    // The value of -c is no command (seen in the demo: "Run pghactl /var/lib/.../node1.yml --help").
    const c = await pghactl(['-c', '/nonexistent/node1.yml', 'reload', 'node3', '--forse']);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('Run pghactl reload --help for the options.');
  });
});

describe('pghactl waiting verdicts', () => {
  const seen = (leader: string | null, primaryOk = true, pending = true) => ({ leader, primaryOk, pending });
  it('a handover is done when the candidate leads and answers /primary, and failed when the request is gone while another leads', () => {
    expect(judgeHandover('n1', 'n2', seen('n1'))).toBeNull(); // not yet
    expect(judgeHandover('n1', 'n2', seen(null, false))).toBeNull(); // key free: in progress
    expect(judgeHandover('n1', 'n2', seen('n2', false))).toBeNull(); // key taken, not serving yet
    expect(judgeHandover('n1', 'n2', seen('n2', true, false))).toEqual({ done: true, leader: 'n2' });
    expect(judgeHandover('n1', 'n2', seen('n1', true, false))).toMatchObject({ done: false, failed: expect.stringMatching(/n1 still leads/) });
    expect(judgeHandover('n1', 'n2', seen('n3', true, false))).toMatchObject({ done: false, failed: 'n3 took over instead of n2' });
    expect(judgeHandover('n1', null, seen('n3', true, false))).toEqual({ done: true, leader: 'n3' });
    expect(judgeHandover(null, 'n2', seen('n2'))).toEqual({ done: true, leader: 'n2' });
  });
  it('a member is back when a snapshot newer than the operation shows it in its role', () => {
    expect(backInService({ role: 'replica', state: 'streaming', age_ms: 100 }, 500, false)).toBe(true);
    expect(backInService({ role: 'replica', state: 'streaming', age_ms: 600 }, 500, false)).toBe(false); // older than the restart
    expect(backInService({ role: 'replica', state: 'running', age_ms: 100 }, 500, false)).toBe(false);
    expect(backInService({ role: 'primary', state: 'running', age_ms: 100 }, 500, true)).toBe(true);
    expect(backInService({ role: 'unknown', state: 'stopped', age_ms: null }, 500, false)).toBe(false);
    expect(backInService(null, 500, true)).toBe(false);
  });
  it('waits long enough for a stale request to be dropped and the key to settle', () => {
    expect(handoverTimeoutMs(dyn({ ttl: 3, loop_wait: 0.5 }))).toBe(67_000);
    expect(handoverSentence('switchover', { leader: 'n2', previous: 'n1', seconds: 0.2830953460000001 })).toBe('switchover done: n2 is the leader (was n1); the handover took 283 ms');
  });
});
