// bootstrap.method: pgbackrest (a copy of production for staging): the keys of bootstrap.pgbackrest
// and the pure parts of that bootstrap, tested without pgBackRest: the restore's target options,
// the refusal of a stanza shared with the source, and the checks of the source's backups against
// the target (`pgbackrest info`) before anything is restored.
//
// Patroni has no built-in pgBackRest bootstrap: its custom method runs a `command` and takes
// `recovery_conf` (recovery_target_*, recovery_target_action). pgha knows pgBackRest, so the keys
// say what to restore (stanza, repositories, set) and where to stop (target), and pgha sets the
// recovery options itself (recovery_target_action: promote, always).
import { z } from 'zod';
import type { Repository } from './config.ts';
import { repositorySchema, restorePointName } from './config.ts';
import type { StanzaInfo } from './info.ts';

/**
 * A time with an explicit offset: "2026-11-30 10:41:00+00", "2026-11-30T10:41:00.5Z". Without an
 * offset PostgreSQL would read it in the server's time zone; a copy of production restored to
 * the wrong hour is the mistake this refuses.
 */
const TIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(Z|[+-]\d{2}(?::?\d{2})?)$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

const timeTarget = z.union([z.string(), z.date()]).transform((v, ctx) => {
  if (v instanceof Date) return pgTime(v.toISOString());
  if (!TIME.test(v)) {
    ctx.addIssue({ code: 'custom', message: 'a time with its offset, e.g. "2026-11-30 10:41:00+00" (quote it in YAML)' });
    return z.NEVER;
  }
  return pgTime(v);
});

/** The time in the form pgBackRest parses to pick the backup set: "YYYY-MM-DD HH:MM:SS[.f]+HH[:MM]". */
export function pgTime(iso: string): string {
  const m = TIME.exec(iso);
  if (m === null) throw new Error(`not a time: ${iso}`);
  const off = m[3] === 'Z' ? '+00' : m[3]!.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  return `${m[1]} ${m[2]}${off}`;
}

/** Milliseconds since the epoch of a pgTime string. */
export function timeMs(t: string): number {
  const m = /^(\S+) (\S+?)([+-]\d{2})(?::?(\d{2}))?$/.exec(t);
  if (m === null) return Number.NaN;
  return Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4] ?? '00'}`);
}

export const targetSchema = z.union([
  z.literal('latest'),
  z.strictObject({ time: timeTarget }),
  z.strictObject({ lsn: z.string().regex(LSN, 'an LSN such as 0/5000028') }),
  z.strictObject({ name: restorePointName }),
]);

export type RestoreTarget = z.infer<typeof targetSchema>;

export const bootstrapPgbackrestSchema = z.strictObject({
  // The stanza to restore from: another cluster's (production), read-only.
  stanza: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only'),
  // The source's repositories; absent: the backup section's (a repository shared with the source).
  repositories: z.array(repositorySchema).min(1).max(4).optional(),
  // Where recovery stops and the new cluster promotes: latest (the end of the archive), or one
  // of { time: "2026-11-30 10:41:00+00" }, { lsn: "0/5000028" }, { name: <restore point> }.
  target: targetSchema.default('latest'),
  // Stop just before the target instead of just after it (pgBackRest --target-exclusive).
  exclusive: z.boolean().default(false),
  // A backup label to restore (pgBackRest --set); absent: pgBackRest picks the newest backup
  // that ends before a time target, else the newest one.
  set: z.string().regex(/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/, 'a pgBackRest backup label, e.g. 20261130-101500F').optional(),
});

export type BootstrapPgbackrest = z.infer<typeof bootstrapPgbackrestSchema>;

/** pgbackrest restore options for the target; recovery always ends with a promotion. */
export function targetArgs(b: BootstrapPgbackrest): string[] {
  const t = b.target;
  const args = t === 'latest' ? ['--type=default']
    : 'time' in t ? ['--type=time', `--target=${t.time}`]
      : 'lsn' in t ? ['--type=lsn', `--target=${t.lsn.toUpperCase()}`]
        : ['--type=name', `--target=${t.name}`];
  if (t !== 'latest') args.push('--target-action=promote');
  if (b.exclusive && t !== 'latest') args.push('--target-exclusive');
  if (b.set !== undefined) args.push(`--set=${b.set}`);
  return args;
}

/** A repository's identity: the same one when type, location (bucket, container) and path match. */
function repoKey(r: Repository): string {
  const where = Object.entries(r.options).filter(([k]) => /-(bucket|container|endpoint|host)$/.test(k)).map(([k, v]) => `${k}=${String(v)}`).sort();
  return `${r.type}|${where.join(',')}|${r.path.replace(/\/+$/, '')}`;
}

/** The source repositories that are also this cluster's (a stanza name there must not be reused). */
export function sharedRepositories(source: Repository[], own: Repository[]): Repository[] {
  const mine = new Set(own.map(repoKey));
  return source.filter((r) => mine.has(repoKey(r)));
}

/** Parse "X/Y" into a bigint for comparisons. */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/**
 * Why the source cannot restore to the target, or null. Checked before anything is restored:
 * the stanza exists and has a backup, a --set is in it, and a time or LSN target is not before
 * the end of the oldest backup (no backup can reach it). A target past the end of the archive,
 * or a restore point name that is not in it, shows only when recovery ends without reaching it.
 */
export function sourceProblem(b: BootstrapPgbackrest, infos: StanzaInfo[]): string | null {
  const s = infos.find((i) => i.stanza === b.stanza);
  if (s === undefined || s.status_code === 1) return `stanza ${b.stanza} does not exist in the source repository (${s?.status ?? 'not listed by pgbackrest info'})`;
  const ok = s.backups.filter((x) => !x.error);
  if (ok.length === 0) return `stanza ${b.stanza} has no backup to restore (${s.status})`;
  const usable = b.set === undefined ? ok : ok.filter((x) => x.label === b.set);
  if (usable.length === 0) return `backup set ${b.set} is not in stanza ${b.stanza} (backups: ${ok.map((x) => x.label).join(', ')})`;
  const t = b.target;
  if (t === 'latest' || 'name' in t) return null;
  if ('time' in t) {
    const oldestEnd = Math.min(...usable.map((x) => Date.parse(x.stopped)));
    if (timeMs(t.time) < oldestEnd) return `target time ${t.time} is before the end of the oldest usable backup (${new Date(oldestEnd).toISOString()}): no backup can restore to it`;
    return null;
  }
  const stops = usable.map((x) => x.lsn_stop).filter((x): x is string => x !== null).map(lsnValue);
  if (stops.length > 0) {
    const oldest = stops.reduce((x, y) => (x < y ? x : y));
    if (lsnValue(t.lsn) < oldest) return `target LSN ${t.lsn} is before the end of the oldest usable backup: no backup can restore to it`;
  }
  return null;
}
