// How pghactl finds the cluster: the agent's YAML (-c / PGHA_CONFIG), or --etcd and --scope.
import { dynamicConfigSchema, type DynamicConfig } from '../config/schema.ts';
import { loadClientTls, type ClientTls } from '../api/tls.ts';
import { loadConfig } from '../config/load.ts';
import { createEtcdDcs, type EtcdDcs } from '../dcs/etcd.ts';
import { PgHaError } from '../errors.ts';

export interface GlobalOpts { config?: string; etcd?: string; scope?: string; namespace: string; format: 'table' | 'json' | 'yaml' }

export interface Ctx { dcs: EtcdDcs; scope: string; fallback: DynamicConfig; auth?: { username: string; password: string }; readonly tls?: ClientTls }

export async function connect(o: GlobalOpts): Promise<Ctx> {
  const path = o.config ?? process.env.PGHA_CONFIG;
  if (path !== undefined) {
    const c = await loadConfig(path);
    const dcs = await createEtcdDcs({ hosts: o.etcd?.split(',') ?? c.etcd.hosts, namespace: c.namespace, scope: c.scope, ttl: c.bootstrap.dcs.ttl, callTimeoutMs: 3000 });
    // The agents' API certificates (ctl.cacert/certfile/keyfile, falling back to restapi's), read
    // at the first call to an agent: commands that only read etcd need no access to the key.
    let tls: ClientTls | undefined;
    const clientTls = () => {
      if (tls !== undefined) return tls;
      tls = loadClientTls(c, path, true);
      if (!tls.rejectUnauthorized) process.stderr.write(`pghactl: warning: ctl.insecure is set in ${path}: the agents' certificates are not verified\n`);
      return tls;
    };
    return { dcs, scope: c.scope, fallback: c.bootstrap.dcs, get tls() { return clientTls(); }, ...(c.restapi.authentication ? { auth: c.restapi.authentication } : {}) };
  }
  if (o.etcd === undefined || o.scope === undefined) throw new PgHaError('PGHA_CLI_USAGE', 'give -c/--config FILE (or PGHA_CONFIG), or --etcd HOST:PORT and --scope NAME');
  // A CLI call may wait 3 s for etcd: long enough for a loaded etcd, short for a person.
  const dcs = await createEtcdDcs({ hosts: o.etcd.split(','), namespace: o.namespace, scope: o.scope, ttl: 10, callTimeoutMs: 3000 });
  return { dcs, scope: o.scope, fallback: dynamicConfigSchema.parse({}) };
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
