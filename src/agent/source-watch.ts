// standby_cluster: the agent's view of the source cluster, read in the background so that an
// unreachable source (connect timeouts of seconds) never holds the HA loop, which must renew the
// leader key every loop_wait. The loop takes the latest reading; decide() sees it as
// Observation.source (src/ha/standby.ts).
import { sourceHosts, type StandbyClusterConfig } from '../config/schema.ts';
import { SOURCE_UPSTREAM } from '../ha/standby.ts';
import type { SourceState } from '../ha/types.ts';
import type { Upstream } from '../postgres/types.ts';

/** Between two reads (ms): a source failover is seen within a second, at one psql per second. */
export const SOURCE_POLL_MS = 1000;
/**
 * A reading older than this counts as none (ms): 10 s covers a read that waits out the connect
 * timeouts of a three-host list (2 s each) and its statement, with room to spare.
 */
export const SOURCE_STALE_MS = 10_000;

/** The source as an Upstream (the replication steps and primary_conninfo take this). */
export function sourceUpstream(sc: StandbyClusterConfig): Upstream {
  const first = sourceHosts(sc)[0];
  return { name: SOURCE_UPSTREAM, conn: `${first?.host ?? ''}:${first?.port ?? 5432}`, source: sc };
}

export class SourceWatch {
  #key = '';
  #last: { state: SourceState; at: number } | null = null;
  #busy = false;
  readonly #read: (up: Upstream) => Promise<SourceState>;
  readonly #now: () => number;

  constructor(read: (up: Upstream) => Promise<SourceState>, now: () => number) {
    this.#read = read;
    this.#now = now;
  }

  /** The latest reading for `sc` (null: none yet, or stale); starts the next read when due. */
  current(sc: StandbyClusterConfig): SourceState | null {
    const key = JSON.stringify(sc);
    if (key !== this.#key) { this.#key = key; this.#last = null; }
    const t = this.#now();
    if (!this.#busy && (this.#last === null || t - this.#last.at >= SOURCE_POLL_MS)) {
      this.#busy = true;
      void this.#read(sourceUpstream(sc))
        .then((state) => { if (this.#key === key) this.#last = { state, at: this.#now() }; })
        .finally(() => { this.#busy = false; });
    }
    return this.#last !== null && t - this.#last.at < SOURCE_STALE_MS ? this.#last.state : null;
  }

  /** Read now and wait (the REST API's promote/demote checks). */
  async readNow(sc: StandbyClusterConfig): Promise<SourceState> {
    return this.#read(sourceUpstream(sc));
  }
}
