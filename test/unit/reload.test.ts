// Live reload: which changed fields apply live and which need an agent restart (pure), and the
// reloader on a real file: a good file applies the live part at once, a bad one changes nothing.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Server as TlsServer } from 'node:tls';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Reloader, diffConfig } from '../../src/agent/reload.ts';
import { parseConfig } from '../../src/config/load.ts';
import { buildApi } from '../../src/api/server.ts';
import { loadServerTls } from '../../src/api/tls.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import { makePki } from '../../lab/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgha-reload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = `scope: demo
name: n1
log: {level: info}
restapi: {listen: 127.0.0.1:8008, authentication: {username: admin, password: old-pw}}
postgresql:
  data_dir: /var/lib/pgha/data
  listen: 127.0.0.1:5432
  authentication:
    superuser: {username: postgres, password: pw1}
    replication: {username: rep, password: pw2}
  parameters: {work_mem: 4MB}
tags: {nofailover: false}
`;
const parse = (text: string) => parseConfig(text, 'test.yml');

describe('diffConfig', () => {
  it('sorts every changed field into live or restart, naming fields, never values', () => {
    const next = base
      .replace('level: info', 'level: debug')
      .replace('nofailover: false', 'nofailover: true, noloadbalance: true')
      .replace('work_mem: 4MB', 'work_mem: 8MB, maintenance_work_mem: 64MB')
      .replace('old-pw', 'new-pw')
      .replace('listen: 127.0.0.1:5432', 'listen: 10.0.0.2:5433')
      .replace('listen: 127.0.0.1:8008', 'listen: 10.0.0.2:8009')
      .replace('data_dir: /var/lib/pgha/data', 'data_dir: /srv/data\n  callbacks: {on_start: /bin/true}\n  pre_promote: [/usr/bin/fence, --hard]')
      .replace('name: n1', 'name: n2\netcd: {hosts: [10.0.0.1:2379]}');
    const d = diffConfig(parse(base), parse(next));
    expect(d.live.sort()).toEqual([
      'log.level', 'postgresql.callbacks.on_start', 'postgresql.parameters.maintenance_work_mem', 'postgresql.parameters.work_mem',
      'postgresql.pre_promote', 'restapi.authentication.password', 'tags.nofailover', 'tags.noloadbalance',
    ]);
    expect(d.restart.sort()).toEqual(['etcd.hosts', 'name', 'postgresql.data_dir', 'postgresql.listen', 'restapi.listen']);
    expect(JSON.stringify(d)).not.toContain('new-pw');
  });

  it('new certificate files of an HTTPS API are live; turning HTTPS on or off needs a restart', () => {
    const https = base.replace('restapi: {', 'restapi: {certfile: /etc/a.crt, keyfile: /etc/a.key, ');
    expect(diffConfig(parse(https), parse(https.replace('/etc/a.crt', '/etc/b.crt')))).toEqual({ live: ['restapi.certfile'], restart: [] });
    expect(diffConfig(parse(base), parse(https)).restart.sort()).toEqual(['restapi.certfile', 'restapi.keyfile']);
    expect(diffConfig(parse(https), parse(base)).restart.sort()).toEqual(['restapi.certfile', 'restapi.keyfile']);
  });

  it('an unchanged file changes nothing', () => {
    expect(diffConfig(parse(base), parse(base))).toEqual({ live: [], restart: [] });
  });
});

