// `pghactl convert-config` / `pgha --patroni-config` (issue 20): a realistic Patroni YAML becomes a
// valid pgha node configuration, and every setting that could not be carried is listed.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { convertPatroniConfig } from '../../src/config/patroni.ts';
import { nodeConfigSchema } from '../../src/config/schema.ts';
import { lookupOsUser } from '../../src/postgres/exec.ts';

const yml = parse(readFileSync(new URL('../fixtures/patroni-3.0.2/patroni.yml', import.meta.url), 'utf8')) as unknown;

describe('a Patroni YAML as pgha configuration', () => {
  const { config, notCarried } = convertPatroniConfig(yml);

  it('is a valid pgha configuration carrying what pgha has', () => {
    const r = nodeConfigSchema.safeParse(config);
    expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
    const c = r.data!;
    expect(c).toMatchObject({ scope: 'payments', name: 'db1', namespace: '/service/', log: { level: 'warn' } });
    expect(c.restapi).toMatchObject({ listen: '0.0.0.0:8008', connect_address: '10.0.0.11:8008', authentication: { username: 'patroni', password: 'api-secret' } });
    expect(c.etcd).toMatchObject({ hosts: ['10.0.0.21:2379', '10.0.0.22:2379', '10.0.0.23:2379'], username: 'patroni', password: 'etcd-secret', protocol: 'http' });
    expect(c.bootstrap.dcs).toMatchObject({ ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: 'on', synchronous_mode_strict: false, pause: false });
    expect(c.bootstrap.dcs.postgresql.parameters).toMatchObject({ max_wal_senders: 10, wal_log_hints: 'on' });
    expect(c.bootstrap.initdb).toEqual([{ encoding: 'UTF8' }, 'data-checksums']);
    expect(c.bootstrap.pg_hba).toEqual(['host replication replicator 10.0.0.0/24 scram-sha-256', 'host all all 10.0.0.0/24 scram-sha-256']);
    expect(c.bootstrap.users).toEqual({ app: { password: 'app-secret', options: ['createdb'] } });
    expect(c.postgresql).toMatchObject({
      listen: '0.0.0.0:5432', connect_address: '10.0.0.11:5432', data_dir: '/var/lib/postgresql/15/main', bin_dir: '/usr/lib/postgresql/15/bin',
      socket_dir: '/var/run/postgresql', pgpass: '/var/lib/postgresql/.pgpass_patroni',
      authentication: { superuser: { username: 'postgres', password: 'super-secret' }, rewind: { username: 'rewind_user', password: 'rewind-secret' } },
    });
    expect(c.postgresql.callbacks.on_role_change).toEqual(['/usr/local/bin/pg-role-change.sh']);
    expect(c.watchdog).toMatchObject({ mode: 'automatic', safety_margin: 5 });
    expect(c.tags).toMatchObject({ nofailover: false, nosync: false, replicatefrom: 'db2' });
  });

  it('lists every setting it could not carry, with the reason', () => {
    const paths = notCarried.map((n) => n.path).sort();
    expect(paths).toEqual([
      'bootstrap.dcs.check_timeline', 'bootstrap.dcs.master_start_timeout', 'bootstrap.dcs.postgresql.recovery_conf', 'bootstrap.post_init',
      'log.dir', 'log.file_size', 'postgresql.basebackup', 'postgresql.callbacks.on_start', 'postgresql.config_dir',
      'postgresql.create_replica_methods', 'postgresql.pg_hba', 'restapi.request_queue_size',
    ]);
    for (const n of notCarried) expect(n.why.length).toBeGreaterThan(10);
    expect(notCarried.find((n) => n.path === 'postgresql.callbacks.on_start')?.why).toMatch(/argument list/);
  });

  it('names other DCS and etcd v2 as what they are', () => {
    const r = convertPatroniConfig({ scope: 's', name: 'n', consul: { host: 'x' }, etcd: { host: '10.0.0.1:2379' } });
    expect(r.notCarried.find((n) => n.path === 'consul')?.why).toMatch(/etcd v3 only/);
    expect(r.notCarried.find((n) => n.path === 'etcd')?.why).toMatch(/v2 API/);
    expect(r.config['etcd']).toEqual({ hosts: '10.0.0.1:2379' });
  });
});

describe('pghactl convert-config and pgha --patroni-config', () => {
  const fixture = new URL('../fixtures/patroni-3.0.2/patroni.yml', import.meta.url).pathname;
  const run = (bin: string, args: string[], opts: { uid?: number; gid?: number } = {}) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    // The CLI starts in about a second; 20 s covers a loaded machine.
    execFile(process.execPath, [new URL(`../../bin/${bin}`, import.meta.url).pathname, ...args], { timeout: 20_000, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });

  it('writes pgha\'s file (0600, not over an existing one) and lists what it left out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgha-convert-'));
    try {
      const out = join(dir, 'pgha.yml');
      const r = await run('pghactl.js', ['convert-config', fixture, '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/not carried over \(12\):\n {2}log\.dir: /);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      expect(nodeConfigSchema.safeParse(parse(readFileSync(out, 'utf8'))).success).toBe(true);
      const again = await run('pghactl.js', ['convert-config', fixture, '-o', out]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/exists: not overwritten/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says what to fix when the result is not valid for pgha', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgha-convert-'));
    try {
      const bad = join(dir, 'patroni.yml');
      writeFileSync(bad, 'scope: s\nname: n\nrestapi:\n  listen: 0.0.0.0:8008\npostgresql:\n  data_dir: /var/lib/postgresql/15/main\n');
      const r = await run('pghactl.js', ['convert-config', bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/PGHA_CONFIG_INVALID: the converted configuration needs changes/);
      expect(r.stderr).toMatch(/postgresql\.authentication/);
      // pgha --patroni-config: the same conversion, the same reasons, before anything starts.
      chmodSync(dir, 0o755);
      chmodSync(bad, 0o644);
      const pw = lookupOsUser('postgres');
      const a = await run('pgha.js', ['--patroni-config', bad], { uid: pw.uid, gid: pw.gid });
      expect(a.code).not.toBe(0);
      expect(a.stderr).toMatch(/\(Patroni's format, converted\): postgresql\.authentication/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
