// The agent's REST API (fastify 5). Health checks answer from the HA loop's cached snapshot,
// never by querying PostgreSQL per probe. Mutating endpoints (later) use `requireAuth`.
import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { splitHostPort } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import { CHECK_PATHS, checkStatus, clusterBody, parseLag, statusBody } from './health.ts';
import type { ApiDeps } from './types.ts';

export interface BuildApiOptions extends ApiDeps {
  logger: Logger;
  scope: string;
  /** Extra routes (operations endpoints) registered by the caller. */
  routes?: (app: FastifyInstance) => void;
}

const QUIET = new Set([...Object.keys(CHECK_PATHS), '/status', '/patroni']);

/** HAProxy probes every member twice a second: keep those requests out of the log. */
class ProbeQuietLogController extends LogController {
  constructor() {
    super({ disableRequestLogging: (req: FastifyRequest) => QUIET.has(req.url.split('?')[0] ?? '') });
  }
}

export function badRequest(reply: FastifyReply, message: string) {
  return reply.code(400).send({ error: 'PGHA_API_BAD_REQUEST', message });
}

export function buildApi(o: BuildApiOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: o.logger as FastifyBaseLogger, logController: new ProbeQuietLogController(), return503OnClosing: true, forceCloseConnections: 'idle' });
  const input = () => ({ snapshot: o.snapshot(), now: o.now(), staleAfterMs: o.staleAfterMs() });

  for (const [path, check] of Object.entries(CHECK_PATHS)) {
    const handler = async (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply) => {
      const q = req.query;
      let maxLag: number | undefined;
      if (q.lag !== undefined) {
        const parsed = parseLag(q.lag);
        if (parsed === null) return badRequest(reply, `lag: "${q.lag}" is not a size such as 1048576, 16MB or 1kB`);
        maxLag = parsed;
      }
      const i = { ...input(), maxLag, replicationState: q.replication_state };
      const code = checkStatus(check, i);
      return reply.code(code).send(req.method === 'HEAD' ? undefined : statusBody(i.snapshot, i.now, i.staleAfterMs, o.scope));
    };
    app.route({ method: ['GET', 'HEAD', 'OPTIONS'], url: path, handler });
  }

  const status = async () => {
    const i = input();
    return statusBody(i.snapshot, i.now, i.staleAfterMs, o.scope);
  };
  app.get('/status', status);
  app.get('/patroni', status);
  app.get('/cluster', async () => clusterBody(o.snapshot(), o.scope));
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'not found', path: req.url }));
  o.routes?.(app);
  return app;
}

export async function startApi(app: FastifyInstance, listen: string): Promise<void> {
  const { host, port } = splitHostPort(listen);
  await app.listen({ host, port });
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A preHandler demanding HTTP basic auth; with no credentials configured it refuses everything. */
export function requireAuth(creds: { username: string; password: string } | undefined) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const h = req.headers.authorization ?? '';
    const decoded = h.startsWith('Basic ') ? Buffer.from(h.slice(6), 'base64').toString('utf8') : '';
    const i = decoded.indexOf(':');
    const ok = creds !== undefined && i > 0 && safeEqual(decoded.slice(0, i), creds.username) && safeEqual(decoded.slice(i + 1), creds.password);
    if (!ok) {
      return reply.code(401).header('WWW-Authenticate', 'Basic realm="pgha"').send({ error: 'PGHA_API_UNAUTHORIZED', message: 'authentication required' });
    }
  };
}
