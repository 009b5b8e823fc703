// The pgha agent: `pgha --config /etc/pgha/pgha.yml`. Wires config -> logger -> etcd -> local
// PostgreSQL -> HA loop -> REST API, and hands over cleanly on SIGTERM/SIGINT.
import { existsSync, readFileSync } from 'node:fs';
import type { Server as TlsServer } from 'node:tls';
import { flushCompileCache } from 'node:module';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { registerOpsRoutes } from '../api/ops-routes.ts';
import { registerStandbyRoutes } from '../api/standby-routes.ts';
import { sourceUpstream } from './source-watch.ts';
import { accessGuard } from '../api/access.ts';
import { buildApi, startApi } from '../api/server.ts';
import { loadClientTls, loadServerTls } from '../api/tls.ts';
import { loadConfig, loadPatroniConfig } from '../config/load.ts';
import { checkTlsFiles } from '../config/tls-files.ts';
import { createEtcdDcs, etcdConnection } from '../dcs/etcd.ts';
import { describeError, isPgHaError } from '../errors.ts';
import { createLogger } from '../log/logger.ts';
import { createPostgresControl } from '../postgres/instance.ts';
import { splitHostPort, type NodeConfig } from '../config/schema.ts';
import { LogicalSlots } from '../slots/manager.ts';
import type { Logger } from '../log/logger.ts';
import { CallbackPostgres, Callbacks } from './callbacks.ts';
import { combineFences, type ExternalFence } from './fence.ts';
import { Reloader } from './reload.ts';
import { registerReloadAgentRoute } from '../api/reload-route.ts';
import { registerPoolerRoute } from '../api/pooler-route.ts';
import { Poolers } from '../pooler/poolers.ts';
import { FencerProcess } from './fencer-client.ts';
import { WitnessProcess, witnessStart } from './witness-client.ts';
import { HaLoop, type LoopDeps } from './loop.ts';
import { SystemdNotify } from './sd-notify.ts';
import { renderMetrics } from '../api/metrics.ts';
import { AgentStats, instrumentDcs } from './stats.ts';
import { DeviceWatchdog, checkDevice } from './watchdog-device.ts';
import { BackupAgent } from '../backup/agent.ts';
import { BackupBootstrap, type BootstrapPg } from '../backup/bootstrap.ts';
import { registerBackupRoutes } from '../api/backup-routes.ts';
import { registerRestoreRoute } from '../api/restore-route.ts';
import { RestoreJobs } from '../backup/restore-job.ts';
import { longestTimeoutMs, mayPet } from './watchdog-gate.ts';
import { leaderMember } from '../ha/view.ts';
import { startLeaderMirror } from './leader-mirror.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const USAGE = `usage: pgha --config FILE | --patroni-config FILE

