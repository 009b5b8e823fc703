// Configuration loading: every bad field is named with the file; defaults; the split-brain rule.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { loadConfig, parseConfig, parseDynamicConfig } from '../../src/config/load.ts';
import { dynamicConfigSchema } from '../../src/config/schema.ts';
import { PgHaError } from '../../src/errors.ts';

const FILE = '/etc/pgha/node1.yml';
const minimal = `
scope: demo
name: node1
postgresql:
  data_dir: /var/lib/pgha/data
  authentication:
    superuser: {username: postgres, password: s}
    replication: {username: replicator, password: r}
`;

function errorOf(text: string): PgHaError {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof PgHaError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

describe('node configuration', () => {
  it('fills every default from a minimal file', () => {
    const c = parseConfig(minimal, FILE);
    expect(c.namespace).toBe('/service');
    expect(c.restapi.listen).toBe('0.0.0.0:8008');
    expect(c.etcd.hosts).toEqual(['127.0.0.1:2379']);
    expect(c.bootstrap.dcs).toMatchObject({ ttl: 3, loop_wait: 0.5, retry_timeout: 1, fence_margin: 0.75, maximum_lag_on_failover: 1048576, pause: false });
    expect(c.bootstrap.dcs.postgresql).toEqual({ use_pg_rewind: true, use_slots: true, parameters: {} });
    expect(c.tags).toEqual({ nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, failover_priority: 1 });
    expect(c.postgresql.bin_dir).toBe('/usr/lib/postgresql/15/bin');
  });

  it.each([
    ['a relative data_dir', minimal.replace('/var/lib/pgha/data', 'data'), 'postgresql.data_dir: an absolute path'],
    ['a bad listen address', `${minimal}restapi:\n  listen: localhost\n`, 'restapi.listen: expected host:port'],
    ['a port out of range', `${minimal}restapi:\n  listen: 1.2.3.4:70000\n`, 'restapi.listen: port must be'],
    ['an unknown key', `${minimal}tagz: {}\n`, '(top level): unknown key(s) "tagz"'],
    ['an unknown nested key', `${minimal}tags:\n  nofailure: true\n`, 'tags: unknown key(s) "nofailure"'],
    ['a wrong type', `${minimal}tags:\n  nofailover: "yes"\n`, 'tags.nofailover:'],
    ['a bad etcd host in a string list', `${minimal}etcd:\n  hosts: "a:1, b"\n`, 'etcd.hosts: "b" is not host:port'],
    ['etcd user without password', `${minimal}etcd:\n  username: u\n`, 'etcd.password: username and password go together'],
    ['a missing superuser', minimal.replace('    superuser: {username: postgres, password: s}\n', ''), 'postgresql.authentication.superuser:'],
  ])('names the file and the field for %s', (_, text, fragment) => {
    const err = errorOf(text);
    expect(err.code).toBe('PGHA_CONFIG_INVALID');
    expect(err.message).toContain(`${FILE}: ${fragment}`);
  });

  it('reports every bad field, not only the first', () => {
    const err = errorOf(`${minimal}restapi:\n  listen: nope\ntags:\n  failover_priority: -1\n`);
    expect(err.message).toContain(`${FILE}: restapi.listen:`);
    expect(err.message).toContain(`${FILE}: tags.failover_priority:`);
  });

  it('gives the line of a YAML syntax error', () => {
    const err = errorOf('scope: demo\nname: [node1\n');
    expect(err.code).toBe('PGHA_CONFIG_PARSE');
    expect(err.message).toMatch(new RegExp(`^${FILE}: line \\d+:`));
  });

  it('refuses timing that breaks the split-brain guard', () => {
    const err = errorOf(`${minimal}bootstrap:\n  dcs:\n    ttl: 2\n    loop_wait: 1\n`);
    expect(err.code).toBe('PGHA_CONFIG_UNSAFE');
    expect(err.message).toContain('bootstrap.dcs.ttl: unsafe timing');
  });

  it('accepts etcd hosts as a comma-separated string', () => {
    expect(parseConfig(`${minimal}etcd:\n  hosts: "10.0.0.1:2379, 10.0.0.2:2379"\n`, FILE).etcd.hosts).toEqual(['10.0.0.1:2379', '10.0.0.2:2379']);
  });

  it('reports an unreadable file with its path', async () => {
    await expect(loadConfig('/nonexistent/pgha.yml')).rejects.toMatchObject({ code: 'PGHA_CONFIG_READ' });
  });

  it.each([1, 2, 3])('parses the demo config node%i.yml', async (i) => {
    const c = await loadConfig(new URL(`../../config/node${i}.yml`, import.meta.url).pathname);
    expect(c.name).toBe(`node${i}`);
  });

  it('parses the commented production example', async () => {
    const c = await loadConfig(new URL('../../config/pgha.yml.example', import.meta.url).pathname);
    expect(c.scope).toBeTruthy();
  });

  it('validates dynamic config edits with the source named', () => {
    expect(() => parseDynamicConfig({ ttl: 'x' }, 'request body')).toThrow(/request body: ttl:/);
  });
});

describe('dynamic configuration (property)', () => {
  const num = (min: number, max: number) => fc.double({ min, max, noNaN: true });
  test.prop([num(0, 10), num(0, 5), num(0, 5), num(0, 3)])('anything accepted satisfies loop_wait + retry_timeout + fence_margin <= ttl', (ttl, loop, retry, margin) => {
    const r = dynamicConfigSchema.safeParse({ ttl, loop_wait: loop, retry_timeout: retry, fence_margin: margin });
    if (r.success) expect(r.data.loop_wait + r.data.retry_timeout + r.data.fence_margin).toBeLessThanOrEqual(r.data.ttl);
    else expect(r.error.issues.length).toBeGreaterThan(0);
  });
});
