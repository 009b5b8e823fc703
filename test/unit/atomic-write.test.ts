// writeAtomic, the one way pgha rewrites a file PostgreSQL or libpq reads (pgha.conf, pg_hba.conf,
// postgresql.conf, standby.signal, the passfile). The disk-full case runs on a real 64 kB tmpfs
// (root only: mount needs it): a rewrite that cannot finish must leave the old file as it was.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeAtomic } from '../../src/postgres/datadir.ts';

const root = process.getuid?.() === 0;

describe('writeAtomic', () => {
  let dir = '';
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'pgha-atomic-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file with the mode asked for and leaves no temporary file', async () => {
    const f = join(dir, 'pgha.conf');
    writeFileSync(f, 'old', { mode: 0o644 });
    await writeAtomic(f, 'new text\n', undefined);
    expect(readFileSync(f, 'utf8')).toBe('new text\n');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['pgha.conf']);
  });

  it.skipIf(!root)('gives the file to the server user', async () => {
    const f = join(dir, 'standby.signal');
    await writeAtomic(f, '', { uid: 4242, gid: 4243 });
    expect([statSync(f).uid, statSync(f).gid]).toEqual([4242, 4243]);
  });

  it('replaces a symlink planted at the path instead of writing through it', async () => {
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'precious');
    const f = join(dir, 'pg_hba.conf');
    execFileSync('ln', ['-s', target, f]);
    await writeAtomic(f, 'hba\n', undefined);
    expect(readFileSync(target, 'utf8')).toBe('precious');
    expect(readFileSync(f, 'utf8')).toBe('hba\n');
  });

  it.skipIf(!root)('keeps the old content when the disk fills up during the rewrite', async () => {
    const mnt = join(dir, 'tiny');
    execFileSync('mkdir', [mnt]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const f = join(mnt, 'pgpass');
      const old = 'host1:5432:*:replicator:old-password\n';
      await writeAtomic(f, old, undefined);
      // Fill the file system to the last byte.
      const chunk = Buffer.alloc(4096, 120);
      for (;;) {
        try { appendFileSync(join(mnt, 'filler'), chunk); } catch { break; }
      }
      const big = 'x'.repeat(32 * 1024);
      await expect(writeAtomic(f, big, undefined)).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(readFileSync(f, 'utf8')).toBe(old);
      expect(readdirSync(mnt).sort()).toEqual(['filler', 'pgpass']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
