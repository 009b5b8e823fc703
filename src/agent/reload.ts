// Live reload of the node configuration (SIGHUP, `systemctl reload`, POST /reload-agent): read
// and validate the file again, then apply what can change while running, all at once, and report
// what needs an agent restart without applying any of it. A bad file changes nothing.
import { createSecureContext } from 'node:tls';
import { isDeepStrictEqual } from 'node:util';
import type { ClientTls, ServerTls } from '../api/tls.ts';
import { loadClientTls, loadServerTls } from '../api/tls.ts';
import { loadConfig } from '../config/load.ts';
import type { NodeConfig } from '../config/schema.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';

/** Fields applied live; every other difference needs an agent restart. Dotted prefixes. */
export const LIVE_FIELDS: readonly string[] = [
  'log.level',
  'tags',
  'restapi.authentication',
  'ctl',
  'postgresql.parameters',
  'postgresql.callbacks',
  'postgresql.callback_timeout',
  'postgresql.pre_promote',
  'postgresql.pre_promote_timeout',
  'postgresql.before_stop',
  'postgresql.before_stop_timeout',
  'pgbouncer',
];
/** Live only while the API stays HTTPS (new certificate files; plain HTTP <-> HTTPS needs a restart). */
const TLS_FILES = ['restapi.certfile', 'restapi.keyfile', 'restapi.cafile'];

export interface ConfigDiff {
  /** Changed fields applied live (dotted paths; never values). */
  live: string[];
  /** Changed fields that take effect only after an agent restart. */
  restart: string[];
}

/** Dotted paths of every leaf that differs (arrays compared whole). */
function changedPaths(a: unknown, b: unknown, path: string, out: string[]): void {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) changedPaths(a[k], b[k], path === '' ? k : `${path}.${k}`, out);
    return;
  }
  if (!isDeepStrictEqual(a, b)) out.push(path);
}

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}.`);

/** Pure: which changed fields are live and which need a restart. */
export function diffConfig(old: NodeConfig, next: NodeConfig): ConfigDiff {
  const paths: string[] = [];
  changedPaths(old, next, '', paths);
  const stillHttps = old.restapi.certfile !== undefined && next.restapi.certfile !== undefined;
  const live: string[] = [];
  const restart: string[] = [];
  for (const p of paths) {
    const isLive = LIVE_FIELDS.some((f) => under(p, f)) || (stillHttps && TLS_FILES.includes(p));
    (isLive ? live : restart).push(p);
  }
  return { live, restart };
}

/** Copy the live fields of `next` into the running configuration object, in place. */
export function applyLive(target: NodeConfig, next: NodeConfig): void {
  target.log.level = next.log.level;
  target.tags = next.tags;
  target.restapi.authentication = next.restapi.authentication;
  target.ctl = next.ctl;
  if (target.restapi.certfile !== undefined && next.restapi.certfile !== undefined) {
    target.restapi.certfile = next.restapi.certfile;
    target.restapi.keyfile = next.restapi.keyfile;
    target.restapi.cafile = next.restapi.cafile;
  }
  const pg = target.postgresql;
  const n = next.postgresql;
  pg.parameters = n.parameters;
  target.pgbouncer = next.pgbouncer;
  pg.callbacks = n.callbacks;
  pg.callback_timeout = n.callback_timeout;
  pg.pre_promote = n.pre_promote;
  pg.pre_promote_timeout = n.pre_promote_timeout;
  pg.before_stop = n.before_stop;
  pg.before_stop_timeout = n.before_stop_timeout;
}

export interface ReloadReport {
  ok: boolean;
  applied: string[];
  restart_needed: string[];
  error?: { code?: string; message: string };
}

export interface ReloaderOptions {
  path: string;
  /** The running configuration: every module holds this object and reads it when it acts. */
  config: NodeConfig;
  logger: Logger;
  /** Adjust a freshly read file as the start did (watchdog required: nofailover). */
  adjust?(next: NodeConfig): NodeConfig;
  /** Swap the API server's certificate (https.Server#setSecureContext); absent for plain HTTP. */
  setServerTls?(tls: ServerTls): void;
  /** The TLS of the agent's own calls to other members, updated in place. */
  clientTls: ClientTls;
  /** The loop: publish the new tags and render the new parameters now. */
  wake(): void;
  /** Read the file (tests may replace it); defaults to loadConfig. */
  load?(path: string): Promise<NodeConfig>;
}

export class Reloader {
  readonly #o: ReloaderOptions;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: ReloaderOptions) {
    this.#o = o;
  }

  /** One reload at a time: a second SIGHUP waits for the first. */
  reload(trigger: string): Promise<ReloadReport> {
    const r = this.#chain.then(() => this.#reload(trigger));
    this.#chain = r.catch(() => undefined);
    return r;
  }

  async #reload(trigger: string): Promise<ReloadReport> {
    const { logger, config, path } = this.#o;
    let next: NodeConfig;
    let serverTls: ServerTls | null;
    let clientTls: ClientTls;
    try {
      next = await (this.#o.load ?? loadConfig)(path);
      next = this.#o.adjust?.(next) ?? next;
      // Every file read and checked before anything changes: all or nothing.
      serverTls = config.restapi.certfile !== undefined && next.restapi.certfile !== undefined ? loadServerTls(next, path) : null;
      clientTls = loadClientTls(next, path);
      if (serverTls !== null) createSecureContext({ cert: serverTls.cert, key: serverTls.key, ...(serverTls.ca ? { ca: serverTls.ca } : {}) });
      if (clientTls.cert !== undefined) createSecureContext({ cert: clientTls.cert, key: clientTls.key, ...(clientTls.ca ? { ca: clientTls.ca } : {}) });
    } catch (err) {
      const e = describeError(err);
      logger.error({ event: 'reload failed', trigger, err: e }, `configuration not reloaded; the running configuration stays: ${e.message}`);
      return { ok: false, applied: [], restart_needed: [], error: e };
    }
    const diff = diffConfig(config, next);
    try {
      if (serverTls !== null) this.#o.setServerTls?.(serverTls);
    } catch (err) {
      const e = describeError(err);
      logger.error({ event: 'reload failed', trigger, err: e }, `configuration not reloaded (API certificate): ${e.message}`);
      return { ok: false, applied: [], restart_needed: [], error: e };
    }
    applyLive(config, next);
    const target = this.#o.clientTls;
    delete target.ca; delete target.cert; delete target.key;
    Object.assign(target, clientTls);
    logger.level = config.log.level;
    this.#o.wake();
    logger.info({ event: 'reloaded', trigger, applied: diff.live, restartNeeded: diff.restart, tlsReread: serverTls !== null }, diff.live.length === 0 ? 'configuration reloaded: no live field changed' : `configuration reloaded: applied ${diff.live.join(', ')}`);
    if (diff.restart.length > 0) {
      logger.warn({ event: 'restart needed', fields: diff.restart }, `these changes take effect only after an agent restart (not applied): ${diff.restart.join(', ')}`);
    }
    return { ok: true, applied: diff.live, restart_needed: diff.restart };
  }
}
