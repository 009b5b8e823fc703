// HAProxy's health checks (GET /primary, /replica ... every 250 ms from each listener, 8 a second
// per agent in the shipped configuration) answered by the HTTP server's request handler itself,
// before fastify's request pipeline (routing, hooks, schema validation, reply serialization):
// that pipeline cost about a third of the checks' CPU (docs/performance.md, "Idle footprint").
//
// Only the plainest request is taken: GET or HEAD of a check path exactly, without a query
// string, while the API is not closing. Everything else (a query such as ?lag=, OPTIONS, any
// other path, the 503 of a closing server) goes to fastify as before. The answer is the same as
// fastify's (healthResponse, the same body serialized in the same field order, the same status,
// content type and length; test/unit/fast-health.test.ts compares them byte for byte). TLS and
// the server's limits are the server's, which this runs inside; the access guard only concerns
// mutating methods, which never take this path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CHECK_PATHS, healthResponse, type HealthInput } from './health.ts';

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Answers a plain health check and returns true, or returns false and leaves `req` untouched. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function fastHealth(input: () => Omit<HealthInput, 'query'>, closing: () => boolean): FastHandler {
  return (req, res) => {
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || closing()) return false;
    const url = req.url ?? '';
    const check = Object.hasOwn(CHECK_PATHS, url) ? CHECK_PATHS[url] : undefined;
    if (check === undefined) return false;
    const r = healthResponse(check, { ...input(), query: {} });
    if (r.status === 400) return false; // cannot happen without a query; fastify words it if it did
    res.statusCode = r.status;
    if (method === 'GET') {
      const body = JSON.stringify(r.body);
      res.setHeader('content-type', JSON_CONTENT_TYPE);
      res.setHeader('content-length', Buffer.byteLength(body));
      res.end(body);
    } else {
      res.end(); // no headers: as fastify's reply.send(undefined) on HEAD
    }
    return true;
  };
}
