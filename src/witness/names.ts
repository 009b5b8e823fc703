// synchronous_standby_names with the lease witness (pure). The witness must be *required* for
// every commit, and the real synchronous standbys must still count as before:
//   asynchronous ('')          -> FIRST 1 (w)
//   FIRST k (S), |S| >= k      -> FIRST k+1 (w, S): the witness first, then k of S; S holds at most
//                                 k names in pgha's `on` mode (the desired members), so every
//                                 listed name is required, the witness included
//   ANY k (S)                  -> ANY k+1 (w, S): k+1 confirmations of which at most one is the
//                                 witness, so at least k of S still hold each commit (quorum.ts's
//                                 guarantee is unchanged); the witness is one vote, not a veto
//                                 (docs/data-safety.md says when that matters)
//   strict, nobody left        -> FIRST 2 (w, pgha_no_sync_standby): still blocks every commit
// PostgreSQL 15 has no nested groups, so "the witness AND ANY k (S)" cannot be written.
import { NO_SYNC_STANDBY, syncStandbyNames } from '../ha/quorum.ts';
import type { SyncMethod } from '../ha/types.ts';

/** The application_name the witness connects with (no member may carry it). */
export const WITNESS_NAME = 'pgha_lease_witness';

export function witnessedSyncNames(names: string[] | null, count: number, method: SyncMethod = 'first'): string {
  if (names === null) return syncStandbyNames([WITNESS_NAME], 1, 'first');
  const list = names.length === 0 ? [NO_SYNC_STANDBY] : names;
  return syncStandbyNames([WITNESS_NAME, ...list], Math.min(count, list.length) + 1, method);
}

/**
 * The inverse of witnessedSyncNames on a rendered setting: the setting as it would be without the
 * witness (tests compare settings whatever postgresql.lease_witness is). Anything else is returned unchanged.
 */
export function withoutWitness(setting: string): string {
  const w = `"${WITNESS_NAME}"`;
  if (setting === `FIRST 1 (${w})`) return '';
  const m = /^(FIRST|ANY) (\d+) \((.*)\)$/.exec(setting);
  if (m === null || !m[3]!.startsWith(`${w}, `)) return setting;
  const rest = m[3]!.slice(w.length + 2);
  return `${m[1]} ${Number(m[2]) - 1} (${rest})`;
}
