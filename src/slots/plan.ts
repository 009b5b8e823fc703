// Logical replication managed by pgha: what to change, computed from what the server has and
// what the configuration wants. Pure (no I/O): src/slots/manager.ts reads and acts.
//
// Ownership. A logical slot is pgha's while the configuration lists it, and after it was
// removed from the configuration while the leader's /status still lists it (the leader then
// drops it and stops listing it). A standby cannot create logical slots on PostgreSQL 15, so every
// logical slot on a standby is a copy pgha made: one the configuration no longer lists is dropped.
// A publication is pgha's when its comment says so (COMMENT ON PUBLICATION ... IS 'pgha'): the
// mark is replicated with the catalogs, so a new leader after a failover knows it too.
import type { DynamicConfig } from '../config/schema.ts';
import type { Lsn } from '../ha/types.ts';
import { slotNameFor } from '../postgres/types.ts';

export interface LogicalSlotSpec { name: string; plugin: string; database: string }
export interface PublicationSpec { name: string; database: string; allTables: boolean; tables: string[] }

/** One row of pg_replication_slots. */
export interface SlotRow {
  name: string;
  type: 'physical' | 'logical';
  plugin: string | null;
  database: string | null;
  active: boolean;
  activePid: number | null;
  confirmedFlush: Lsn | null;
  restartLsn: Lsn | null;
}

/** One publication of one database: all tables, or these (schema.table, sorted); `managed`: pgha's mark. */
export interface PublicationRow { name: string; database: string; allTables: boolean; tables: string[]; managed: boolean }

/** The comment that marks a publication as pgha's. */
export const PUBLICATION_MARK = 'pgha';

