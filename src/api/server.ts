// The agent's REST API (fastify 5). Health checks answer from the HA loop's cached snapshot,
// never by querying PostgreSQL per probe; their semantics live in health.ts (pure). Mutating
// endpoints (ops-routes.ts) are guarded by `requireAuth`, an onRequest hook (before any body). Endpoints: docs/rest-api.md.
import { toPatroniState } from '../dcs/patroni.ts';
import { describeError, isPgHaError } from '../errors.ts';
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import Fastify, {
  LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply,
  type FastifyRequest, type FastifySchema,
} from 'fastify';
import { splitHostPort } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import { CHECK_PATHS, READINESS_MODES, REPLICATION_STATES, clusterBody, healthResponse, statusBody, type Check } from './health.ts';
import { parseBasicAuth, type Credentials } from './basic-auth.ts';
import type { Lockout } from './lockout.ts';
import { fastHealth, type FastHandler } from './fast-health.ts';
import { METRICS_CONTENT_TYPE } from './metrics.ts';
import type { ServerTls } from './tls.ts';
import type { ApiDeps } from './types.ts';
import { UI_POLLED_PATHS, registerUi } from './ui.ts';

export interface BuildApiOptions extends ApiDeps {
  logger: Logger;
  /** Cluster name, reported in /status and /cluster. */
  scope: string;
  /** Extra routes (the operations endpoints) registered by the caller. */
  routes?: (app: FastifyInstance) => void;
  /** Serve HTTPS with these (loadServerTls); plain HTTP when absent. */
  https?: ServerTls | null;
  /** onRequest hook refusing mutating calls by address or missing client certificate (accessGuard). */
  access?: ((req: FastifyRequest, reply: FastifyReply) => Promise<unknown>) | null;
  /** GET /metrics body (renderMetrics over the snapshot and counters); no route when absent. */
  metrics?: () => string;
}

/** Paths HAProxy, monitoring, pghactl and the status page poll (HAProxy twice a second per member): never logged. */
export const QUIET_PATHS: ReadonlySet<string> = new Set([...Object.keys(CHECK_PATHS), '/status', '/patroni', '/metrics', ...UI_POLLED_PATHS]);

const pathOf = (url: string) => url.split('?', 1)[0] ?? url;

class ProbeQuietLogController extends LogController {
  constructor() {
    super({ disableRequestLogging: (req: FastifyRequest) => QUIET_PATHS.has(pathOf(req.url)) });
  }
}

export function badRequest(reply: FastifyReply, message: string) {
  return reply.code(400).send({ error: 'PGHA_API_BAD_REQUEST', message });
}

/**
 * A failed request: a PgHaError with the status `statuses` gives its code (503 otherwise: the
 * member cannot do it now), anything else 500 under `fallback`, with its message.
 */
export function replyFailure(reply: FastifyReply, err: unknown, statuses: Partial<Record<string, number>>, fallback: string) {
  if (isPgHaError(err)) return reply.code(statuses[err.code] ?? 503).send({ error: err.code, message: err.message });
  return reply.code(500).send({ error: fallback, message: describeError(err).message });
}

// ---- schemas: query validation, and response shapes (which also fix the serialized fields) ----
const text = { type: 'string', maxLength: 256 } as const;
const orNull = (type: string) => ({ type: [type, 'null'] });
const tagsSchema = { type: ['object', 'null'], additionalProperties: true };
const errorSchema = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } };

const healthQuery = {
  type: 'object',
  properties: {
    lag: text,
    replication_state: { type: 'string', enum: [...REPLICATION_STATES] },
    mode: { type: 'string', enum: [...READINESS_MODES] },
  },
  patternProperties: { '^tag_': text },
};