The pgha agent: runs the local PostgreSQL as primary or standby under a leader key in etcd.
  -c, --config FILE   node configuration (YAML); also PGHA_CONFIG
  --patroni-config FILE
                      a Patroni YAML (patroni.yml), converted as pghactl convert-config does;
                      the settings it cannot carry are logged at start
  -V, --version       print the version
  -h, --help          this help`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, 'patroni-config': { type: 'string' }, version: { type: 'boolean', short: 'V' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`pgha: ${describeError(err).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (args.version) { process.stdout.write(`pgha ${VERSION}\n`); return 0; }
  if (args.config !== undefined && args['patroni-config'] !== undefined) { process.stderr.write(`pgha: give --config or --patroni-config, not both\n${USAGE}\n`); return 2; }
  const patroniPath = args['patroni-config'];
  const path = patroniPath ?? args.config ?? process.env.PGHA_CONFIG;
  if (path === undefined) { process.stderr.write(`pgha: --config is required\n${USAGE}\n`); return 2; }
  if (process.getuid?.() === 0) {
    process.stderr.write('pgha: refusing to run as root; run the agent as the postgres OS user (PostgreSQL refuses root too)\n');
    return 2;
  }

  const fromPatroni = patroniPath === undefined ? null : await loadPatroniConfig(patroniPath);
  const load = async (p: string) => (patroniPath === undefined ? loadConfig(p) : (await loadPatroniConfig(p)).config);
  const loaded = fromPatroni?.config ?? await loadConfig(path);
  // PostgreSQL and libpq run as this user: their key-file rules are checked against it.
  checkTlsFiles(loaded, path, process.getuid?.() ?? 0);
  // Certificates are read now, before anything starts: a missing file stops the start with the
  // file, the field and the reason, not the first failsafe round or the first HTTPS probe.
  const serverTls = loadServerTls(loaded, path);
  const clientTls = loadClientTls(loaded, path);
  const logger = createLogger({ level: loaded.log.level, name: loaded.name, scope: loaded.scope, journald: loaded.log.journald_prefix });
  if (fromPatroni !== null && fromPatroni.notCarried.length > 0) {
    // Paths and reasons only, never values (a value may be a password).
    logger.warn({ event: 'patroni config', not_carried: fromPatroni.notCarried }, `${path}: ${fromPatroni.notCarried.length} Patroni setting(s) not carried over (pghactl convert-config lists them)`);
  }
  // Counters for GET /metrics, kept in memory where the work happens.
  const stats = new AgentStats();
  const { config, device } = openWatchdogDevice(loaded, logger, stats);
  const notify = new SystemdNotify({ env: process.env, pid: process.pid, now: () => performance.now(), logger, onPet: () => stats.pet('systemd') });
  if (notify.enabled && !notify.fromMainProcess) {
    logger.warn({ event: 'sd_notify', via: 'systemd-notify' }, 'NOTIFY_SOCKET without PGHA_NOTIFY_FD: notifications come from systemd-notify children, which only NotifyAccess=all accepts; start the agent through bin/notify-socket.pl (systemd/pgha.service)');
  }
  const dyn = config.bootstrap.dcs;
  if (dyn.failsafe_mode && config.restapi.authentication === undefined) {
    // Members refuse every unauthenticated POST, /failsafe included: the leader cannot ride out
    // an etcd leader election or outage and fences at its lease deadline, as with failsafe_mode off.
    logger.warn({ event: 'failsafe', reason: 'no restapi.authentication' }, 'failsafe_mode is on but restapi.authentication is not set: members refuse POST /failsafe, so a leader that loses etcd (even during an etcd leader election) stops PostgreSQL at its lease deadline; set the same restapi.authentication on every member');
  }
  const dcs = instrumentDcs(await createEtcdDcs({
    ...etcdConnection(config.etcd, path),
    namespace: config.namespace, scope: config.scope, member: config.name,
    ttl: dyn.ttl,
    // Each etcd call may take at most retry_timeout: the loop must still renew before the fence.
    callTimeoutMs: dyn.retry_timeout * 1000,
    onWarning: (msg, fields) => logger.warn(fields ?? {}, msg),
  }), stats, () => performance.now());
  // First contact: a TLS or auth misconfiguration ends the agent here (exit 1, the message names
  // the setting and the file) instead of an endless retry; an unreachable etcd is retried by the loop.
  if (config.tags.replicatefrom === config.name) {
    logger.warn({ event: 'replicatefrom_self' }, `${path}: tags.replicatefrom names this member itself: ignored, it streams from the leader`);
  }
  logger.info({ event: 'etcd_check', hosts: config.etcd.hosts, protocol: config.etcd.protocol }, 'checking access to etcd');
  try {
    if (await dcs.checkAccess() === 'unavailable') logger.warn({ event: 'etcd_unavailable' }, 'etcd is unreachable at startup; the HA loop keeps trying');
  } catch (err) {
    logger.error({ event: 'etcd_misconfigured', err: describeError(err) }, 'cannot use etcd with these settings');
    await dcs.close().catch(() => undefined);
    throw err;
  }
  let loop: HaLoop | null = null;
  // Backups (docs/backup.md): pgbackrest.conf is written before PostgreSQL first starts, since
  // archive_command names it.
  const backup = config.backup === undefined ? null : new BackupAgent({ config: { ...config, backup: config.backup }, logger });
  await backup?.prepare();
  // bootstrap.method: pgbackrest: a new cluster's first member restores instead of initdb.
  const bootFromBackup = backup === null || config.bootstrap.method !== 'pgbackrest' ? null
    : new BackupBootstrap({ config: backup.config, logger, configPath: path });
  // Callbacks read the live configuration (a reload changes them): docs/callbacks.md.
  const callbacks = new Callbacks({ config: () => config, logger });
  const pg = new CallbackPostgres(createPostgresControl({
    config, configPath: path, dynamic: () => loop?.dynamic ?? dyn, logger,
    // A crashed postmaster takes the health connection with it: run the loop now, not up to
    // loop_wait later, so the restart in place (or the failover) starts at once.
    onConnectionLost: () => loop?.wake(),
    ...(backup === null ? {} : { extraParameters: () => backup.parameters() }),
    ...(backup?.replicaFromBackup === true ? { restoreReplica: () => backup.restoreReplica(), deltaRestore: (id: string) => backup.deltaRestore(id) } : {}),
    ...(bootFromBackup === null ? {} : { bootstrapRestore: (p: BootstrapPg) => bootFromBackup.run(p) }),
  }), callbacks);
  let fatal: ((err: Error) => void) | null = null;
  // The fencing process enforces the lease deadline even when this event loop is frozen. If it
  // cannot be kept running, PostgreSQL stops at once (a leader must not run without it) and the
  // agent exits (fencer-client.ts); systemd starts it again with a new fencing process.
  const fencer = new FencerProcess({
    dataDir: config.postgresql.data_dir, logger,
    onLost: (err) => {
      logger.error({ event: 'fencer lost', err: describeError(err) }, 'the fencing process cannot be kept running: stopping PostgreSQL now');
      void pg.stop('immediate').catch(() => undefined).finally(() => (fatal === null ? process.exit(1) : fatal(err)));
    },
  });
  const witness = config.postgresql.lease_witness ? new WitnessProcess({ start: witnessStart(config), logger, now: () => performance.now() }) : null;
  const external: ExternalFence = combineFences([fencer, ...(device === null ? [] : [device]), ...(witness === null ? [] : [witness])]);
  const su = config.postgresql.authentication.superuser;
  const logical = new LogicalSlots({
    local: { host: config.postgresql.socket_dir, port: splitHostPort(config.postgresql.listen).port, user: su.username, password: su.password },
    pg, logger, now: () => performance.now(),
  });
  // The poolers read the live configuration (pgbouncer is applied on reload).
  const poolers = new Poolers({
    config: () => config, logger,
    leaderConn: () => leaderMember(loop?.view)?.conn ?? null,
  });
  loop = new HaLoop({
    config, dcs, pg, logger, logical, poolers, now: () => performance.now(), version: VERSION, external, apiTls: clientTls, stats, prePromote: () => callbacks.prePromote(), ...watchdogBeat(notify, device, () => loop?.dynamic ?? dyn, logger),
    fatal: (err) => fatal?.(err),
    ...(backup === null ? {} : { backup }),
  });
  const ha = loop;
  // vip-manager 1.x reads etcd v2 only: a copy of the leader key there (docs/vip-manager.md).
  const mirror = startLeaderMirror(config, path, logger, {
    leaseLeftMs: () => {
      const d = ha.fence.deadline;
      return ha.isLeader && d !== null ? d - performance.now() : null;
    },
  });
  // /status carries the archive health next to the loop's snapshot.
  const snapshot = () => {
    const s = ha.snapshot();
    return s === null || backup === null ? s : { ...s, archive: backup.health() };
  };

  const app = buildApi({
    logger, scope: config.scope, snapshot, now: () => performance.now(),
    https: serverTls,
    access: accessGuard(config.restapi, () => ha.snapshot()?.cluster?.members.map((m) => m.apiUrl) ?? []),
    // A view older than one TTL is stale: by then the leader key may belong to someone else.
    staleAfterMs: () => ha.dynamic.ttl * 1000,
    metrics: () => renderMetrics({
      scope: config.scope, name: config.name, version: VERSION, snapshot: ha.snapshot(), now: performance.now(),
      staleAfterMs: ha.dynamic.ttl * 1000, leaseDeadline: ha.fence.deadline, stats,
    }),
    routes: (a) => registerOpsRoutes(a, {
      config, dcs, fallback: () => ha.dynamic, isLeader: () => ha.isLeader, view: () => ha.view, history: () => dcs.cachedHistory(),
      restart: () => pg.restart(() => ha.restartPostgres()), reload: () => pg.reload(), reinitialize: () => ha.reinitialize(),
      drill: (kind) => (kind === 'kill' ? pg.crash() : pg.stop('immediate')),
      failsafe: (leader, ttl) => ha.answerFailsafe(leader, ttl),
    }),
  });
  registerStandbyRoutes(app, {
    config, dcs, fallback: () => ha.dynamic, view: () => ha.view,
    readSource: (sc) => pg.readSource(sourceUpstream(sc)),
    local: () => ({ startedAt: ha.snapshot()?.postgres?.postmasterStart ?? null, systemId: ha.snapshot()?.systemId ?? null }),
  });
  registerPoolerRoute(app, { member: config.name, poolers });
  registerBackupRoutes(app, { config, backup, isLeader: () => ha.isLeader, view: () => ha.view, logger });
  // Whole-cluster restore (docs/backup.md#pghactl-restore): its job runs beside the loop, never in it.
  const restoreJobs = backup === null ? null : new RestoreJobs({
    config: backup.config, pg, dcs, logger, enqueue: (name, fn) => ha.enqueue(name, async () => { await fn(); return { outcomes: [] }; }), promoted: () => backup.promoted(),
  });
  registerRestoreRoute(app, {
    config, dcs, backup, jobs: restoreJobs, isLeader: () => ha.isLeader, paused: () => ha.dynamic.pause,
    stopPostgres: () => ha.enqueue('restore: stop PostgreSQL', async () => { await pg.stop('fast'); return { outcomes: [] }; }),
  });
  registerReloadAgentRoute(app, { member: config.name, auth: () => config.restapi.authentication, reload: () => reloader.reload('POST /reload-agent') });
  // watchdog.mode required without a usable device made this member nofailover: a reload keeps that.
  const forcedNofailover = config !== loaded;
  const reloader = new Reloader({
    path, config, logger, clientTls, wake: () => ha.wake(), load,
    ...(forcedNofailover ? { adjust: (n: NodeConfig) => ({ ...n, tags: { ...n.tags, nofailover: true } }) } : {}),
    ...(serverTls === null ? {} : { setServerTls: (t) => (app.server as unknown as TlsServer).setSecureContext({ cert: t.cert, key: t.key, ...(t.ca ? { ca: t.ca } : {}) }) }),
  });
  await startApi(app, config.restapi.listen);
  // Before READY=1, so `systemctl reload` never meets Node's default SIGHUP action (exit).
  process.on('SIGHUP', () => void reloader.reload('SIGHUP'));
  const stopWatch = await dcs.watchLeader(() => ha.wake());
  ha.start();
  backup?.startWatching();
  notify.ready();
  logger.info({ event: 'started', version: VERSION, api: config.restapi.listen, tls: serverTls !== null, verifyClient: config.restapi.verify_client, watchdog: { systemdMs: notify.watchdogMs, device: device !== null } }, 'pgha agent started');
  // Every module is loaded by now: write the compile cache (bin/pgha.js) for the next start.
  flushCompileCache();

  return new Promise<number>((resolve) => {
    let closing = false;
    const shutdown = async (signal: string, code = 0) => {
      if (closing) return;
      closing = true;
      logger.info({ event: 'stopping', signal }, 'shutting down');
      // Order: the API answers 503 from here on (HAProxy drains), the loop stops, a leader stops
      // PostgreSQL and releases its key, then the connections close.
      const apiClosed = app.close();
      stopWatch();
      await ha.shutdown();
      await mirror?.stop();
      backup?.stop();
      // on_stop was just fired: let it finish (systemd's KillMode=mixed kills what is left once
      // the agent exits). The key is released already, so this delays nobody's failover; at most
      // callback_timeout, capped at 30 s to stay well inside TimeoutStopSec (120 s).
      if (!(await callbacks.drain(Math.min(config.postgresql.callback_timeout, 30) * 1000))) {
        logger.warn({ event: 'callback', callback: 'on_stop' }, 'callbacks still running at exit');
      }
      await apiClosed.catch(() => undefined);
      fencer.close();
      witness?.close();
      await pg.close().catch(() => undefined);
      await dcs.close().catch(() => undefined);
      logger.info({ event: 'stopped' }, 'pgha agent stopped');
      resolve(code);
    };
    fatal = (err) => {
      logger.error({ event: 'fatal', err: describeError(err) }, `stopping the agent: ${err.message}`);
      void shutdown('fatal', 1);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
  });
}

/**
 * watchdog.mode: automatic uses the device if it passes checkDevice; required also makes this
 * member nofailover (it never becomes the leader) when it does not.
 */
function openWatchdogDevice(config: NodeConfig, logger: Logger, stats: AgentStats): { config: NodeConfig; device: DeviceWatchdog | null } {
  const w = config.watchdog;
  if (w.mode === 'off') return { config, device: null };
  const c = checkDevice(w, config.bootstrap.dcs);
  if (c.ok && c.timeoutMs !== null) {
    const device = new DeviceWatchdog({ device: w.device, timeoutMs: c.timeoutMs, safetyMs: w.safety_margin * 1000, fenceMarginMs: () => config.bootstrap.dcs.fence_margin * 1000, logger, onPet: () => stats.pet('device') });
    logger.info({ event: 'watchdog', device: w.device, timeoutMs: c.timeoutMs }, `using watchdog device ${w.device} while leading`);
    return { config, device };
  }
  if (w.mode === 'required') {
    logger.error({ event: 'watchdog', err: { code: 'PGHA_WATCHDOG_UNAVAILABLE', message: c.reason } }, `watchdog required but unavailable (${c.reason}): this member will not become the leader`);
    return { config: { ...config, tags: { ...config.tags, nofailover: true } }, device: null };
  }
  if (existsSync(w.device)) logger.warn({ event: 'watchdog', reason: c.reason }, `not using ${w.device}: ${c.reason}`);
  return { config, device: null };
}

/**
 * The HA loop's heartbeat to the watchdogs. systemd's WatchdogSec: WATCHDOG=1 while the lease
 * allows, firing at latest halfway through fence_margin, i.e. after the agent's own fence and
 * the fencing process. The device: keepalives while leading, under its own safety_margin.
 */
function watchdogBeat(notify: SystemdNotify, device: DeviceWatchdog | null, dynamic: () => { ttl: number; retry_timeout: number; fence_margin: number }, logger: Logger): Pick<LoopDeps, 'alive'> {
  const w = notify.watchdogMs;
  if (w === null && device === null) return {};
  const safety = () => dynamic().fence_margin * 500;
  const max = longestTimeoutMs(dynamic(), safety());
  if (w !== null && w > max) logger.warn({ event: 'watchdog', watchdogMs: w, maxMs: max }, `WatchdogSec (${w} ms) is longer than ttl - retry_timeout - fence_margin/2 (${max} ms): a healthy leader may be stopped by systemd`);
  return {
    alive: {
      // A quarter of the shorter timeout: three beats may be lost before either fires.
      everyMs: Math.max(100, Math.min(w ?? Infinity, device?.timeoutMs ?? Infinity) / 4),
      beat: (deadline) => {
        const now = performance.now();
        if (w !== null && mayPet({ now, leaseDeadline: deadline, timeoutMs: w, fenceMarginMs: dynamic().fence_margin * 1000, safetyMs: safety() })) notify.pet();
        device?.beat(now, deadline);
      },
    },
  };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = describeError(err);
    process.stderr.write(`pgha: ${isPgHaError(err) ? `${err.code}: ` : ''}${e.message}\n`);
    process.exit(1);
  },
);