describe('Reloader', () => {
  const setup = () => {
    const path = join(dir, `pgha-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(path, base);
    const config = parse(base);
    const logs: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
    const mk = (level: string) => (fields: Record<string, unknown>, msg: string) => { logs.push({ level, fields, msg }); };
    const logger = { level: 'info', info: mk('info'), warn: mk('warn'), error: mk('error') } as unknown as Logger;
    let woken = 0;
    const r = new Reloader({ path, config, logger, clientTls: { rejectUnauthorized: true }, wake: () => { woken += 1; } });
    return { path, config, logger, logs, r, woken: () => woken };
  };

  it('a good file: applies log level, tags, credentials and parameters at once; reports, and does not apply, the rest', async () => {
    const s = setup();
    writeFileSync(s.path, base.replace('level: info', 'level: debug').replace('nofailover: false', 'nofailover: true').replace('old-pw', 'new-pw').replace('4MB', '16MB').replace('/var/lib/pgha/data', '/srv/other'));
    const rep = await s.r.reload('test');
    expect(rep).toMatchObject({ ok: true, restart_needed: ['postgresql.data_dir'] });
    expect(rep.applied.sort()).toEqual(['log.level', 'postgresql.parameters.work_mem', 'restapi.authentication.password', 'tags.nofailover']);
    expect(s.logger.level).toBe('debug');
    expect(s.config.tags.nofailover).toBe(true);
    expect(s.config.restapi.authentication?.password).toBe('new-pw');
    expect(s.config.postgresql.parameters).toEqual({ work_mem: '16MB' });
    expect(s.config.postgresql.data_dir).toBe('/var/lib/pgha/data'); // needs a restart: not applied
    expect(s.woken()).toBe(1);
    expect(s.logs.some((l) => l.level === 'warn' && l.msg.includes('postgresql.data_dir'))).toBe(true);
    expect(JSON.stringify(s.logs)).not.toContain('new-pw');
  });

  it('a bad file: keeps the running configuration and logs the file and the field', async () => {
    const s = setup();
    writeFileSync(s.path, base.replace('level: info', 'level: loud').replace('nofailover: false', 'nofailover: true'));
    const rep = await s.r.reload('SIGHUP');
    expect(rep.ok).toBe(false);
    expect(rep.error?.code).toBe('PGHA_CONFIG_INVALID');
    expect(rep.error?.message).toContain(`${s.path}: log.level:`);
    expect(s.config.tags.nofailover).toBe(false);
    expect(s.logger.level).toBe('info');
    expect(s.woken()).toBe(0);
    const err = s.logs.find((l) => l.level === 'error');
    expect(err?.msg).toContain(`${s.path}: log.level`);
  });

  it('a file that is not YAML, or missing, changes nothing either', async () => {
    const s = setup();
    writeFileSync(s.path, 'scope: [unclosed\n');
    expect((await s.r.reload('SIGHUP')).error?.code).toBe('PGHA_CONFIG_PARSE');
    rmSync(s.path);
    expect((await s.r.reload('SIGHUP')).error?.code).toBe('PGHA_CONFIG_READ');
    expect(s.woken()).toBe(0);
  });
});

describe('Reloader and the API certificate', () => {
  it('swaps the HTTPS server certificate on reload (same paths, renewed files); a key that does not match changes nothing', async () => {
    const pki = makePki(join(dir, 'pki'));
    const a = pki.issue('srv-a');
    const b = pki.issue('srv-b');
    const c = pki.issue('srv-c');
    const crt = join(dir, 'api.crt');
    const key = join(dir, 'api.key');
    copyFileSync(a.cert, crt);
    copyFileSync(a.key, key);
    const text = base.replace('restapi: {', `restapi: {certfile: ${crt}, keyfile: ${key}, `);
    const path = join(dir, 'tls.yml');
    writeFileSync(path, text);
    const config = parseConfig(text, path);
    const quiet = createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb(); } }) });
    const app = buildApi({ logger: quiet, scope: 'demo', snapshot: () => null, now: () => 0, staleAfterMs: () => 3000, https: loadServerTls(config, path) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as { port: number }).port;
      const peerName = () => new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port, ca: readFileSyncUtf8(pki.caFile) }, () => { resolve(String(s.getPeerCertificate().subject.CN)); s.end(); });
        s.on('error', reject);
      });
      expect(await peerName()).toBe('srv-a');
      const r = new Reloader({
        path, config, logger: quiet, clientTls: { rejectUnauthorized: true }, wake: () => undefined,
        setServerTls: (t) => (app.server as unknown as TlsServer).setSecureContext({ cert: t.cert, key: t.key }),
      });
      copyFileSync(b.cert, crt);
      copyFileSync(b.key, key);
      expect(await r.reload('test')).toEqual({ ok: true, applied: [], restart_needed: [] });
      expect(await peerName()).toBe('srv-b');
      copyFileSync(c.cert, crt); // the key still is b's: refused before anything changes
      const bad = await r.reload('test');
      expect(bad.ok).toBe(false);
      expect(await peerName()).toBe('srv-b');
    } finally {
      await app.close();
    }
  });
});

function readFileSyncUtf8(p: string): string {
  return readFileSync(p, 'utf8');
}
