// The pgha agent: `pgha --config /etc/pgha/pgha.yml`. Wires config -> logger -> etcd -> local
// PostgreSQL -> HA loop -> REST API, and hands over cleanly on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { flushCompileCache } from 'node:module';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { registerOpsRoutes } from '../api/ops-routes.ts';
import { buildApi, startApi } from '../api/server.ts';
import { loadConfig } from '../config/load.ts';
import { createEtcdDcs } from '../dcs/etcd.ts';
import { describeError, isPgHaError } from '../errors.ts';
import { createLogger } from '../log/logger.ts';
import { createPostgresControl } from '../postgres/instance.ts';
import { FencerProcess } from './fencer-client.ts';
import { HaLoop } from './loop.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const USAGE = `usage: pgha --config FILE

The pgha agent: runs the local PostgreSQL as primary or standby under a leader key in etcd.
  -c, --config FILE   node configuration (YAML); also PGHA_CONFIG
  -V, --version       print the version
  -h, --help          this help`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, version: { type: 'boolean', short: 'V' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`pgha: ${describeError(err).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (args.version) { process.stdout.write(`pgha ${VERSION}\n`); return 0; }
  const path = args.config ?? process.env.PGHA_CONFIG;
  if (path === undefined) { process.stderr.write(`pgha: --config is required\n${USAGE}\n`); return 2; }
  if (process.getuid?.() === 0) {
    process.stderr.write('pgha: refusing to run as root; run the agent as the postgres OS user (PostgreSQL refuses root too)\n');
    return 2;
  }

  const config = await loadConfig(path);
  const logger = createLogger({ level: config.log.level, name: config.name });
  const dyn = config.bootstrap.dcs;
  const dcs = await createEtcdDcs({
    hosts: config.etcd.hosts, namespace: config.namespace, scope: config.scope, member: config.name,
    ttl: dyn.ttl,
    // Each etcd call may take at most retry_timeout: the loop must still renew before the fence.
    callTimeoutMs: dyn.retry_timeout * 1000,
    ...(config.etcd.username !== undefined && config.etcd.password !== undefined
      ? { auth: { username: config.etcd.username, password: config.etcd.password } } : {}),
    onWarning: (msg, fields) => logger.warn(fields ?? {}, msg),
  });
  let loop: HaLoop | null = null;
  const pg = createPostgresControl({
    config, dynamic: () => loop?.dynamic ?? dyn, logger,
    // A crashed postmaster takes the health connection with it: run the loop now, not up to
    // loop_wait later, so the restart in place (or the failover) starts at once.
    onConnectionLost: () => loop?.wake(),
  });
  // The fencing process enforces the lease deadline even when this event loop is frozen.
  const fencer = new FencerProcess(config.postgresql.data_dir, logger);
  loop = new HaLoop({ config, dcs, pg, logger, now: () => performance.now(), version: VERSION, external: fencer });
  const ha = loop;

  const app = buildApi({
    logger, scope: config.scope, snapshot: () => ha.snapshot(), now: () => performance.now(),
    // A view older than one TTL is stale: by then the leader key may belong to someone else.
    staleAfterMs: () => ha.dynamic.ttl * 1000,
    routes: (a) => registerOpsRoutes(a, {
      config, dcs, fallback: () => ha.dynamic, isLeader: () => ha.isLeader,
      restart: () => ha.restartPostgres(), reload: () => pg.reload(), reinitialize: () => ha.reinitialize(),
      drill: (kind) => (kind === 'kill' ? pg.crash() : pg.stop('immediate')),
    }),
  });
  await startApi(app, config.restapi.listen);
  const stopWatch = await dcs.watchLeader(() => ha.wake());
  ha.start();
  logger.info({ event: 'started', version: VERSION, api: config.restapi.listen }, 'pgha agent started');
  // Every module is loaded by now: write the compile cache (bin/pgha.js) for the next start.
  flushCompileCache();

  return new Promise<number>((resolve) => {
    let closing = false;
    const shutdown = async (signal: string) => {
      if (closing) return;
      closing = true;
      logger.info({ event: 'stopping', signal }, 'shutting down');
      // Order: the API answers 503 from here on (HAProxy drains), the loop stops, a leader stops
      // PostgreSQL and releases its key, then the connections close.
      const apiClosed = app.close();
      stopWatch();
      await ha.shutdown();
      await apiClosed.catch(() => undefined);
      fencer.close();
      await pg.close().catch(() => undefined);
      await dcs.close().catch(() => undefined);
      logger.info({ event: 'stopped' }, 'pgha agent stopped');
      resolve(0);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = describeError(err);
    process.stderr.write(`pgha: ${isPgHaError(err) ? `${err.code}: ` : ''}${e.message}\n`);
    process.exit(1);
  },
);
