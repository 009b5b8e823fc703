// The split-brain guard. A leader arms this timer at "send time of the last acknowledged
// keepalive + TTL - fence_margin". etcd starts a lease's TTL only when it *receives* a keepalive,
// which is after we sent it, so the deadline always falls before etcd can expire the key and let
// another member take it. If the leader has not renewed by then, the timer stops PostgreSQL in
// immediate mode: no client session can keep writing, whatever it set.

/** A watchdog outside this process that enforces the same deadline (see bin/pgha-fencer.pl). */
export interface ExternalFence {
  /** `deadline`: the same deadline on the fence timer's clock (FenceDeps.now), for fences that want it absolute. */
  arm(msFromNow: number, deadline?: number): void;
  disarm(): void;
  /** Paused: the lease is held without a deadline (only the lease witness cares: it keeps confirming). */
  hold?(): void;
}

/** Several external fences (the fencing process, a watchdog device) told the same deadlines. */
export function combineFences(fences: ExternalFence[]): ExternalFence {
  return {
    arm: (ms, deadline) => { for (const f of fences) f.arm(ms, deadline); },
    disarm: () => { for (const f of fences) f.disarm(); },
    hold: () => { for (const f of fences) f.hold?.(); },
  };
}

export interface FenceDeps {
  /** Monotonic clock, ms. */
  now(): number;
  /** Stop PostgreSQL at once. Called at most once per armed deadline. */
  fence(reason: string): Promise<void>;
  /** Paused clusters never fence on their own. */
  paused(): boolean;
  /** The fencing process, when there is one. */
  external?: ExternalFence;
}

export class FenceTimer {
  #timer: NodeJS.Timeout | null = null;
  #deadline: number | null = null;
  readonly #deps: FenceDeps;

  constructor(deps: FenceDeps) {
    this.#deps = deps;
  }

  get deadline(): number | null {
    return this.#deadline;
  }

  /** Arm (or move) the deadline. A later renewal simply re-arms it further out. */
  arm(deadline: number): void {
    this.disarm();
    this.#deadline = deadline;
    const delay = Math.max(0, deadline - this.#deps.now());
    this.#timer = setTimeout(() => void this.#fire(deadline), delay);
    if (this.#deps.paused()) {
      this.#deps.external?.disarm();
      this.#deps.external?.hold?.();
    } else this.#deps.external?.arm(delay, deadline);
  }

  /** No deadline: this member does not run as leader (after a release or a fence). */
  disarm(): void {
    this.#deps.external?.disarm();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#deadline = null;
  }

  async #fire(deadline: number): Promise<void> {
    if (this.#deadline !== deadline) return; // re-armed meanwhile
    this.#timer = null;
    if (this.#deps.paused()) return;
    await this.#deps.fence('lease deadline passed without renewal');
  }
}
