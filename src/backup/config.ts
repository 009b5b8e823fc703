// The `backup:` section of the node configuration: pgBackRest repositories, retention,
// compression, archiving. Validated here; rendered into pgbackrest.conf by render.ts. Key names
// follow pgBackRest's options (repo1-retention-full -> retention_full), so its documentation
// applies; `options` passes any further repository option through unchanged.
import { z } from 'zod';

const absolutePath = z.string().startsWith('/', 'an absolute path');

/**
 * A path that ends up inside archive_command/restore_command, which PostgreSQL runs through
 * /bin/sh: only characters that need no quoting (no space, quote, `$`, `;` ...).
 */
export const SHELL_SAFE_PATH = /^\/[A-Za-z0-9_./-]*$/;
const shellSafePath = z.string().regex(SHELL_SAFE_PATH, 'an absolute path of letters, digits, _ . / - only (it goes into archive_command, run by /bin/sh)');

/** A pgBackRest option name without its repoN- prefix: s3-bucket, azure-container, storage-verify-tls. */
const OPTION_NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const optionValue = z.union([z.string().refine((s) => !/[\r\n]/.test(s), 'no line breaks'), z.number(), z.boolean()]);
/** Options pgha renders itself from the typed keys: set them there, not in `options`. */
const TYPED_REPO_OPTIONS = new Set(['type', 'path', 'retention-full', 'retention-full-type', 'retention-diff', 'retention-archive', 'retention-archive-type']);

export const REPO_TYPES = ['posix', 's3', 'gcs', 'azure'] as const;

export const repositorySchema = z.strictObject({
  // posix: a directory every member reaches at the same path (shared storage: NFS, a mount).
  // s3, gcs, azure: object storage; its options (bucket, endpoint, region, key ...) go in `options`.
  type: z.enum(REPO_TYPES).default('posix'),
  // posix: the directory; object storage: the prefix inside the bucket.
  path: absolutePath,
  // Full backups kept (pgBackRest repo-retention-full); older ones and their WAL are expired.
  retention_full: z.number().int().min(1).max(9_999_999).default(2),
  // Differential backups kept per full one (repo-retention-diff); absent: pgBackRest's default.
  retention_diff: z.number().int().min(1).max(9_999_999).optional(),
  // Further pgBackRest repository options without the repoN- prefix, e.g. s3-bucket: db-backups,
  // s3-endpoint: s3.eu-west-1.amazonaws.com, s3-region: eu-west-1, s3-key-type: auto.
  options: z.record(z.string().regex(OPTION_NAME, 'a pgBackRest repository option without its repoN- prefix, e.g. s3-bucket'), optionValue).default({}),
}).superRefine((r, ctx) => {
  for (const k of Object.keys(r.options)) {
    if (TYPED_REPO_OPTIONS.has(k)) ctx.addIssue({ code: 'custom', path: ['options', k], message: `set ${k.replace(/-/g, '_')} as its own key, not in options` });
  }
  if (r.type !== 'posix' && !Object.keys(r.options).some((k) => k.startsWith(`${r.type}-`))) {
    ctx.addIssue({ code: 'custom', path: ['options'], message: `a ${r.type} repository needs its ${r.type}-* options (bucket or container, endpoint, credentials ...)` });
  }
});

export type Repository = z.infer<typeof repositorySchema>;

/** How pgBackRest reaches another member's PostgreSQL for backup_standby (pgBackRest's pg2-* options without the prefix). */
const peerSchema = z.record(z.string().regex(OPTION_NAME, 'a pgBackRest pg option without its pgN- prefix, e.g. path, socket-path, port, host'), optionValue)
  .refine((p) => typeof p.path === 'string' && p.path.startsWith('/'), { message: 'needs path: the member\'s data directory (absolute)' });

export const backupSchema = z.strictObject({
  // The pgBackRest stanza; default: the scope.
  stanza: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only').optional(),
  // At most 4 repositories (pgBackRest 2.45's limit); each archived WAL and backup goes to all.
  repositories: z.array(repositorySchema).min(1).max(4),
  compression: z.strictObject({
    type: z.enum(['none', 'gz', 'lz4', 'zst', 'bz2']).default('lz4'),
    level: z.number().int().min(-5).max(22).optional(),
  }).prefault({}),
  // Back up from a streaming standby (pgBackRest backup-standby): the primary only starts and
  // stops the backup, the standby's files are copied. Needs `peers` for the other members.
  backup_standby: z.boolean().default(false),
  // Parallel processes of a backup or restore (pgBackRest process-max).
  process_max: z.number().int().min(1).max(64).default(1),
  archive: z.strictObject({
    // archive-push returns once a WAL file is queued locally and a background process ships it.
    async: z.boolean().default(false),
    // With async: past this many bytes queued, archive-push drops WAL and reports success, so a
    // dead repository cannot fill pg_wal (a gap in the archive; PITR across it is lost).
    queue_max: z.string().regex(/^\d+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/, 'a size such as 4GiB').optional(),
    // Seconds archive-push and archive-get may take (pgBackRest archive-timeout).
    timeout: z.number().min(1).max(86_400).default(60),
  }).prefault({}),
  // Directory of pgbackrest.conf, its log, lock and spool directories; default `<data_dir>.pgbackrest`.
  dir: shellSafePath.optional(),
  // The pgbackrest binary (Debian: /usr/bin/pgbackrest).
  bin: shellSafePath.default('/usr/bin/pgbackrest'),
  // For backup_standby: how pgBackRest on this member reaches each other member's PostgreSQL
  // (member name -> pgBackRest pg options: path, socket-path, port, host, host-type ...).
  peers: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), peerSchema).default({}),
  // How a new member or a reinitialized one gets its data (Patroni's create_replica_methods, in
  // order): pgbackrest restores the newest backup from the repository and then streams from the
  // leader; basebackup is pg_basebackup from the leader. A method that fails falls to the next.
  create_replica_methods: z.array(z.enum(['pgbackrest', 'basebackup'])).min(1)
    .refine((m) => new Set(m).size === m.length, 'each method once').default(['basebackup']),
  // Seconds a backup may run before it is killed (a backup copies the whole database).
  backup_timeout: z.number().min(10).max(7 * 86_400).default(6 * 3600),
});

export type BackupConfig = z.infer<typeof backupSchema>;

/** A restore point name: what pgbackrest restore --target takes without quoting trouble. */
export const restorePointName = z.string().regex(/^[A-Za-z0-9_.:-]{1,63}$/, 'a restore point name: 1-63 letters, digits, _ . : -');
