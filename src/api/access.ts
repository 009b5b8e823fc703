// Who may call the mutating REST endpoints (POST, PUT, PATCH, DELETE), checked before basic auth:
// restapi.allowlist (addresses, CIDR networks, host names) plus, with allowlist_include_members,
// the hosts of the members' published API URLs; and with verify_client: optional, a client
// certificate that the TLS layer verified. Health checks and the other GETs are never filtered
// here (as in Patroni): HAProxy and monitoring keep working from anywhere the network allows.
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseAllowlistEntry, type AllowlistEntry, type NodeConfig } from '../config/schema.ts';

export const MUTATING_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** "::ffff:10.0.0.1" (an IPv4 client of a dual-stack socket) is 10.0.0.1. */
export function normalizeAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m?.[1] ?? a;
}

/** Pure: is `remote` inside one of `networks` (addresses and CIDR networks, host names already resolved)? */
export function addressAllowed(remote: string, networks: ReadonlyArray<Extract<AllowlistEntry, { kind: 'net' }>>): boolean {
  const addr = normalizeAddress(remote);
  const family = isIP(addr);
  if (family === 0) return false;
  const list = new BlockList();
  for (const n of networks) list.addSubnet(n.address, n.prefix, n.family);
  return list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
}

/** The host of an API URL ("https://10.0.0.11:8008" -> "10.0.0.11"), null when unparsable. */
export function urlHost(url: string): string | null {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1') || null;
  } catch {
    return null;
  }
}

// A host name is looked up at most once a minute: mutating calls are rare, but the failsafe
// round (a POST per member every loop) must not wait on DNS while etcd is unreachable.
const DNS_CACHE_MS = 60_000;
// One lookup may take a second: a stuck resolver must not hold the failsafe answer past the
// leader's call deadline for long; the name counts as not allowed meanwhile.
const DNS_TIMEOUT_MS = 1000;

export class Allowlist {
  readonly #static: AllowlistEntry[];
  readonly #members: (() => string[]) | null;
  readonly #cache = new Map<string, { at: number; addrs: string[] }>();

  /** `memberUrls` is given when allowlist_include_members is on. */
  constructor(entries: readonly string[], memberUrls: (() => string[]) | null) {
    this.#static = entries.map(parseAllowlistEntry).filter((e): e is AllowlistEntry => e !== null);
    this.#members = memberUrls;
  }

  async #resolve(name: string): Promise<string[]> {
    const hit = this.#cache.get(name);
    if (hit !== undefined && performance.now() - hit.at < DNS_CACHE_MS) return hit.addrs;
    const timeout = new Promise<string[]>((r) => setTimeout(() => r([]), DNS_TIMEOUT_MS).unref());
    const addrs = await Promise.race([lookup(name, { all: true }).then((l) => l.map((a) => a.address), () => []), timeout]);
    this.#cache.set(name, { at: performance.now(), addrs });
    return addrs;
  }

  async allows(remote: string): Promise<boolean> {
    const entries = [...this.#static];
    for (const url of this.#members?.() ?? []) {
      const host = urlHost(url);
      const e = host === null ? null : parseAllowlistEntry(host);
      if (e !== null) entries.push(e);
    }
    const nets = entries.filter((e): e is Extract<AllowlistEntry, { kind: 'net' }> => e.kind === 'net');
    if (addressAllowed(remote, nets)) return true;
    for (const e of entries) {
      if (e.kind !== 'host') continue;
      const addrs = await this.#resolve(e.name);
      if (addrs.some((a) => normalizeAddress(a) === normalizeAddress(remote))) return true;
    }
    return false;
  }
}

function forbidden(reply: FastifyReply, message: string) {
  return reply.code(403).send({ error: 'PGHA_API_FORBIDDEN', message });
}

/**
 * The onRequest hook guarding the mutating endpoints, or null when nothing is configured.
 * `memberUrls`: the API URLs of the members in the agent's last cluster view.
 */
export function accessGuard(r: NodeConfig['restapi'], memberUrls: () => string[]) {
  const tlsOptional = r.certfile !== undefined && r.verify_client === 'optional';
  const list = r.allowlist !== undefined || r.allowlist_include_members
    ? new Allowlist(r.allowlist ?? [], r.allowlist_include_members ? memberUrls : null) : null;
  if (!tlsOptional && list === null) return null;
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (!MUTATING_METHODS.has(req.method)) return;
    // verify_client: optional lets a client without a certificate through the handshake; the
    // mutating endpoints still need one the CA signed (Patroni: "required for unsafe endpoints").
    if (tlsOptional && (req.socket as TLSSocket).authorized !== true) {
      return forbidden(reply, 'a client certificate signed by restapi.cafile is required for this endpoint');
    }
    if (list !== null && !(await list.allows(req.socket.remoteAddress ?? ''))) {
      return forbidden(reply, `${normalizeAddress(req.socket.remoteAddress ?? '?')} is not in restapi.allowlist`);
    }
  };
}