const statusSchema = {
  type: 'object',
  properties: {
    name: orNull('string'), scope: { type: 'string' }, role: { type: 'string' }, state: { type: 'string' },
    leader: orNull('string'), timeline: orNull('number'),
    xlog: { type: 'object', properties: { location: orNull('number'), received_location: orNull('number'), replayed_location: orNull('number') } },
    replication_state: orNull('string'), lag: orNull('number'), upstream: orNull('string'), tags: tagsSchema,
    pending_restart: { type: 'boolean' }, sync_standby: { type: 'boolean' }, quorum_standby: { type: 'boolean' }, pause: { type: 'boolean' },
    cluster_unlocked: { type: 'boolean' }, database_system_identifier: orNull('string'), last_plan: orNull('string'),
    age_ms: orNull('number'), stale: { type: 'boolean' },
    patroni: { type: 'object', properties: { version: orNull('string'), scope: { type: 'string' }, name: orNull('string') } },
    logical_slots: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' }, plugin: orNull('string'), database: orNull('string'), active: { type: 'boolean' },
          confirmed_flush_lsn: orNull('string'), restart_lsn: orNull('string'), lag_bytes: orNull('number'), leader_confirmed_flush_lsn: orNull('string'),
        },
      },
    },
    archive: { type: ['object', 'null'], additionalProperties: true },
    standby_cluster: { type: 'object', additionalProperties: true },
  },
};

const memberSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' }, role: { type: 'string' }, state: { type: 'string' }, host: orNull('string'),
    port: orNull('number'), api_url: { type: 'string' }, timeline: orNull('number'), lsn: orNull('number'),
    lag: orNull('number'), upstream: orNull('string'), tags: tagsSchema, pending_restart: { type: 'boolean' },
  },
};

const clusterSchema = {
  type: 'object',
  properties: {
    scope: { type: 'string' }, leader: orNull('string'), pause: orNull('boolean'),
    members: { type: 'array', items: memberSchema }, age_ms: orNull('number'), stale: { type: 'boolean' },
    scheduled_switchover: {
      type: ['object', 'null'], properties: { at: { type: 'string' }, from: orNull('string'), to: orNull('string') },
    },
    standby_cluster: { type: 'object', properties: { source: { type: 'string' } } },
  },
};

const healthSchema: FastifySchema = { querystring: healthQuery, response: { 200: statusSchema, 503: statusSchema, 400: errorSchema } };

/** Ajv's errors as one line naming the parameter, e.g. "replication_state: must be equal to one of …". */
function formatSchemaErrors(errors: Array<{ instancePath: string; message?: string; params?: Record<string, unknown> }>, dataVar: string): Error {
  const parts = errors.map((e) => {
    const where = e.instancePath.replace(/^\//, '') || dataVar;
    const allowed = Array.isArray(e.params?.['allowedValues']) ? ` (${(e.params['allowedValues'] as unknown[]).join(', ')})` : '';
    return `${where}: ${e.message ?? 'is not valid'}${allowed}`;
  });
  return new Error(parts.join('; '));
}

// ---- routes ----
function snapshotInput(o: BuildApiOptions) {
  return { snapshot: o.snapshot(), now: o.now(), staleAfterMs: o.staleAfterMs(), scope: o.scope };
}

function registerHealth(app: FastifyInstance, o: BuildApiOptions, path: string, check: Check): void {
  app.route({
    // HAProxy may probe with OPTIONS or HEAD: those answer the status code without a body (as Patroni).
    method: ['GET', 'HEAD', 'OPTIONS'],
    url: path,
    schema: healthSchema,
    handler: async (req, reply) => {
      const r = healthResponse(check, { ...snapshotInput(o), query: req.query as Record<string, unknown> });
      return reply.code(r.status).send(req.method === 'GET' ? r.body : undefined);
    },
  });
}

function registerViews(app: FastifyInstance, o: BuildApiOptions): void {
  const status = async () => {
    const i = snapshotInput(o);
    return statusBody(i.snapshot, i.now, i.staleAfterMs, i.scope);
  };
  app.get('/status', { schema: { response: { 200: statusSchema } } }, status);
  // Patroni's path speaks Patroni's state words ("creating replica", not "cloning"): patronictl
  // reinit --wait polls it until the state is something else. GET /status keeps pgha's words.
  app.get('/patroni', { schema: { response: { 200: statusSchema } } }, async () => {
    const body = await status();
    return body.state === 'unknown' ? body : { ...body, state: toPatroniState(body.state) };
  });
  app.get('/cluster', { schema: { response: { 200: clusterSchema } } }, async () => {
    const i = snapshotInput(o);
    return clusterBody(i.snapshot, i.now, i.staleAfterMs, i.scope);
  });
}

function registerErrors(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    // Schema failures and unparsable bodies: the client's fault, said with a stable code.
    if (err.validation !== undefined || err.statusCode === 400) return badRequest(reply, err.message);
    throw err; // anything else: fastify's default handler (logs it, answers with its status or 500)
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: 'not found', message: `no route ${req.method} ${pathOf(req.url)}` }));
}

