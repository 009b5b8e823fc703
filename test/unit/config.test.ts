// Configuration loading: defaults, every bad field named with its file, YAML syntax errors with
// their line, the split-brain timing rule, the shipped examples, and docs that cover every key.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { formatZodIssues, loadConfig, parseConfig, parseDynamicConfig } from '../../src/config/load.ts';
import { dynamicConfigSchema, nodeConfigSchema } from '../../src/config/schema.ts';
import { PgHaError, type ErrorCode } from '../../src/errors.ts';

const FILE = '/etc/pgha/node1.yml';
const repoFile = (rel: string) => new URL(`../../${rel}`, import.meta.url).pathname;
const base = `
scope: demo
name: node1
postgresql:
  data_dir: /var/lib/pgha/data
  connect_address: 10.0.0.11:5432
  authentication:
    superuser: {username: postgres, password: s3cret-su}
    replication: {username: replicator, password: s3cret-repl}
`;
/** The published REST address is required with the default listen 0.0.0.0:8008. */
const minimal = `${base}restapi:\n  connect_address: 10.0.0.11:8008\n`;

function errorOf(run: () => unknown): PgHaError {
  try {
    run();
  } catch (err) {
    if (err instanceof PgHaError) return err;
    throw err;
  }
  throw new Error('expected an error');
}
const parseError = (text: string) => errorOf(() => parseConfig(text, FILE));

