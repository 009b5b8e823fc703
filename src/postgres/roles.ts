// Roles created at bootstrap: the superuser's password, the replication and rewind roles, and
// bootstrap.users. Passwords reach the server only as SCRAM-SHA-256 verifiers computed here (for
// ASCII passwords; others as a quoted literal), in a session that logs no statement, so neither
// the server log nor pg_stat_statements ever holds a password. Nothing here logs a statement.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';

/** Role options bootstrap.users may ask for (anything else is refused: no CONNECTION LIMIT, no VALID UNTIL). */
export const ALLOWED_ROLE_OPTIONS = new Set([
  'SUPERUSER', 'NOSUPERUSER', 'CREATEDB', 'NOCREATEDB', 'CREATEROLE', 'NOCREATEROLE', 'INHERIT', 'NOINHERIT',
  'LOGIN', 'NOLOGIN', 'REPLICATION', 'NOREPLICATION', 'BYPASSRLS', 'NOBYPASSRLS',
]);

/** Functions pg_rewind calls on the source (PostgreSQL docs, pg_rewind, "Notes"). */
const REWIND_FUNCTIONS = [
  'pg_ls_dir(text, boolean, boolean)',
  'pg_stat_file(text, boolean)',
  'pg_read_binary_file(text)',
  'pg_read_binary_file(text, bigint, bigint, boolean)',
];

/** Settings for the session that carries passwords: nothing it runs may reach the server log. */
const QUIET_SESSION = [
  "set password_encryption = 'scram-sha-256'",
  "set log_statement = 'none'",
  'set log_min_duration_statement = -1',
  'set log_min_duration_sample = -1',
  "set log_min_error_statement = 'panic'",
];

interface RoleSpec {
  name: string;
  password: string;
  options: string[];
}

/** SCRAM-SHA-256 verifier as PostgreSQL stores it (RFC 5802/7677, 4096 iterations, 16-byte salt). */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/**
 * The PASSWORD literal. The server runs SASLprep on a password before hashing it; for ASCII
 * input that changes nothing (or fails, and the server then hashes the raw bytes, as we do), so
 * an ASCII password is hashed here. Other passwords go as a literal, hashed by the server.
 */
function passwordLiteral(password: string): string {
  const ascii = /^[\x00-\x7f]*$/.test(password);
  return pg.escapeLiteral(ascii ? scramVerifier(password) : password);
}

/** The option words of a bootstrap.users entry, validated; LOGIN unless NOLOGIN was asked for. */
export function userOptions(name: string, options: string[]): string[] {
  const opts = options.map((o) => o.trim().toUpperCase());
  const bad = opts.filter((o) => !ALLOWED_ROLE_OPTIONS.has(o));
  if (bad.length > 0) {
    throw new PgHaError('PGHA_CONFIG_INVALID', `bootstrap.users.${name}.options: not allowed: ${bad.join(', ')} (allowed: ${[...ALLOWED_ROLE_OPTIONS].join(', ')})`);
  }
  return opts.includes('LOGIN') || opts.includes('NOLOGIN') ? opts : ['LOGIN', ...opts];
}

function roleSpecs(c: NodeConfig): RoleSpec[] {
  const a = c.postgresql.authentication;
  const specs: RoleSpec[] = [
    { name: a.superuser.username, password: a.superuser.password, options: [] },
    { name: a.replication.username, password: a.replication.password, options: ['LOGIN', 'REPLICATION'] },
  ];
  if (a.rewind !== undefined) specs.push({ name: a.rewind.username, password: a.rewind.password, options: ['LOGIN'] });
  for (const [name, u] of Object.entries(c.bootstrap.users)) specs.push({ name, password: u.password, options: userOptions(name, u.options) });
  const seen = new Map<string, string>();
  for (const s of specs) {
    if (seen.has(s.name) && seen.get(s.name) !== s.password) {
      throw new PgHaError('PGHA_CONFIG_INVALID', `role ${s.name} is configured twice with different passwords`);
    }
    seen.set(s.name, s.password);
  }
  return specs;
}

/** Create or alter every role pgha needs. `c` is a superuser session on the new primary. */
export async function createRoles(c: pg.Client, config: NodeConfig): Promise<void> {
  const specs = roleSpecs(config);
  for (const sql of QUIET_SESSION) await c.query(sql);
  for (const s of specs) await upsertRole(c, s);
  const rewind = config.postgresql.authentication.rewind;
  if (rewind !== undefined && rewind.username !== config.postgresql.authentication.superuser.username) {
    await grantRewind(c, rewind.username);
  }
}

async function upsertRole(c: pg.Client, s: RoleSpec): Promise<void> {
  const exists = (await c.query('select 1 from pg_roles where rolname = $1', [s.name])).rowCount === 1;
  const verb = exists ? 'alter' : 'create';
  const opts = s.options.length === 0 ? '' : ` ${s.options.join(' ')}`;
  await c.query(`${verb} role ${pg.escapeIdentifier(s.name)} with${opts} password ${passwordLiteral(s.password)}`);
}

/**
 * What a non-superuser needs for pg_rewind, plus pg_checkpoint (PostgreSQL 15+): pgha runs a
 * CHECKPOINT on a freshly promoted source first, so pg_rewind sees its new timeline.
 */
async function grantRewind(c: pg.Client, role: string): Promise<void> {
  const id = pg.escapeIdentifier(role);
  for (const fn of REWIND_FUNCTIONS) await c.query(`grant execute on function pg_catalog.${fn} to ${id}`);
  const r = await c.query("select 1 from pg_roles where rolname = 'pg_checkpoint'");
  if (r.rowCount === 1) await c.query(`grant pg_checkpoint to ${id}`);
}
