// The member a mutating REST request is meant for. A member that publishes a wrong address (a
// wildcard, a loopback address, a stale DNS name) sends pghactl and the other members to another
// agent: `pghactl reinit node2` would then wipe whichever member answers. So every caller of
// pgha's own (pghactl, the failsafe leader) names its target in the X-Pgha-Member header, and an
// agent answers 421 (Misdirected Request) when it is not the member named. Member-scoped
// operations (restart, reload, reinitialize, drill) require the header; on the other mutating
// endpoints (cluster-wide, or agent-to-agent) it is checked when present, so that older callers
// and Patroni-style clients keep working there.
// patronictl (restart, reinit) sends no such header; it calls the address the member published,
// and names it in the Host header. A member-scoped request without X-Pgha-Member is accepted when
// that Host is this agent's own published REST address and no other member publishes the same
// one: the published address then leads here and only here. A duplicated or foreign address
// (the misdirection the header guards against) is still refused.
import type { FastifyReply, FastifyRequest } from 'fastify';

export const MEMBER_HEADER = 'x-pgha-member';

/** This agent's published REST address (host:port) and those of the other members, as last read from etcd. */
export interface PublishedAddresses {
  own: string;
  others: string[];
}

/** Patroni-style call: Host names our published address, which no other member publishes. */
export function hostIsOnlyUs(host: string | undefined, a: PublishedAddresses | null): boolean {
  return a !== null && host !== undefined && host.toLowerCase() === a.own.toLowerCase() && !a.others.some((o) => o.toLowerCase() === a.own.toLowerCase());
}

/**
 * A preHandler: 421 PGHA_API_WRONG_MEMBER when the request names another member; with `required`,
 * 400 when it names none, unless it came to our own unique published address (hostIsOnlyUs).
 */
export function requireTargetMember(self: string, required: boolean, published: () => PublishedAddresses | null = () => null) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const raw = req.headers[MEMBER_HEADER];
    const named = raw === undefined ? [] : (Array.isArray(raw) ? raw : [raw]).flatMap((v) => v.split(',')).map((v) => v.trim());
    if (named.length === 0) {
      if (!required || hostIsOnlyUs(req.headers.host, published())) return;
      return reply.code(400).send({ error: 'PGHA_API_BAD_REQUEST', message: `name the target member in the X-Pgha-Member header (this agent is ${self}): nothing done` });
    }
    if (named.every((n) => n === self)) return;
    return reply.code(421).send({ error: 'PGHA_API_WRONG_MEMBER', message: `this agent is ${self}, not ${named.filter((n) => n !== self).join(', ')}: nothing done (check that member's restapi.connect_address)` });
  };
}