describe('parseConfig', () => {
  it('fills every default from a minimal file', () => {
    expect(parseConfig(minimal, FILE)).toEqual({
      scope: 'demo',
      name: 'node1',
      namespace: '/service',
      log: { level: 'info', journald_prefix: false },
      restapi: { listen: '0.0.0.0:8008', connect_address: '10.0.0.11:8008', verify_client: 'none', allowlist_include_members: false },
      ctl: { insecure: false },
      etcd: { hosts: ['127.0.0.1:2379'], protocol: 'http', v2_leader_mirror: false },
      bootstrap: {
        dcs: {
          ttl: 2, loop_wait: 0.5, retry_timeout: 0.75, fence_margin: 0.5, maximum_lag_on_failover: 1048576, pause: false, failsafe_mode: true, synchronous_mode: 'off', synchronous_node_count: 1, synchronous_mode_strict: false, member_slots_ttl: 1800, permanent_slots: {}, logical: { publications: {} },
          postgresql: { use_pg_rewind: true, use_slots: true, parameters: {} },
        },
        method: 'initdb',
        initdb: [{ encoding: 'UTF8' }, 'data-checksums'],
        users: {},
      },
      postgresql: {
        listen: '127.0.0.1:5432',
        connect_address: '10.0.0.11:5432',
        data_dir: '/var/lib/pgha/data',
        bin_dir: '/usr/lib/postgresql/15/bin',
        socket_dir: '/var/run/postgresql',
        lease_witness: false,
        authentication: {
          superuser: { username: 'postgres', password: 's3cret-su' },
          replication: { username: 'replicator', password: 's3cret-repl' },
        },
        parameters: {},
        pg_ctl_timeout: 60,
        callbacks: {},
        callback_timeout: 60,
        pre_promote_timeout: 10,
        before_stop_timeout: 10,
      },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, nostream: false, failover_priority: 1 },
      watchdog: { mode: 'automatic', device: '/dev/watchdog', safety_margin: 0.5 },
      pgbouncer: { poolers: [], pause_timeout: 2, call_timeout: 1, resume_timeout: 15 },
    });
  });

  it.each([
    ['a relative data_dir', minimal.replace('/var/lib/pgha/data', 'data'), 'postgresql.data_dir: an absolute path'],
    ['a listen address without port', `${base}restapi:\n  listen: localhost\n`, 'restapi.listen: expected host:port'],
    ['a port out of range', `${base}restapi:\n  listen: 1.2.3.4:70000\n`, 'restapi.listen: port must be between 1 and 65535'],
    ['a missing required key', minimal.replace('name: node1\n', ''), 'name: required (expected string)'],
    ['a missing superuser', minimal.replace(/ {4}superuser: .*\n/, ''), 'postgresql.authentication.superuser: required'],
    ['an unknown top-level key', `${minimal}tagz: {}\n`, 'tagz: unknown key'],
    ['an unknown nested key', `${minimal}tags:\n  nofailure: true\n`, 'tags.nofailure: unknown key'],
    ['an unknown key in bootstrap.dcs', `${minimal}bootstrap:\n  dcs:\n    ttl_seconds: 3\n`, 'bootstrap.dcs.ttl_seconds: unknown key'],
    ['a wrong type', `${minimal}tags:\n  nofailover: "yes"\n`, 'tags.nofailover: Invalid input: expected boolean, received string'],
    ['a bad enum value', `${minimal}log:\n  level: verbose\n`, 'log.level: Invalid option'],
    ['a bad host in an etcd host string', `${minimal}etcd:\n  hosts: "a:1, b"\n`, 'etcd.hosts: "b" is not host:port'],
    ['a bad host in an etcd host list', `${minimal}etcd:\n  hosts: ["a:1", "b"]\n`, 'etcd.hosts[1]: expected host:port'],
    ['etcd hosts of the wrong type', `${minimal}etcd:\n  hosts: 5\n`, 'etcd.hosts: expected array or string, received number'],
    ['an etcd username without password', `${minimal}etcd:\n  username: u\n`, 'etcd.password: username and password go together'],
    ['an etcd password without username', `${minimal}etcd:\n  password: p\n`, 'etcd.password: username and password go together'],
    ['a REST username without password', `${base}restapi:\n  authentication: {username: admin}\n`, 'restapi.authentication.password: required'],
    ['a role name with a quote', minimal.replace('username: replicator', 'username: "repl\'x"'), 'postgresql.authentication.replication.username: a plain role name'],
    ['a bad initdb option', `${minimal}bootstrap:\n  initdb: ["--data-checksums"]\n`, 'bootstrap.initdb[0]: an initdb long option without dashes'],
    ['a bad key in an initdb map', `${minimal}bootstrap:\n  initdb: [{Encoding: UTF8}]\n`, 'bootstrap.initdb[0].Encoding: bad key'],
    ['a null PostgreSQL parameter', `${minimal}bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        auto_explain.log_min_duration: null\n`,
      'bootstrap.dcs.postgresql.parameters["auto_explain.log_min_duration"]: expected string or number or boolean, received null'],
    ['a TTL below etcd\'s minimum', `${minimal}bootstrap:\n  dcs: {ttl: 1, loop_wait: 0.1, retry_timeout: 0.2, fence_margin: 0.3}\n`, 'bootstrap.dcs.ttl: Too small'],
    // Finding 1: a data_dir that is a system directory (initdb writes into it; a failed
    // bootstrap, a reinit or a failed rewind empties it).
    ...['/', '/var', '/var/lib', '/tmp', '/home', '/usr/local', '/var/lib/postgresql'].map((d) => [
      `data_dir ${d}`, minimal.replace('/var/lib/pgha/data', d), `postgresql.data_dir: ${d} is a system directory`,
    ] as [string, string, string]),
    ['a data_dir with ..', minimal.replace('/var/lib/pgha/data', '/srv/pg/../data'), 'postgresql.data_dir: not a normalized path (did you mean /srv/data?)'],
    // Finding 12: PostgreSQL keeps 63 bytes of application_name and of a slot name.
    ['a name longer than 63 bytes', minimal.replace('name: node1', `name: ${'n'.repeat(64)}`), 'name: at most 63 characters'],
    // Finding 2: the published address must reach this host from the others.
    ['a wildcard REST listen without connect_address', base, 'restapi.connect_address: restapi.listen 0.0.0.0:8008 listens on every interface'],
    ['a wildcard PostgreSQL listen without connect_address', `${minimal.replace('  connect_address: 10.0.0.11:5432\n', '  listen: 0.0.0.0:5432\n')}`, 'postgresql.connect_address: postgresql.listen 0.0.0.0:5432 listens on every interface'],
    ['a loopback REST address with etcd on other hosts', `${base}restapi:\n  connect_address: 127.0.0.1:8008\netcd:\n  hosts: [10.0.0.21:2379]\n`,
      'restapi.connect_address: restapi.connect_address 127.0.0.1:8008 is a loopback address, but etcd.hosts are not all on this host'],
    ['a loopback PostgreSQL address with etcd on other hosts', `${minimal.replace('  connect_address: 10.0.0.11:5432\n', '')}etcd:\n  hosts: [etcd1:2379]\n`,
      'postgresql.connect_address: postgresql.listen 127.0.0.1:5432 is a loopback address'],
  ])('names the file and the field: %s', (_, text, fragment) => {
    const err = parseError(text);
    expect(err.code).toBe('PGHA_CONFIG_INVALID');
    expect(err.message.split('\n')).toContainEqual(expect.stringContaining(`${FILE}: ${fragment}`));
  });

  it('accepts loopback addresses when etcd is on this host too (single-host test and demo setups)', () => {
    const c = parseConfig(`${base}restapi:\n  listen: 127.0.0.1:8011\netcd:\n  hosts: [127.0.0.1:2379, localhost:2380]\n`.replace('10.0.0.11:5432', '127.0.0.1:5441'), FILE);
    expect(c.restapi.listen).toBe('127.0.0.1:8011');
  });

  it('reports every bad field, one line each, not only the first', () => {
    const err = parseError(`${base}restapi:\n  listen: nope\ntags:\n  failover_priority: -1\n  x: 1\n  y: 2\n`);
    const paths = err.message.split('\n').map((l) => l.split(': ')[1]);
    expect([...new Set(paths)]).toEqual(['restapi.listen', 'tags.failover_priority', 'tags.x', 'tags.y']);
  });

  it.each([
    ['an unclosed bracket', 'scope: demo\nname: [node1\npassword: hunter2\n', /^\/etc\/pgha\/node1\.yml: line \d+, column \d+: /],
    ['a duplicate key', 'scope: demo\nname: a\nname: b\n', /^\/etc\/pgha\/node1\.yml: line 3, column 1: Map keys must be unique/],
    ['a tab as indentation', 'scope: demo\npostgresql:\n\tdata_dir: /x\n', /^\/etc\/pgha\/node1\.yml: line 3, column 1: Tabs are not allowed/],
    ['two documents', 'scope: a\n---\nscope: b\n', /^\/etc\/pgha\/node1\.yml: line 2, column 1: Source contains multiple documents/],
  ])('gives the line of a YAML syntax error: %s', (_, text, pattern) => {
    const err = parseError(text);
    expect(err.code).toBe('PGHA_CONFIG_PARSE');
    expect(err.message).toMatch(pattern);
    expect(err.message).not.toContain('hunter2'); // the offending line is never quoted
  });

  it('never quotes a password in a validation error', () => {
    const err = parseError(minimal.replace('data_dir: /var/lib/pgha/data', 'data_dir: rel').replace('password: s3cret-su', 'password: 5'));
    expect(err.message).toContain('postgresql.authentication.superuser.password');
    expect(err.message).not.toMatch(/s3cret/);
  });

  it('calls an empty file empty', () => {
    expect(parseError('# nothing but a comment\n').message).toBe(`${FILE}: the file is empty`);
  });

  it('refuses timing that breaks the split-brain guard with PGHA_CONFIG_UNSAFE', () => {
    const err = parseError(`${minimal}bootstrap:\n  dcs:\n    ttl: 2\n    loop_wait: 1\n`);
    expect(err.code).toBe('PGHA_CONFIG_UNSAFE');
    expect(err.message).toBe(`${FILE}: bootstrap.dcs.ttl: unsafe timing: loop_wait (1) + retry_timeout (0.75) + fence_margin (0.5) must not exceed ttl (2); raise ttl or lower the others`);
  });

  it('refuses a TTL of 2 with the old ttl-3 timing (retry_timeout 1, fence_margin 0.75)', () => {
    const err = parseError(`${minimal}bootstrap:\n  dcs:\n    ttl: 2\n    retry_timeout: 1\n    fence_margin: 0.75\n`);
    expect(err.code).toBe('PGHA_CONFIG_UNSAFE');
    expect(err.message).toContain('loop_wait (0.5) + retry_timeout (1) + fence_margin (0.75) must not exceed ttl (2)');
  });

  it('is INVALID, listing the timing problem too, when other fields are also bad', () => {
    const err = parseError(`${minimal}bootstrap:\n  dcs:\n    ttl: 2\n    loop_wait: 1\n    foo: 1\n`);
    expect(err.code).toBe('PGHA_CONFIG_INVALID');
    expect(err.message).toContain(`${FILE}: bootstrap.dcs.foo: unknown key`);
    expect(err.message).toContain(`${FILE}: bootstrap.dcs.ttl: unsafe timing`);
  });

  it.each([
    ['a comma-separated string', '"10.0.0.1:2379, 10.0.0.2:2379,"'],
    ['a list', '[10.0.0.1:2379, 10.0.0.2:2379]'],
  ])('accepts etcd hosts as %s', (_, hosts) => {
    expect(parseConfig(`${minimal}etcd:\n  hosts: ${hosts}\n`, FILE).etcd.hosts).toEqual(['10.0.0.1:2379', '10.0.0.2:2379']);
  });
});