/**
 * Limits of the HTTP server. Every route answers from memory or from bounded etcd and PostgreSQL
 * calls, so none of them holds the event loop: a health check never waits behind another request.
 * What a flood of connections could still take is bounded here.
 */
export const HTTP_LIMITS = {
  /** Largest request body (bytes): a whole dynamic config is a few KiB. Larger: 413. */
  bodyLimit: 64 * 1024,
  /** A client has this long (ms) to send its headers: drops slow-header (slowloris) senders. */
  headersTimeoutMs: 5_000,
  /** ... and this long (ms) to send its whole request, body included. */
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection is closed after this long (ms); HAProxy opens one per check. */
  keepAliveTimeoutMs: 5_000,
  /** How often (ms) Node looks for requests past those deadlines (its default is 30 s). */
  checkIntervalMs: 1_000,
  /** Open connections at most; further ones are refused until some close. */
  maxConnections: 512,
} as const;

/**
 * The HTTP or HTTPS server behind fastify, with the limits above (serverFactory). `fast` answers
 * HAProxy's plain health checks before fastify's pipeline (fast-health.ts); the rest goes to fastify.
 */
function serverFactory(tls: ServerTls | undefined, fast: FastHandler) {
  return (fastifyHandler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const limits = {
      requestTimeout: HTTP_LIMITS.requestTimeoutMs, headersTimeout: HTTP_LIMITS.headersTimeoutMs,
      keepAliveTimeout: HTTP_LIMITS.keepAliveTimeoutMs, connectionsCheckingInterval: HTTP_LIMITS.checkIntervalMs,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (!fast(req, res)) fastifyHandler(req, res);
    };
    const server: Server = tls ? https.createServer({ ...tls, ...limits }, handler) : http.createServer(limits, handler);
    server.maxConnections = HTTP_LIMITS.maxConnections;
    return server;
  };
}

/**
 * patronictl (urllib3) sends its JSON bodies without a Content-Type, which fastify refuses (415).
 * Such a body is read as JSON when the request carries no Origin header: browsers send Origin on
 * every cross-origin POST, PUT, PATCH and DELETE, and a browser request without Content-Type
 * needs no CORS preflight, so a page elsewhere cannot use this to send a body with credentials
 * the browser keeps for the API. A browser request without Content-Type still gets 415.
 */
export async function jsonWithoutContentType(req: FastifyRequest): Promise<void> {
  if (req.headers['content-type'] !== undefined || req.headers.origin !== undefined) return;
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
  // Only a request that has a body: an empty one stays without a type (fastify would refuse an empty JSON body).
  const hasBody = (Number(req.headers['content-length'] ?? 0) > 0) || req.headers['transfer-encoding'] !== undefined;
  if (hasBody) req.headers['content-type'] = 'application/json';
}

