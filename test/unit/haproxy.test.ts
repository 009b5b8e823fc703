// HAProxy configuration rendering, and the rendered file checked by HAProxy itself (`haproxy -c`).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { renderHaproxyConfig, renderTemplate, type HaproxyInput } from '../../src/proxy/haproxy.ts';
import { makePki } from '../../lab/tls.ts';

const HAPROXY = '/usr/sbin/haproxy';

const input: HaproxyInput = {
  readWritePort: 5000, readOnlyPort: 5001, checkIntervalMs: 500,
  members: [1, 2, 3].map((i) => ({ name: `node${i}`, pgHost: '127.0.0.1', pgPort: 5440 + i, apiHost: '127.0.0.1', apiPort: 8010 + i })),
};

/** The lines of one `listen` section. */
function section(cfg: string, name: string): string {
  const m = new RegExp(`^listen ${name}\\n((?:[ \\t].*\\n?|\\n)*)`, 'm').exec(cfg);
  if (m === null) throw new Error(`no listen ${name}`);
  return m[1]!.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
}

describe('renderHaproxyConfig', () => {
  const cfg = renderHaproxyConfig(input);

  it.each([
    ['primary', 5000, '/primary'],
    ['replicas', 5001, '/replica'],
  ])('listener %s binds :%i and routes by GET %s', (name, port, path) => {
    const s = section(cfg, name);
    expect(s).toContain(`bind 127.0.0.1:${port}`);
    expect(s).toContain(`option httpchk GET ${path}`);
    expect(s).toContain('http-check expect status 200');
    expect(s).toContain('default-server inter 500ms fastinter 250ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions');
    for (const i of [1, 2, 3]) expect(s).toContain(`server node${i} 127.0.0.1:${5440 + i} maxconn 500 check port ${8010 + i} addr 127.0.0.1`);
  });

  it('is TCP mode with the documented timeouts, and leaves no placeholder', () => {
    expect(cfg).toMatch(/^\s+mode tcp$/m);
    for (const t of ['timeout connect 200ms', 'timeout client 30m', 'timeout server 30m']) expect(cfg).toContain(t);
    expect(cfg).not.toMatch(/\{\{|\}\}/);
    expect(cfg).not.toContain('listen stats');
  });

  it('adds the stats page only when statsPort is given', () => {
    expect(section(renderHaproxyConfig({ ...input, statsPort: 7000 }), 'stats')).toContain('bind 127.0.0.1:7000');
  });

  it.each([
    ['a name with a newline', { members: [{ ...input.members[0]!, name: 'x\n  bad' }] }, /members\[0\]\.name/],
    ['a host with a space', { members: [{ ...input.members[0]!, apiHost: '1.2.3.4 backup' }] }, /members\[0\]\.apiHost/],
    ['an IPv6 literal', { members: [{ ...input.members[0]!, pgHost: '::1' }] }, /members\[0\]\.pgHost/],
    ['a port out of range', { members: [{ ...input.members[0]!, pgPort: 70000 }] }, /members\[0\]\.pgPort/],
    ['a fractional port', { readWritePort: 5000.5 }, /readWritePort/],
    ['duplicate names', { members: [input.members[0]!, input.members[0]!] }, /duplicate member name/],
    ['the same port twice', { readOnlyPort: 5000 }, /ports must differ/],
    ['a check interval below 100 ms', { checkIntervalMs: 10 }, /checkIntervalMs/],
  ] as const)('refuses %s', (_, patch, message) => {
    expect(() => renderHaproxyConfig({ ...input, ...patch })).toThrow(message);
  });

  it('checks HTTPS agents over TLS, verifying them with the CA, and presents crt when given', () => {
    const tls = renderHaproxyConfig({ ...input, apiTls: { caFile: '/etc/pgha/tls/ca.crt' } });
    for (const name of ['primary', 'replicas']) {
      for (const i of [1, 2, 3]) expect(section(tls, name)).toContain(`check port ${8010 + i} addr 127.0.0.1 check-ssl verify required ca-file /etc/pgha/tls/ca.crt\n`);
    }
    const withCrt = renderHaproxyConfig({ ...input, apiTls: { caFile: '/t/ca.crt', crtFile: '/t/haproxy.pem' } });
    expect(section(withCrt, 'primary')).toContain('addr 127.0.0.1 check-ssl verify required ca-file /t/ca.crt crt /t/haproxy.pem\n');
    expect(section(cfg, 'primary')).not.toContain('check-ssl');
  });

  it.each([
    ['a relative CA file', { caFile: 'ca.crt' }, /apiTls\.caFile/],
    ['a CA path with a space', { caFile: '/t/ca.crt crt /etc/shadow' }, /apiTls\.caFile/],
    ['a crt path with a newline', { caFile: '/t/ca.crt', crtFile: '/t/x\n  server evil' }, /apiTls\.crtFile/],
  ] as const)('refuses %s', (_, apiTls, message) => {
    expect(() => renderHaproxyConfig({ ...input, apiTls })).toThrow(message);
  });

  it('fills sections from a template of its own, and refuses unknown placeholders', () => {
    const t = 'a {{readWritePort}}\n{{#members}}\n- {{name}}:{{pgPort}}\n{{/members}}\n';
    expect(renderTemplate(t, input)).toBe('a 5000\n- node1:5441\n- node2:5442\n- node3:5443\n');
    expect(() => renderTemplate('{{nope}}\n', input)).toThrow(/no value for \{\{nope\}\}/);
    expect(() => renderTemplate('{{#nope}}\nx\n{{/nope}}\n', input)).toThrow(/unknown section/);
  });
});

const haproxyMissing = !existsSync(HAPROXY);
describe.skipIf(haproxyMissing)(`haproxy -c${haproxyMissing ? ` (SKIPPED: ${HAPROXY} is not installed; apt-get install haproxy)` : ''}`, () => {
  it.each([
    ['three members', input, false],
    ['with the stats page and one member', { ...input, statsPort: 7000, members: input.members.slice(0, 1) }, false],
    ['HTTPS agents with a client certificate', input, true],
  ])('accepts the rendered file: %s', async (_, i, tls) => {
    const dir = mkdtempSync(join(tmpdir(), 'pgha-haproxy-'));
    try {
      const file = join(dir, 'haproxy.cfg');
      let apiTls: HaproxyInput['apiTls'];
      if (tls) {
        // haproxy -c loads the CA and the certificate: real files, made by openssl.
        const pki = makePki(join(dir, 'pki'));
        const leaf = pki.issue('haproxy');
        const crtFile = join(dir, 'haproxy.pem');
        writeFileSync(crtFile, readFileSync(leaf.cert, 'utf8') + readFileSync(leaf.key, 'utf8'));
        apiTls = { caFile: pki.caFile, crtFile };
      }
      writeFileSync(file, renderHaproxyConfig(apiTls === undefined ? i : { ...i, apiTls }));
      // execFile rejects on a non-zero exit, with HAProxy's alerts in the error's stderr.
      const r = await promisify(execFile)(HAPROXY, ['-c', '-f', file]);
      expect(r.stdout + r.stderr).toContain('Configuration file is valid');
      expect(r.stdout + r.stderr).not.toMatch(/WARNING|ALERT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
