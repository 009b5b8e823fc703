// What the HA decision needs to know about logical replication (pure): is any logical slot or
// publication configured, and which permanent slots are physical. The work itself is in src/slots.
import type { DynamicConfig } from '../config/schema.ts';
import type { ClusterView } from './types.ts';

/** Names of the physical permanent_slots (the leader's physical slot set adds these). */
export function physicalPermanentSlots(cfg: DynamicConfig): string[] {
  return Object.entries(cfg.permanent_slots).filter(([, s]) => s.type === 'physical').map(([n]) => n);
}

/**
 * Logical replication is (or was) managed here: a logical slot or publication is configured, or
 * the leader published logical slot positions (it keeps doing so, empty, after the last one is
 * removed, so that every standby drops its copies).
 */
export function logicalManaged(cfg: DynamicConfig, cluster: ClusterView | null): boolean {
  return Object.values(cfg.permanent_slots).some((s) => s.type === 'logical')
    || Object.keys(cfg.logical.publications).length > 0
    || (cluster?.logicalSlots != null);
}
