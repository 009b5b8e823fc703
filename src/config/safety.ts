// Node-configuration rules that protect the host and the other members (pure, used by the schema):
// a data directory that is no system path, a published address other hosts can reach, and a
// member name that PostgreSQL can carry as application_name and slot name unchanged in meaning.
import { posix } from 'node:path';

/**
 * Directories pgha never uses as data_dir (initdb writes into it; a failed bootstrap, a reinit or
 * a failed rewind empties it). Besides these, data_dir must lie at least two levels below `/`:
 * every top-level directory is a system one. `/var/lib/postgresql` itself is the postgres user's
 * home on Debian (data directories live below it, e.g. /var/lib/postgresql/15/main).
 */
const SYSTEM_DIRS = new Set([
  '/usr/bin', '/usr/sbin', '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/local', '/usr/share', '/usr/include', '/usr/src',
  '/var/lib', '/var/log', '/var/run', '/var/tmp', '/var/cache', '/var/spool', '/var/mail', '/var/backups', '/var/opt', '/var/local',
  '/var/lib/postgresql', '/run/user', '/run/lock', '/run/systemd', '/etc/systemd', '/etc/postgresql',
]);

/** Why `dataDir` may not be a data directory, or null when it may. */
export function dataDirProblem(dataDir: string): string | null {
  if (!dataDir.startsWith('/')) return 'an absolute path';
  const clean = posix.normalize(dataDir).replace(/(.)\/+$/, '$1');
  if (clean !== dataDir.replace(/(.)\/+$/, '$1')) return `not a normalized path (did you mean ${clean}?)`;
  const depth = clean.split('/').filter(Boolean).length;
  if (depth < 2) return `${clean} is a system directory: data_dir must lie at least two levels below / (e.g. /var/lib/postgresql/15/main)`;
  if (SYSTEM_DIRS.has(clean)) return `${clean} is a system directory: use a directory of its own below it`;
  return null;
}

/** A host part that means "every interface": never an address another host can connect to. */
export function isWildcardHost(host: string): boolean {
  return ['0.0.0.0', '*', '::', '[::]', ''].includes(host);
}

/** A host part that only reaches this host. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === 'ip6-localhost' || h === '::1' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Longest application_name PostgreSQL keeps (NAMEDATALEN - 1); a slot name has the same limit. */
export const MAX_NAME_BYTES = 63;