describe('loadConfig', () => {
  it('reports an unreadable file with its path and the reason', async () => {
    const err = await loadConfig('/nonexistent/pgha.yml').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgHaError);
    expect(err).toMatchObject({ code: 'PGHA_CONFIG_READ', message: '/nonexistent/pgha.yml: cannot read: ENOENT: no such file or directory' });
  });

  it.each([1, 2, 3])('parses the demo config node%i.yml', async (i) => {
    const c = await loadConfig(repoFile(`config/node${i}.yml`));
    expect(c).toMatchObject({
      scope: 'demo', name: `node${i}`,
      restapi: { listen: `127.0.0.1:${8010 + i}`, authentication: { username: 'admin' } },
      etcd: { hosts: ['127.0.0.1:2379'] },
      postgresql: { listen: `127.0.0.1:${5440 + i}`, data_dir: `/var/lib/pgha/demo/node${i}`, socket_dir: '/var/run/postgresql' },
    });
    expect(c.postgresql.authentication.rewind?.username).toBe('rewinder');
    expect(c.bootstrap.pg_hba?.every((l) => l.endsWith(' scram-sha-256'))).toBe(true);
  });

  it('parses the commented production example', async () => {
    const c = await loadConfig(repoFile('config/pgha.yml.example'));
    expect(c.scope).toBe('main');
    expect(c.bootstrap.dcs).toEqual(dynamicConfigSchema.parse({}));
  });
});

