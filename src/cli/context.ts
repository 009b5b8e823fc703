// How pghactl finds the cluster: the agent's YAML (-c / PGHA_CONFIG), or --etcd and --scope (with
// --etcd-cacert/--etcd-cert/--etcd-key for TLS), or else /etc/pgha/pgha.yml when it exists. The
// YAML's etcd TLS settings and username/password are used as the agent uses them.
import { existsSync } from 'node:fs';
import { dynamicConfigSchema, etcdSchema, type DynamicConfig } from '../config/schema.ts';
import { loadClientTls, type ClientTls } from '../api/tls.ts';
import { formatZodIssues, loadConfig } from '../config/load.ts';
import { createEtcdDcs, etcdConnection } from '../dcs/etcd.ts';
import type { Dcs } from '../dcs/types.ts';
import { PgHaError } from '../errors.ts';
import type { Format } from './format.ts';

export interface GlobalOpts {
  config?: string; etcd?: string; scope?: string; namespace: string; format: Format;
  etcdCacert?: string; etcdCert?: string; etcdKey?: string;
}

export interface Ctx { dcs: Dcs; scope: string; fallback: DynamicConfig; auth?: { username: string; password: string }; readonly tls?: ClientTls }

/** A CLI call may wait 3 s for etcd: long enough for a loaded etcd, short for a person. */
const CLI_CALL_MS = 3000;

/** Where the agent's YAML is when neither -c, PGHA_CONFIG nor --etcd says otherwise. */
export const DEFAULT_CONFIG_PATH = '/etc/pgha/pgha.yml';

/** The agent YAML to read: -c, else PGHA_CONFIG, else DEFAULT_CONFIG_PATH if it exists and --etcd is not given. */
export function configPath(o: Pick<GlobalOpts, 'config' | 'etcd'>, env: NodeJS.ProcessEnv = process.env, exists: (p: string) => boolean = existsSync): string | undefined {
  if (o.config !== undefined) return o.config;
  if (env['PGHA_CONFIG'] !== undefined && env['PGHA_CONFIG'] !== '') return env['PGHA_CONFIG'];
  return o.etcd === undefined && exists(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined;
}

export async function connect(o: GlobalOpts): Promise<Ctx> {
  const path = configPath(o);
  let ctx: Ctx;
  if (path !== undefined) {
    const c = await loadConfig(path);
    const conn = etcdConnection(c.etcd, path);
    // --etcd overrides the hosts only; the scheme still comes from the YAML unless given.
    const hosts = o.etcd === undefined ? conn.hosts : o.etcd.split(',');
    const dcs = await createEtcdDcs({ ...conn, hosts, namespace: c.namespace, scope: c.scope, ttl: c.bootstrap.dcs.ttl, callTimeoutMs: CLI_CALL_MS });
    // The agents' API certificates (ctl.cacert/certfile/keyfile, falling back to restapi's), read
    // at the first call to an agent: commands that only read etcd need no access to the key.
    let tls: ClientTls | undefined;
    const clientTls = () => {
      if (tls !== undefined) return tls;
      tls = loadClientTls(c, path, true);
      if (!tls.rejectUnauthorized) process.stderr.write(`pghactl: warning: ctl.insecure is set in ${path}: the agents' certificates are not verified\n`);
      return tls;
    };
    ctx = { dcs, scope: c.scope, fallback: c.bootstrap.dcs, get tls() { return clientTls(); }, ...(c.restapi.authentication ? { auth: c.restapi.authentication } : {}) };
  } else {
    if (o.etcd === undefined || o.scope === undefined) throw new PgHaError('PGHA_CLI_USAGE', `give -c/--config FILE (or PGHA_CONFIG, or put it at ${DEFAULT_CONFIG_PATH}), or --etcd HOST:PORT and --scope NAME`);
    const source = 'pghactl --etcd* options';
    const tlsFlags = o.etcdCacert !== undefined || o.etcdCert !== undefined || o.etcdKey !== undefined;
    const r = etcdSchema.safeParse({
      hosts: o.etcd,
      // A TLS file given on the command line means https (a scheme in --etcd still has the last word).
      ...(tlsFlags && !o.etcd.includes('://') ? { protocol: 'https' } : {}),
      ...(o.etcdCacert === undefined ? {} : { cacert: o.etcdCacert }),
      ...(o.etcdCert === undefined ? {} : { cert: o.etcdCert }),
      ...(o.etcdKey === undefined ? {} : { key: o.etcdKey }),
    });
    if (!r.success) throw new PgHaError('PGHA_CLI_USAGE', formatZodIssues(r.error.issues.map((i) => ({ ...i, path: ['etcd', ...i.path] })), source));
    const dcs = await createEtcdDcs({ ...etcdConnection(r.data, source), namespace: o.namespace, scope: o.scope, ttl: 10, callTimeoutMs: CLI_CALL_MS });
    ctx = { dcs, scope: o.scope, fallback: dynamicConfigSchema.parse({}) };
  }
  // A TLS or auth mistake is reported as such (PGHA_DCS_TLS / PGHA_DCS_AUTH), not as "unavailable".
  try {
    await ctx.dcs.checkAccess();
  } catch (err) {
    await ctx.dcs.close();
    throw err;
  }
  return ctx;
}

/** Connect, run `fn`, and always close the etcd client. */
export async function withCtx<T>(o: GlobalOpts, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const ctx = await connect(o);
  try {
    return await fn(ctx);
  } finally {
    await ctx.dcs.close();
  }
}
