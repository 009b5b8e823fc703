// HTTP basic authentication on both sides of the REST API: the header a caller sends (pghactl,
// and a leader asking members to confirm it in failsafe mode) and its parsing by the agent.

import { MEMBER_HEADER } from './target-member.ts';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Headers of a JSON POST to an agent, with `Authorization: Basic …` when credentials are
 * configured, and `X-Pgha-Member` naming the member the request is meant for (target-member.ts).
 */
export function jsonPostHeaders(auth: Credentials | undefined, member?: string): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (member !== undefined) headers[MEMBER_HEADER] = member;
  if (auth !== undefined) headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  return headers;
}

/** The user and password of an `Authorization: Basic …` header (scheme case-insensitive); null if absent or malformed. */
export function parseBasicAuth(header: string | undefined): Credentials | null {
  const m = header === undefined ? null : /^basic +([A-Za-z0-9+/]+=*) *$/i.exec(header);
  if (m === null || m[1] === undefined) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? null : { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}