describe('parseDynamicConfig and formatZodIssues', () => {
  it('returns the defaults for an empty object', () => {
    expect(parseDynamicConfig({}, 'etcd /config')).toMatchObject({ ttl: 2, loop_wait: 0.5, retry_timeout: 0.75, fence_margin: 0.5 });
  });

  it.each<[string, unknown, ErrorCode, string]>([
    ['a wrong type', { ttl: 'x' }, 'PGHA_CONFIG_INVALID', 'request body: ttl: Invalid input: expected number, received string'],
    ['an unknown key', { tll: 3 }, 'PGHA_CONFIG_INVALID', 'request body: tll: unknown key'],
    ['unsafe timing', { ttl: 2, retry_timeout: 1.5 }, 'PGHA_CONFIG_UNSAFE', 'request body: ttl: unsafe timing'],
    ['not an object', 'ttl=3', 'PGHA_CONFIG_INVALID', 'request body: (top level): Invalid input: expected object, received string'],
  ])('names the source for %s', (_, value, code, start) => {
    const err = errorOf(() => parseDynamicConfig(value, 'request body'));
    expect(err.code).toBe(code);
    expect(err.message.startsWith(start)).toBe(true);
  });

  it('takes logical permanent slots with plugin and database, and needs wal_level logical and hot_standby_feedback', () => {
    const params = { wal_level: 'logical', hot_standby_feedback: 'on' };
    const c = parseDynamicConfig({ permanent_slots: { cdc: { type: 'logical', plugin: 'pgoutput', database: 'app' } }, postgresql: { parameters: params } }, 'x');
    expect(c.permanent_slots).toEqual({ cdc: { type: 'logical', plugin: 'pgoutput', database: 'app' } });
    expect(() => parseDynamicConfig({ permanent_slots: { cdc: { type: 'logical' } } }, 'request body')).toThrow(/permanent_slots\.cdc\.plugin/);
    expect(() => parseDynamicConfig({ permanent_slots: { cdc: { type: 'logical', plugin: '../x', database: 'app' } }, postgresql: { parameters: params } }, 'b')).toThrow(/permanent_slots\.cdc\.plugin: plugin: letters/);
    expect(() => parseDynamicConfig({ permanent_slots: { cdc: { type: 'logical', plugin: 'pgoutput', database: 'app' } } }, 'b')).toThrow(/wal_level: logical slots and publications need/);
    expect(() => parseDynamicConfig({ permanent_slots: { cdc: { type: 'logical', plugin: 'pgoutput', database: 'app' } }, postgresql: { parameters: { wal_level: 'logical' } } }, 'b')).toThrow(/hot_standby_feedback: logical permanent slots need/);
    expect(parseDynamicConfig({ permanent_slots: { archiver: { type: 'physical' } } }, 'x').permanent_slots).toEqual({ archiver: { type: 'physical' } });
  });

  it('takes publications of named tables or all tables, not both', () => {
    const parameters = { wal_level: 'logical' };
    const c = parseDynamicConfig({ logical: { publications: { p1: { database: 'app', tables: ['orders', 'sales.items'] }, p2: { database: 'app', all_tables: true } } }, postgresql: { parameters } }, 'x');
    expect(c.logical.publications['p1']).toEqual({ database: 'app', all_tables: false, tables: ['orders', 'sales.items'] });
    expect(() => parseDynamicConfig({ logical: { publications: { p: { database: 'app' } } }, postgresql: { parameters } }, 'b')).toThrow(/name its tables, or set all_tables/);
    expect(() => parseDynamicConfig({ logical: { publications: { p: { database: 'app', all_tables: true, tables: ['t'] } } }, postgresql: { parameters } }, 'b')).toThrow(/not both/);
    expect(() => parseDynamicConfig({ logical: { publications: { p: { database: 'app', tables: ['t; drop'] } } }, postgresql: { parameters } }, 'b')).toThrow(/a table: name or schema.name/);
  });

  // Issue 10 finding 4: values that would stop every member from writing its config or starting.
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a name with a space', { 'bad name': 1 }, /postgresql\.parameters\["bad name"\]: not a parameter name/],
    ['include_dir', { include_dir: 'conf.d' }, /postgresql\.parameters\.include_dir: include directives are refused/],
    ['wal_level minimal', { wal_level: 'minimal' }, /postgresql\.parameters\.wal_level: must be replica or logical/],
    ['max_wal_senders 0', { max_wal_senders: 0 }, /postgresql\.parameters\.max_wal_senders: must be an integer of at least 3/],
    ['hot_standby off', { hot_standby: false }, /hot_standby: must be on/],
  ])('refuses %s in postgresql.parameters, in etcd and in the node file', (_, parameters, why) => {
    expect(() => parseDynamicConfig({ postgresql: { parameters } }, 'request body')).toThrow(why);
    expect(parseError(`${base}  parameters: ${JSON.stringify(parameters)}\nrestapi:\n  connect_address: 10.0.0.11:8008\n`).message).toMatch(why);
  });

  it('formats issues from any zod parse, one line each', () => {
    const r = nodeConfigSchema.safeParse({ scope: 'a b', name: 'n', postgresql: { data_dir: '/srv/d', authentication: {} }, bootstrap: { users: { 'bad-name': { password: 'p' } } } });
    expect(r.success).toBe(false);
    expect(formatZodIssues(r.error?.issues ?? [], 'x.yml').split('\n')).toEqual([
      'x.yml: scope: letters, digits, _ . - only',
      'x.yml: bootstrap.users.bad-name: bad key: Invalid string: must match pattern /^[A-Za-z_][A-Za-z0-9_]*$/',
      'x.yml: postgresql.authentication.superuser: required (expected object)',
      'x.yml: postgresql.authentication.replication: required (expected object)',
    ]);
  });
});

