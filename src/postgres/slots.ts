// The leader's physical replication slots.
//
// Which slots are pgha's? Every physical slot on the server. The leader passes the full list it
// wants (a slot per member seen within member_slots_ttl, plus permanent_slots), so a physical slot
// an operator wants kept must be listed in permanent_slots; logical slots are never touched. An
// active slot (a standby streaming through it right now) is never dropped.
import type { Probe } from './probe.ts';

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/** PostgreSQL's SQLSTATEs for races with a standby or another call: the slot is already there, or in use. */
const DUPLICATE_OBJECT = '42710';
const OBJECT_IN_USE = '55006';

interface SlotRow {
  slot_name: string;
  active: boolean;
}

/** Create missing physical slots; with dropAbsent, drop inactive physical slots not listed. */
export async function ensureSlots(probe: Probe, names: string[], dropAbsent: boolean): Promise<void> {
  const bad = names.filter((n) => !SLOT_NAME.test(n));
  if (bad.length > 0) throw new Error(`not valid slot names: ${bad.join(', ')}`);
  const rows = await probe.query<SlotRow>("select slot_name::text, active from pg_replication_slots where slot_type = 'physical'");
  const have = new Set(rows.map((r) => r.slot_name));
  for (const n of names) {
    if (!have.has(n)) await ignoring(DUPLICATE_OBJECT, probe.query('select pg_create_physical_replication_slot($1)', [n]));
  }
  if (!dropAbsent) return;
  const want = new Set(names);
  for (const r of rows) {
    if (!want.has(r.slot_name) && !r.active) await ignoring(OBJECT_IN_USE, probe.query('select pg_drop_replication_slot($1)', [r.slot_name]));
  }
}

async function ignoring(sqlstate: string, p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if ((err as { code?: unknown }).code !== sqlstate) throw err;
  }
}