export function logicalSlotSpecs(cfg: DynamicConfig): LogicalSlotSpec[] {
  const out: LogicalSlotSpec[] = [];
  for (const [name, s] of Object.entries(cfg.permanent_slots)) if (s.type === 'logical') out.push({ name, plugin: s.plugin, database: s.database });
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** "orders" is public.orders. */
export function qualifiedTable(t: string): string {
  return t.includes('.') ? t : `public.${t}`;
}

export function publicationSpecs(cfg: DynamicConfig): PublicationSpec[] {
  return Object.entries(cfg.logical.publications)
    .map(([name, p]) => ({ name, database: p.database, allTables: p.all_tables, tables: [...new Set(p.tables.map(qualifiedTable))].sort() }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Permanent slot names (physical or logical) that are also a member's own slot: `slot -> member`. */
export function memberSlotClashes(cfg: DynamicConfig, members: readonly string[]): Array<{ slot: string; member: string }> {
  const bySlot = new Map(members.map((m) => [slotNameFor(m), m]));
  return Object.keys(cfg.permanent_slots).flatMap((slot) => {
    const member = bySlot.get(slot);
    return member === undefined ? [] : [{ slot, member }];
  });
}

const sameSlot = (row: SlotRow, spec: LogicalSlotSpec) => row.type === 'logical' && row.plugin === spec.plugin && row.database === spec.database;

/**
 * Leader: create the configured logical slots it lacks; drop a slot of a configured name built
 * otherwise (another plugin or database: created again on the next run), and the retired ones
 * (listed before, no longer configured). A physical slot of that name is the physical slots'
 * business (ensureSlots drops it, as it is no longer a physical permanent slot).
 */
export function planLeaderSlots(have: readonly SlotRow[], want: readonly LogicalSlotSpec[], retired: readonly string[]): { create: LogicalSlotSpec[]; drop: SlotRow[] } {
  const byName = new Map(have.map((r) => [r.name, r]));
  const create: LogicalSlotSpec[] = [];
  const drop: SlotRow[] = [];
  for (const w of want) {
    const row = byName.get(w.name);
    if (row === undefined) create.push(w);
    else if (row.type === 'logical' && !sameSlot(row, w)) drop.push(row);
  }
  const wanted = new Set(want.map((w) => w.name));
  for (const name of retired) {
    const row = byName.get(name);
    if (row !== undefined && row.type === 'logical' && !wanted.has(name)) drop.push(row);
  }
  return { create, drop };
}

/** Leader: the positions to publish in /status, configured slots and retired ones it still has. */
export function leaderPositions(have: readonly SlotRow[], want: readonly LogicalSlotSpec[], retired: readonly string[]): Record<string, Lsn> {
  const names = new Set([...want.map((w) => w.name), ...retired]);
  const out: Record<string, Lsn> = {};
  for (const r of have) if (r.type === 'logical' && names.has(r.name) && r.confirmedFlush !== null) out[r.name] = r.confirmedFlush;
  return out;
}

export interface StandbyPlan {
  /** Local logical slots to drop (not configured, built otherwise, or ahead of the leader). */
  drop: string[];
  /** Configured slots the leader has and we lack: copy its state file (needs a restart). */
  copy: string[];
  /** Copies behind the leader's published position: advance them to it. */
  advance: Array<{ name: string; database: string; to: Lsn }>;
}

/**
 * Standby: keep a copy of each configured logical slot the leader has, at the position its
 * consumer confirmed there (`published`, from /status). A copy ahead of that position comes
 * from another history (this member was the primary, or the leader changed to a member whose
 * copy was behind): it is dropped and copied again, so that it never skips what the consumer
 * has not confirmed on the current leader.
 */
export function planStandbySlots(have: readonly SlotRow[], want: readonly LogicalSlotSpec[], published: Readonly<Record<string, Lsn>> | null): StandbyPlan {
  const plan: StandbyPlan = { drop: [], copy: [], advance: [] };
  const wanted = new Map(want.map((w) => [w.name, w]));
  const byName = new Map(have.map((r) => [r.name, r]));
  for (const r of have) {
    if (r.type !== 'logical') continue;
    const w = wanted.get(r.name);
    if (w === undefined || !sameSlot(r, w)) { plan.drop.push(r.name); continue; }
    const to = published?.[r.name];
    if (to === undefined || r.confirmedFlush === null) continue;
    if (r.confirmedFlush > to) plan.drop.push(r.name);
    else if (r.confirmedFlush < to) plan.advance.push({ name: r.name, database: w.database, to });
  }
  for (const w of want) {
    const r = byName.get(w.name);
    const dropped = plan.drop.includes(w.name);
    if ((r === undefined || dropped) && published?.[w.name] !== undefined) plan.copy.push(w.name);
  }
  return plan;
}

/** Publications: what to create, re-point (ALTER ... SET TABLE), re-create (all tables <-> a list) and drop. */
export function planPublications(have: readonly PublicationRow[], want: readonly PublicationSpec[]): {
  create: PublicationSpec[]; setTables: PublicationSpec[]; recreate: PublicationSpec[]; drop: PublicationRow[]; mark: PublicationSpec[];
} {
  const out = { create: [] as PublicationSpec[], setTables: [] as PublicationSpec[], recreate: [] as PublicationSpec[], drop: [] as PublicationRow[], mark: [] as PublicationSpec[] };
  const key = (name: string, db: string) => `${db}\u0000${name}`;
  const haveBy = new Map(have.map((h) => [key(h.name, h.database), h]));
  const wantBy = new Set(want.map((w) => key(w.name, w.database)));
  for (const w of want) {
    const h = haveBy.get(key(w.name, w.database));
    if (h === undefined) { out.create.push(w); continue; }
    if (!h.managed) out.mark.push(w); // same name made by hand: the configuration now owns it
    if (h.allTables !== w.allTables) out.recreate.push(w);
    else if (!w.allTables && h.tables.join(',') !== w.tables.join(',')) out.setTables.push(w);
  }
  for (const h of have) if (h.managed && !wantBy.has(key(h.name, h.database))) out.drop.push(h);
  return out;
}

/** A table name as SQL: "schema"."table" (the parts are plain identifiers, checked by the schema). */
export function tableSql(t: string): string {
  return qualifiedTable(t).split('.').map(quoteIdent).join('.');
}

export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