describe('documentation covers every key', () => {
  type Def = { type: string; shape?: Record<string, unknown>; innerType?: unknown; in?: unknown };
  const def = (s: unknown) => (s as { _zod: { def: Def } })._zod.def;
  /** Strip default/prefault/optional wrappers and transforms down to the schema that has the shape. */
  const unwrap = (s: unknown): unknown => {
    const d = def(s);
    if (d.innerType !== undefined) return unwrap(d.innerType);
    return d.type === 'pipe' ? unwrap(d.in) : s;
  };
  /** Dotted paths of every leaf key; a role ({username, password} and its TLS keys) counts as one leaf. */
  const keyPaths = (s: unknown, prefix = ''): string[] => {
    const shape = def(unwrap(s)).shape;
    if (shape === undefined) return [prefix];
    const keys = Object.keys(shape);
    const role = new Set(['username', 'password', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslcrl', 'channel_binding']);
    if (prefix !== '' && keys.includes('username') && keys.every((k) => role.has(k))) return [prefix];
    return keys.flatMap((k) => keyPaths(shape[k], prefix === '' ? k : `${prefix}.${k}`));
  };
  const all = keyPaths(nodeConfigSchema);
  const doc = readFileSync(repoFile('docs/configuration.md'), 'utf8');
  const example = readFileSync(repoFile('config/pgha.yml.example'), 'utf8');

  it.each(all)('docs/configuration.md documents %s', (path) => {
    const inDoc = path.startsWith('bootstrap.dcs.') ? path.slice('bootstrap.dcs.'.length) : path;
    expect(doc).toContain(`| \`${inDoc}\` |`);
  });

  it.each(all)('config/pgha.yml.example shows %s', (path) => {
    const key = path.split('.').at(-1) ?? path;
    expect(example).toMatch(new RegExp(`^\\s*(# )?${key}:`, 'm'));
  });
});

describe('dynamic configuration (properties)', () => {
  const secs = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });

  // Mostly in range (so that a good share parses), sometimes anything at all, sometimes absent.
  const field = (min: number, max: number) =>
    fc.option(fc.oneof({ arbitrary: secs(min, max), weight: 4 }, { arbitrary: fc.double(), weight: 1 }), { nil: undefined, freq: 5 });

  test.prop([field(2, 12), field(0.1, 6), field(0.2, 6), field(0.3, 4)])(
    'anything that parses satisfies loop_wait + retry_timeout + fence_margin <= ttl',
    (ttl, loop_wait, retry_timeout, fence_margin) => {
      const r = dynamicConfigSchema.safeParse({ ttl, loop_wait, retry_timeout, fence_margin });
      if (!r.success) return;
      expect(r.data.loop_wait + r.data.retry_timeout + r.data.fence_margin).toBeLessThanOrEqual(r.data.ttl);
    },
  );

  test.prop([secs(2, 60), secs(0.1, 20), secs(0.2, 20), secs(0.3, 20)])(
    'in-range timing is accepted exactly when it keeps the rule, and refused only as UNSAFE otherwise',
    (ttl, loop_wait, retry_timeout, fence_margin) => {
      const safe = loop_wait + retry_timeout + fence_margin <= ttl;
      if (safe) {
        expect(parseDynamicConfig({ ttl, loop_wait, retry_timeout, fence_margin }, 'prop')).toMatchObject({ ttl, loop_wait, retry_timeout, fence_margin });
      } else {
        expect(errorOf(() => parseDynamicConfig({ ttl, loop_wait, retry_timeout, fence_margin }, 'prop')).code).toBe('PGHA_CONFIG_UNSAFE');
      }
    },
  );
});
