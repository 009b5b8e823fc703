// The TLS files named in the node configuration, checked when the agent starts: a clear error
// naming the field and the file, instead of a server that will not start or a libpq connection
// that fails later. The rules are PostgreSQL's (be-secure-common.c) and libpq's for private keys.
import { accessSync, constants, statSync } from 'node:fs';
import { PgHaError } from '../errors.ts';
import type { NodeConfig } from './schema.ts';

/**
 * Why a private key would be refused by PostgreSQL or libpq running as `uid`, or null when it is
 * fine: a regular file, owned by `uid` with no group or other access (0600 or stricter), or
 * owned by root with at most group read (0640 or stricter).
 */
export function keyFileProblem(mode: number, owner: number, uid: number, regular: boolean): string | null {
  if (!regular) return 'is not a regular file';
  const perm = mode & 0o777;
  const is = `is mode ${perm.toString(8).padStart(4, '0')} owned by uid ${owner}`;
  if (owner === uid) return (perm & 0o077) === 0 ? null : `${is}: a key owned by the server's user (uid ${uid}) must be mode 0600 or stricter`;
  if (owner === 0) return (perm & 0o037) === 0 ? null : `${is}: a key owned by root must be mode 0640 or stricter`;
  return `${is}: it must be owned by the server's user (uid ${uid}) with mode 0600, or by root with mode 0640`;
}

/**
 * Check every TLS file of `c` as the OS user `uid` (the agent's: PostgreSQL and libpq run as it).
 * Throws PGHA_CONFIG_INVALID with one line per problem: `<source>: <field>: <file>: <why>`.
 */
export function checkTlsFiles(c: NodeConfig, source: string, uid: number): void {
  const problems: string[] = [];
  const check = (field: string, file: string | undefined, key: boolean) => {
    if (file === undefined) return;
    const why = fileProblem(file, key, uid);
    if (why !== null) problems.push(`${source}: ${field}: ${file}: ${why}`);
  };
  const ssl = c.postgresql.ssl;
  if (ssl !== undefined) {
    check('postgresql.ssl.cert_file', ssl.cert_file, false);
    check('postgresql.ssl.key_file', ssl.key_file, true);
    check('postgresql.ssl.ca_file', ssl.ca_file, false);
    check('postgresql.ssl.crl_file', ssl.crl_file, false);
  }
  for (const [role, r] of Object.entries(c.postgresql.authentication)) {
    if (r === undefined) continue;
    const at = `postgresql.authentication.${role}`;
    check(`${at}.sslrootcert`, r.sslrootcert, false);
    check(`${at}.sslcert`, r.sslcert, false);
    check(`${at}.sslkey`, r.sslkey, true);
    check(`${at}.sslcrl`, r.sslcrl, false);
  }
  if (problems.length > 0) throw new PgHaError('PGHA_CONFIG_INVALID', problems.join('\n'));
}

function fileProblem(file: string, key: boolean, uid: number): string | null {
  let st;
  try {
    st = statSync(file);
    accessSync(file, constants.R_OK);
  } catch (err) {
    return `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return key ? keyFileProblem(st.mode, st.uid, uid, st.isFile()) : null;
}
