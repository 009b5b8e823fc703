// /config in Patroni's format (checked against Patroni 3.0.2: config.py __DEFAULT_CONFIG, ctl.py
// edit-config/pause, dcs/__init__.py Cluster.check_mode). Patroni writes synchronous_mode as a
// boolean, `pause` only while paused (patronictl resume sets it to null, which deletes it), and
// keeps settings pgha does not model (primary_start_timeout, check_timeline,
// postgresql.recovery_conf ...). standby_cluster is read and written in Patroni's shape (a
// Patroni standby cluster migrates with it: docs/disaster-recovery.md). pgha reads through those, and writes its value back over the
// stored one so that Patroni's settings survive a pgha edit and pgha's (fence_margin ...) sit
// beside them, ignored by Patroni.
import { dynamicConfigSchema, type DynamicConfig } from '../config/schema.ts';

/** Top-level /config keys Patroni 3.0.2 knows and pgha does not act on (kept, never interpreted). */
export const PATRONI_ONLY_KEYS = [
  'maximum_lag_on_syncnode', 'max_timelines_history', 'check_timeline', 'master_start_timeout', 'primary_start_timeout',
  'master_stop_timeout', 'primary_stop_timeout', 'slots', 'permanent_replication_slots',
  'ignore_slots', 'citus', 'watchdog',
] as const;
/** postgresql.* keys of Patroni's /config that pgha does not act on. */
export const PATRONI_ONLY_PG_KEYS = [
  'recovery_conf', 'pg_hba', 'pg_ident', 'remove_data_directory_on_rewind_failure',
  'remove_data_directory_on_diverged_timelines', 'bin_dir', 'use_unix_socket', 'use_unix_socket_repl',
] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Patroni's parse_bool (utils.py): true/yes/on/1 and false/no/off/0, any case; anything else undefined. */
export function patroniBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v === 1 ? true : v === 0 ? false : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(s)) return true;
  if (['false', 'no', 'off', '0'].includes(s)) return false;
  return undefined;
}

/**
 * A stored /config (Patroni's or pgha's format) as input for dynamicConfigSchema: Patroni's
 * booleans as pgha's synchronous_mode, a null or false pause dropped, Patroni-only keys left out.
 */
export function fromPatroniConfig(raw: unknown): unknown {
  if (!isObject(raw)) return raw;
  const out: Record<string, unknown> = { ...raw };
  for (const k of PATRONI_ONLY_KEYS) delete out[k];
  const sm = out['synchronous_mode'];
  if (sm !== 'quorum' && sm !== undefined) {
    const b = patroniBool(sm);
    if (b !== undefined) out['synchronous_mode'] = b ? 'on' : 'off';
  }
  for (const k of ['pause', 'failsafe_mode', 'synchronous_mode_strict'] as const) {
    if (!(k in out)) continue;
    const b = out[k] === null ? false : patroniBool(out[k]);
    if (b !== undefined) out[k] = b;
  }
  if (out['pause'] === false) delete out['pause'];
  // Patroni's permanent slots: `permanent_slots` (or older `slots`), a null value meaning physical.
  const slots = out['permanent_slots'] ?? raw['slots'] ?? raw['permanent_replication_slots'];
  if (isObject(slots)) {
    out['permanent_slots'] = Object.fromEntries(Object.entries(slots).map(([n, v]) => [n, v === null ? { type: 'physical' } : v]));
  }
  const pg = out['postgresql'];
  if (isObject(pg)) {
    const p: Record<string, unknown> = { ...pg };
    for (const k of PATRONI_ONLY_PG_KEYS) delete p[k];
    out['postgresql'] = p;
  }
  return out;
}

/**
 * The /config value to store: `cfg` in Patroni's format over what is stored now (`stored`, raw),
 * so that keys pgha does not model stay as they were.
 */
export function toPatroniConfig(cfg: DynamicConfig, stored: unknown): Record<string, unknown> {
  const base = isObject(stored) ? stored : {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) if (!(k in dynamicConfigSchema.shape)) out[k] = v;
  const { synchronous_mode, pause, postgresql, standby_cluster, ...rest } = cfg;
  Object.assign(out, rest);
  // Absent while this is a normal cluster (pghactl promote-cluster removes it).
  if (standby_cluster != null) out['standby_cluster'] = standby_cluster;
  out['synchronous_mode'] = synchronous_mode === 'quorum' ? 'quorum' : synchronous_mode === 'on';
  if (pause) out['pause'] = true;
  const storedPg = isObject(base['postgresql']) ? base['postgresql'] : {};
  out['postgresql'] = { ...Object.fromEntries(Object.entries(storedPg).filter(([k]) => (PATRONI_ONLY_PG_KEYS as readonly string[]).includes(k))), ...postgresql };
  return out;
}
