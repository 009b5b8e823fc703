// Calls to an agent's REST API (the failsafe round, pghactl) over node:http / node:https, not
// fetch: undici's fetch needs WebAssembly (absent under --jitless) and cannot present a client
// certificate without undici's own Agent. The URL's scheme picks the transport; TLS options
// apply to https:// only.
import http from 'node:http';
import https from 'node:https';
import { jsonPostHeaders, type Credentials } from './basic-auth.ts';
import type { ClientTls } from './tls.ts';

export interface ApiRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** JSON body (POST etc.); sent with basic auth when `auth` is given. */
  body?: unknown;
  auth?: Credentials | undefined;
  /** The member the request is meant for (X-Pgha-Member): an agent refuses a request for another. */
  member?: string | undefined;
  tls?: ClientTls | undefined;
  /** Deadline of the whole call (connect, TLS, answer), ms. */
  timeoutMs: number;
}

export interface ApiResponse {
  status: number;
  text: string;
}

/** One request; rejects on a network, TLS or timeout failure, resolves with any HTTP status. */
export function apiRequest(url: string | URL, o: ApiRequest): Promise<ApiResponse> {
  const u = new URL(url);
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  // Basic auth and the target member as for a POST; no content-type without a body.
  const headers = jsonPostHeaders(o.auth, o.member);
  if (body === undefined) delete headers['content-type'];
  const signal = AbortSignal.timeout(o.timeoutMs);
  const base = { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, signal, agent: false as const };
  return new Promise<ApiResponse>((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = u.protocol === 'https:'
      ? https.request(u, { ...base, ...(o.tls ?? {}) }, onResponse)
      : http.request(u, base, onResponse);
    req.on('error', reject);
    req.end(body);
  });
}

/** The parsed JSON answer, or {} when the body is not JSON. */
export function jsonOf(r: ApiResponse): Record<string, unknown> {
  try {
    const v = JSON.parse(r.text) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
