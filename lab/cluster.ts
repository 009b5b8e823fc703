// The one interface every lab cluster offers (loopback: lab/loopback.ts; network namespaces:
// lab/chaos/cluster.ts; nspawn containers with systemd: lab/chaos/nspawn-cluster.ts and
// lab/nspawn.ts), and the one definition of "the cluster is healthy" on top of it.
//
// Healthy means: exactly one member answers 200 on its agent's GET /primary (it runs PostgreSQL
// as a primary and holds the leader key), and every other member (or `standbys` of them) answers
// 200 on GET /replica?replication_state=streaming (a running standby whose WAL receiver streams).
// Options cover the checks that legitimately differ between callers; see HealthyOptions.
import { waitFor } from './util.ts';

export interface LabNode { readonly name: string }

export interface Cluster<N extends LabNode = LabNode> {
  readonly nodes: readonly N[];
  /** The HTTP status of a GET on `n`'s REST API (TLS when the cluster's API uses it); 0 without an answer. */
  probe(n: N, path: string): Promise<number>;
  /** The rows of one statement on `n`'s PostgreSQL (as the superuser, database postgres). */
  rows<T = Record<string, unknown>>(n: N, sql: string, timeoutMs?: number): Promise<T[]>;
}

export interface HealthyOptions<N extends LabNode = LabNode> {
  /** How many standbys must stream; default every member but the primary. */
  standbys?: number;
  /**
   * false: a standby need only answer 200 on GET /replica (running, following the leader), not
   * be streaming yet: the demo's "up" before it prints how to connect. Default true.
   */
  streaming?: boolean;
  /**
   * Also ask the primary's pg_stat_replication for that many streaming walsenders: the chaos
   * suite's check that the primary itself sees its standbys (a standby's /replica answers from its
   * own WAL receiver). Default false.
   */
  primarySeesStandbys?: boolean;
  /** The primary must not be this member (after a failover or switchover away from it). */
  not?: N;
  /** A last check on the found primary (e.g. that `pghactl list` agrees); healthy only when it holds. */
  also?: (primary: N) => Promise<boolean>;
}

/** The nodes that answer 200 on GET /primary. */
export async function primaries<N extends LabNode>(c: Cluster<N>): Promise<N[]> {
  const codes = await Promise.all(c.nodes.map((n) => c.probe(n, '/primary')));
  return c.nodes.filter((_, i) => codes[i] === 200);
}

/** The primary of a healthy cluster (see the top of this file), or null. */
export async function healthy<N extends LabNode>(c: Cluster<N>, o: HealthyOptions<N> = {}): Promise<N | null> {
  const ps = await primaries(c);
  if (ps.length !== 1) return null;
  const p = ps[0]!;
  if (o.not !== undefined && p === o.not) return null;
  const want = o.standbys ?? c.nodes.length - 1;
  const path = o.streaming === false ? '/replica' : '/replica?replication_state=streaming';
  const codes = await Promise.all(c.nodes.filter((n) => n !== p).map((n) => c.probe(n, path)));
  // Exactly `want`: a test that stopped one standby waits for the others, not for a third.
  if (codes.filter((code) => code === 200).length !== want) return null;
  if (o.primarySeesStandbys === true) {
    const rows = await c.rows<{ n: number }>(p, "select count(*)::int as n from pg_stat_replication where state = 'streaming'");
    if ((rows[0]?.n ?? 0) < want) return null;
  }
  if (o.also !== undefined && !(await o.also(p))) return null;
  return p;
}

/** Poll healthy() every `intervalMs` (default 200) until it holds; the primary. Throws after `timeoutMs`. */
export async function waitHealthy<N extends LabNode>(c: Cluster<N>, timeoutMs: number, o: HealthyOptions<N> & { intervalMs?: number } = {}): Promise<N> {
  const standbys = o.standbys ?? c.nodes.length - 1;
  const what = `a healthy cluster (one primary${o.not === undefined ? '' : ` other than ${o.not.name}`}, ${standbys} ${o.streaming === false ? '' : 'streaming '}standbys)`;
  return waitFor(what, () => healthy(c, o), timeoutMs, o.intervalMs ?? 200);
}
