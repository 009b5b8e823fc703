// pgha on a data directory Patroni managed: Patroni's postgresql.conf (which does not include
// pgha.conf) is kept as postgresql.conf.patroni and replaced by base + pgha.conf; anything else
// is left alone (src/postgres/patroni-conf.ts).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptPatroniConf, adoptedConf, PATRONI_CONF_HEADER } from '../../src/postgres/patroni-conf.ts';

// As Patroni 3.0.2 writes it (postgresql/config.py ConfigWriter, write_postgresql_conf).
const PATRONI_CONF = `${PATRONI_CONF_HEADER}\ninclude 'postgresql.base.conf'\n\ncluster_name = 'mig'\nport = '6801'\nprimary_conninfo = 'host=127.0.0.1 port=6802'\nsynchronous_standby_names = '"m3"'\n`;

const dirs: string[] = [];
const dir = () => { const d = mkdtempSync(join(tmpdir(), 'pgha-pconf-')); dirs.push(d); return d; };
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('adopting Patroni\'s postgresql.conf', () => {
  it('keeps Patroni\'s file and writes one that includes the base and pgha.conf', async () => {
    const d = dir();
    writeFileSync(join(d, 'postgresql.conf'), PATRONI_CONF);
    expect(await adoptPatroniConf(d, undefined)).toBe(true);
    expect(readFileSync(join(d, 'postgresql.conf.patroni'), 'utf8')).toBe(PATRONI_CONF);
    const conf = readFileSync(join(d, 'postgresql.conf'), 'utf8');
    expect(conf).toBe(adoptedConf());
    // The base first, pgha's settings last (they win); nothing of Patroni's settings is left.
    expect(conf.indexOf("include_if_exists = 'postgresql.base.conf'")).toBeLessThan(conf.indexOf("include_if_exists = 'pgha.conf'"));
    expect(conf).not.toContain('primary_conninfo');
    // Once adopted, nothing more to do.
    expect(await adoptPatroniConf(d, undefined)).toBe(false);
  });

  it('leaves any other postgresql.conf alone', async () => {
    const d = dir();
    const own = "max_connections = 100\ninclude_if_exists = 'pgha.conf'\n";
    writeFileSync(join(d, 'postgresql.conf'), own);
    expect(await adoptPatroniConf(d, undefined)).toBe(false);
    expect(readFileSync(join(d, 'postgresql.conf'), 'utf8')).toBe(own);
    expect(existsSync(join(d, 'postgresql.conf.patroni'))).toBe(false);
  });

  it('finishes an adoption interrupted between its two steps', async () => {
    const d = dir();
    writeFileSync(join(d, 'postgresql.conf.patroni'), PATRONI_CONF);
    expect(await adoptPatroniConf(d, undefined)).toBe(true);
    expect(readFileSync(join(d, 'postgresql.conf'), 'utf8')).toBe(adoptedConf());
    expect(await adoptPatroniConf(dir(), undefined)).toBe(false); // no file at all: nothing to do
  });
});
