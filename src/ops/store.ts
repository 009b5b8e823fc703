// Writes of operator requests to etcd, shared by pghactl and the REST API. A switchover or
// failover request is written only if /failover is still at the revision of the view it was
// validated against, so of two concurrent requests one lands and the other gets
// PGHA_DCS_CONFLICT (HTTP 409); a cancel deletes only the request it read; a config edit is a
// compare-and-set on the revision it was computed from (a lost race re-reads).
import { parse as parseYaml } from 'yaml';
import { dynamicConfigSchema, replicationCapacityProblem, type DynamicConfig } from '../config/schema.ts';
import { parseDynamicConfig } from '../config/load.ts';
import { fromPatroniConfig, toPatroniConfig } from '../dcs/patroni-config.ts';
import type { Dcs } from '../dcs/types.ts';
import { PgHaError, isPgHaError } from '../errors.ts';
import type { FailoverRequest } from '../ha/types.ts';
import { checkSlotNames, logicalChanged, type LogicalCheck } from '../slots/check.ts';
import { planHandover, type HandoverInput } from './requests.ts';

export async function requestHandover(dcs: Dcs, input: HandoverInput, fallback: DynamicConfig): Promise<FailoverRequest> {
  const view = await dcs.readCluster(fallback);
  const req = planHandover(view, input, Date.now());
  // planHandover refused a pending request. Patroni leaves `{}` behind after a switchover: a value
  // asking for nothing is replaced; one that cannot be read is not (flush removes it).
  if (view.failoverUnreadable === true) throw new PgHaError('PGHA_CLI_REFUSED', '/failover holds a value pgha cannot read: remove it first (pghactl flush --scheduled)');
  try {
    await dcs.writeFailover(req, view.revisions.failover);
  } catch (err) {
    if (!isPgHaError(err, 'PGHA_DCS_CONFLICT')) throw err;
    throw new PgHaError('PGHA_DCS_CONFLICT', 'another switchover or failover was requested at the same moment: nothing written; pghactl list shows the pending one', { cause: err });
  }
  return req;
}

/** Cancel a pending (scheduled) switchover. False when there was none. */
export async function cancelHandover(dcs: Dcs, fallback: DynamicConfig): Promise<boolean> {
  const view = await dcs.readCluster(fallback);
  if (view.revisions.failover === '0') return false;
  try {
    await dcs.clearFailover(view.revisions.failover);
  } catch (err) {
    if (!isPgHaError(err, 'PGHA_DCS_CONFLICT')) throw err;
    throw new PgHaError('PGHA_DCS_CONFLICT', 'the pending request changed while cancelling it: nothing removed; look again (pghactl list)', { cause: err });
  }
  return view.failover !== null || view.failoverUnreadable === true;
}

/** A change to the dynamic configuration, applied to the current value. */
export type ConfigEdit = (current: Record<string, unknown>) => Record<string, unknown>;

/** Parse "a.b=value" (value as a YAML scalar: numbers, booleans, strings). */
export function parseAssignment(text: string): { path: string[]; value: unknown } {
  const i = text.indexOf('=');
  if (i <= 0) throw new PgHaError('PGHA_CLI_USAGE', `"${text}" is not key=value`);
  const raw = text.slice(i + 1);
  let value: unknown = raw;
  try { value = parseYaml(raw); } catch { /* keep the string */ }
  return { path: text.slice(0, i).split('.'), value: value === null && raw !== 'null' ? raw : value };
}

export function setPath(obj: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined) return obj;
  const copy: Record<string, unknown> = { ...obj };
  if (rest.length === 0) {
    if (value === null) delete copy[head];
    else copy[head] = value;
  } else {
    const child = copy[head];
    copy[head] = setPath(typeof child === 'object' && child !== null ? (child as Record<string, unknown>) : {}, rest, value);
  }
  return copy;
}

/** Deep merge (PATCH semantics): objects merge, null deletes, anything else replaces. */
export function mergePatch(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  let out = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const cur = out[k];
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof cur === 'object' && cur !== null) {
      out = { ...out, [k]: mergePatch(cur as Record<string, unknown>, v as Record<string, unknown>) };
    } else out = setPath(out, [k], v);
  }
  return out;
}

/** Top-level keys and postgresql keys a PUT /config must name: the whole document. */
export function missingForPut(doc: Record<string, unknown>): string[] {
  // standby_cluster: absent means a normal cluster, so a whole document may leave it out.
  const top = Object.keys(dynamicConfigSchema.shape).filter((k) => !(k in doc) && k !== 'standby_cluster');
  const pg = doc['postgresql'];
  const pgKeys = Object.keys(dynamicConfigSchema.shape.postgresql.unwrap().shape);
  const inner = typeof pg === 'object' && pg !== null && !Array.isArray(pg) ? pgKeys.filter((k) => !(k in pg)).map((k) => `postgresql.${k}`) : [];
  return [...top, ...inner];
}

/**
 * Apply `edit` to /config by compare-and-set, re-reading and re-applying on a lost race, so two
 * concurrent editors both land. The result is validated, also against the number of members
 * (replicationCapacityProblem), before anything is written. `replace`: the edit ignores the
 * current value (PUT), so an invalid stored /config can be replaced. An edit of permanent_slots
 * or logical.publications is also checked against the members' slot names and, with `check`,
 * on the leader's PostgreSQL (src/slots/check.ts).
 */
export async function editConfig(dcs: Dcs, edit: ConfigEdit, fallback: DynamicConfig, source: string, replace = false, check?: LogicalCheck): Promise<{ before: DynamicConfig; after: DynamicConfig }> {
  const view = await dcs.readCluster(fallback);
  const members = view.members.length;
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = await dcs.readStoredConfig();
    let before = fallback;
    try {
      if (cur.value !== undefined) before = parseDynamicConfig(fromPatroniConfig(cur.value), 'etcd /config');
    } catch (err) {
      if (!replace) throw err;
    }
    const after = parseDynamicConfig(edit(structuredClone(before) as unknown as Record<string, unknown>), source);
    const problem = replicationCapacityProblem(after, members);
    if (problem !== null) throw new PgHaError('PGHA_CONFIG_INVALID', `${source}: ${problem}`);
    if (logicalChanged(before, after)) {
      checkSlotNames(after, view.members.map((m) => m.name));
      await check?.(after, view);
    }
    // Written in Patroni's format over the stored value: settings only Patroni knows stay.
    try {
      await dcs.writeStoredConfig(toPatroniConfig(after, cur.value), cur.revision);
      return { before, after };
    } catch (err) {
      if (!isPgHaError(err, 'PGHA_DCS_CONFLICT')) throw err; // another editor won: apply the edit to theirs
    }
  }
  throw new PgHaError('PGHA_DCS_CONFLICT', '/config kept changing; try again');
}
