// Writes of operator requests to etcd, shared by pghactl and the REST API. A switchover or
// failover request is created only if none is pending; a config edit is a compare-and-set on the
// revision it was computed from (a lost race re-reads); a cancel deletes whatever is pending.
import { parse as parseYaml } from 'yaml';
import { dynamicConfigSchema, replicationCapacityProblem, type DynamicConfig } from '../config/schema.ts';
import { parseDynamicConfig } from '../config/load.ts';
import type { EtcdDcs } from '../dcs/etcd.ts';
import { fromPatroniConfig, toPatroniConfig } from '../dcs/patroni-config.ts';
import { encodeFailover, failoverFromValue } from '../dcs/patroni.ts';
import { PgHaError } from '../errors.ts';
import type { FailoverRequest } from '../ha/types.ts';
import { checkSlotNames, logicalChanged, type LogicalCheck } from '../slots/check.ts';
import { planHandover, type HandoverInput } from './requests.ts';

export async function requestHandover(dcs: EtcdDcs, input: HandoverInput, fallback: DynamicConfig): Promise<FailoverRequest> {
  const view = await dcs.readCluster(fallback);
  const req = planHandover(view, input, Date.now());
  // Patroni leaves `{}` behind after a switchover: a value asking for nothing is replaced (by
  // compare-and-set on its revision); a pending request is not.
  const cur = await dcs.getJson(dcs.keys.failover);
  const pending = cur.value !== undefined && !isEmptyRequest(cur.value);
  if (pending || !(await dcs.putJsonIfRevision(dcs.keys.failover, encodeFailover(req), cur.modRevision))) {
    throw new PgHaError('PGHA_CLI_REFUSED', 'another switchover or failover was requested at the same moment');
  }
  return req;
}

/** Cancel a pending (scheduled) switchover. False when there was none. */
export async function cancelHandover(dcs: EtcdDcs): Promise<boolean> {
  const cur = await dcs.getJson(dcs.keys.failover);
  if (cur.value === undefined) return false;
  await dcs.clearFailover();
  return !isEmptyRequest(cur.value);
}

/** A /failover value that asks for nothing (Patroni's `{}` after a switchover). */
function isEmptyRequest(raw: unknown): boolean {
  const r = failoverFromValue(raw, 0);
  return r.ok && r.value === null;
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
  const top = Object.keys(dynamicConfigSchema.shape).filter((k) => !(k in doc));
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
export async function editConfig(dcs: EtcdDcs, edit: ConfigEdit, fallback: DynamicConfig, source: string, replace = false, check?: LogicalCheck): Promise<{ before: DynamicConfig; after: DynamicConfig }> {
  const view = await dcs.readCluster(fallback);
  const members = view.members.length;
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = await dcs.getJson(dcs.keys.config);
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
    if (await dcs.putJsonIfRevision(dcs.keys.config, toPatroniConfig(after, cur.value), cur.modRevision)) return { before, after };
  }
  throw new PgHaError('PGHA_DCS_CONFLICT', '/config kept changing; try again');
}
