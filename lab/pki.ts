// A throw-away certificate authority for tests and `npm run demo -- --tls`, made with Debian's
// openssl when needed: no key is ever committed (lab/tls.ts re-exports it).
// `makePki(dir)` writes a CA; `issue()` signs leaf certificates for servers and clients (both
// usages, SANs for loopback by default). Files are 0644 keys included, owned by the caller: the
// caller chowns the directory to the postgres user when agents must read them
// (PostgreSQL itself refuses a key readable by others: use `privateCopy` for ssl_key_file).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Leaf {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  caFile: string;
  /**
   * Signs a leaf certificate named `name` (its CN) valid for `sans` (default: IP 127.0.0.1 and
   * DNS localhost). `expired: true` makes one whose validity ended a day before it began.
   */
  issue(name: string, o?: { sans?: string[]; expired?: boolean }): Leaf;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });

/** Key algorithm: P-256 ECDSA, accepted by etcd (Go), PostgreSQL, HAProxy and Node alike. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makePki(dir: string, caName = 'pgha-test-ca'): Pki {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-new', ...NEW_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${caName}`], dir);
  const caFile = join(dir, 'ca.crt');
  return {
    dir,
    caFile,
    issue(name, o = {}) {
      const sans = o.sans ?? ['IP:127.0.0.1', 'DNS:localhost'];
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, [
        `subjectAltName=${sans.join(',')}`,
        'extendedKeyUsage=serverAuth,clientAuth',
        'keyUsage=digitalSignature,keyEncipherment',
        '',
      ].join('\n'));
      openssl(['req', '-new', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', `${name}.crt`, '-days', o.expired === true ? '-1' : '2', '-extfile', ext], dir);
      const key = join(dir, `${name}.key`);
      chmodSync(key, 0o644);
      return { cert: join(dir, `${name}.crt`), key };
    },
  };
}

/** A copy of `key` at `dest`, mode 0600, owned by uid/gid: what PostgreSQL asks of ssl_key_file. */
export function privateCopy(key: string, dest: string, uid: number, gid: number): string {
  copyFileSync(key, dest);
  chmodSync(dest, 0o600);
  chownSync(dest, uid, gid);
  return dest;
}
