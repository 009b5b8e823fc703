// Member names and the replication slots named after them. A member's slot name is its name
// lower-cased with every character outside [a-z0-9_] replaced by `_` (slotNameFor, as Patroni
// does), so `Node-1`, `node_1` and `node.1` would share one slot: the leader would keep a single
// slot for two standbys, and whichever streamed second would be refused or hold the other's WAL.
// An agent therefore refuses to start when its slot name equals another member's.
import { PgHaError } from '../errors.ts';
import { slotNameFor } from '../postgres/types.ts';

/** The other members (by name) whose slot name is ours. An identical name is ourselves, not a collision. */
export function slotCollisions(self: string, others: readonly string[]): string[] {
  const mine = slotNameFor(self);
  return others.filter((n) => n !== self && slotNameFor(n) === mine);
}

/** Throws PGHA_NAME_COLLISION when `self` maps to the slot of one of `others`. */
export function assertNoSlotCollision(self: string, others: readonly string[]): void {
  const clash = slotCollisions(self, others);
  if (clash.length === 0) return;
  throw new PgHaError('PGHA_NAME_COLLISION',
    `member name ${self} maps to replication slot ${slotNameFor(self)}, as the name of member ${clash.join(', ')} does: ` +
    'rename this member (name in its configuration file) so that lower-cased, with . and - read as _, it differs from every other member');
}