/** The REST API, not listening yet (tests use app.inject; the daemon calls startApi). */
export function buildApi(o: BuildApiOptions): FastifyInstance {
  // Closing: fastify answers every request 503 (return503OnClosing), so the fast path steps aside.
  let closing = false;
  const fast = fastHealth(() => snapshotInput(o), () => closing);
  const app = Fastify({
    // HTTP or HTTPS (restapi.certfile), with the timeouts and connection cap of HTTP_LIMITS.
    // fastify builds no server of its own then; `https` only makes it name its address https://.
    serverFactory: serverFactory(o.https ?? undefined, fast),
    ...(o.https ? ({ https: o.https } as object) : {}),
    bodyLimit: HTTP_LIMITS.bodyLimit,
    loggerInstance: o.logger as FastifyBaseLogger,
    logController: new ProbeQuietLogController(),
    // While the agent shuts down every request answers 503, so HAProxy takes the member out at once.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    schemaErrorFormatter: formatSchemaErrors,
  });
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  if (o.access) app.addHook('onRequest', o.access);
  app.addHook('onRequest', jsonWithoutContentType);
  registerErrors(app);
  for (const [path, check] of Object.entries(CHECK_PATHS)) registerHealth(app, o, path, check);
  registerViews(app, o);
  registerUi(app);
  const metrics = o.metrics;
  if (metrics !== undefined) {
    app.get('/metrics', async (_req, reply) => reply.type(METRICS_CONTENT_TYPE).send(metrics()));
  }
  o.routes?.(app);
  return app;
}

/** Listen on "host:port" (restapi.listen). */
export async function startApi(app: FastifyInstance, listen: string): Promise<void> {
  const { host, port } = splitHostPort(listen);
  await app.listen({ host, port });
}

// ---- basic auth for the mutating endpoints (header parsing: basic-auth.ts) ----
/** Equal strings, compared in time independent of where they differ and of their lengths (SHA-256 first). */
function safeEqual(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

function credentialsMatch(given: Credentials, want: Credentials): boolean {
  const user = safeEqual(given.username, want.username); // both compared: no early exit on a wrong user
  const pass = safeEqual(given.password, want.password);
  return user && pass;
}

/**
 * An onRequest hook demanding HTTP basic auth: 401 with `WWW-Authenticate: Basic realm="pgha"`
 * when the credentials are missing or wrong. It runs before the body is read or parsed, so an
 * unauthenticated caller never gets a body parsed (nor learns whether it would be valid).
 * Without configured credentials it refuses everything. With a `lockout`, an address that failed
 * too often is refused with 429 for a while, its credentials unchecked (lockout.ts).
 */
export function requireAuth(configured: Credentials | undefined | (() => Credentials | undefined), lockout?: Lockout, clock: () => number = () => performance.now()) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    // A function: read at each request, so a configuration reload changes the credentials.
    const creds = typeof configured === 'function' ? configured() : configured;
    const address = req.socket.remoteAddress ?? 'unknown';
    const wait = lockout?.lockedFor(address, clock()) ?? 0;
    if (wait > 0) {
      return reply.code(429).header('Retry-After', String(Math.ceil(wait / 1000)))
        .send({ error: 'PGHA_API_LOCKED', message: `too many failed authentications from ${address}: try again in ${Math.ceil(wait / 1000)} s` });
    }
    const given = parseBasicAuth(req.headers.authorization);
    if (creds !== undefined && given !== null && credentialsMatch(given, creds)) {
      lockout?.succeeded(address);
      return;
    }
    // Only a wrong user or password counts: a request without credentials guesses nothing.
    if (creds !== undefined && given !== null) lockout?.failed(address, clock());
    const message = creds === undefined
      ? 'restapi.authentication is not configured: this endpoint is refused'
      : 'basic authentication required';
    return reply.code(401).header('WWW-Authenticate', 'Basic realm="pgha"').send({ error: 'PGHA_API_UNAUTHORIZED', message });
  };
}
