// A modest brake on password guessing against the mutating REST endpoints: after
// FAILURES_PER_LOCK wrong passwords (or users) in a row from one source address, that address is
// refused (429, credentials not even checked) for a while, doubling each time up to MAX_LOCK_MS.
// A success resets the address. Pure: the clock is passed in.

/** Failed attempts in a row that lock an address. */
export const FAILURES_PER_LOCK = 5;
/** The first lock lasts this long (ms); each further one doubles. */
export const FIRST_LOCK_MS = 1_000;
/** Longest lock (ms): one minute keeps an operator who mistyped from waiting long. */
export const MAX_LOCK_MS = 60_000;
/** An address idle this long (ms) is forgotten. */
const FORGET_AFTER_MS = 10 * 60_000;
/** Addresses remembered at most (the oldest is dropped): bounds the memory a flood can take. */
const MAX_ADDRESSES = 10_000;

interface Entry { failures: number; locks: number; lockedUntil: number; lastSeen: number }

export class Lockout {
  readonly #entries = new Map<string, Entry>();

  /** ms the address must still wait; 0 when it may try. */
  lockedFor(address: string, now: number): number {
    const e = this.#entries.get(address);
    if (e === undefined) return 0;
    if (now - e.lastSeen > FORGET_AFTER_MS && now >= e.lockedUntil) {
      this.#entries.delete(address);
      return 0;
    }
    return Math.max(0, e.lockedUntil - now);
  }

  failed(address: string, now: number): void {
    const e = this.#entries.get(address) ?? { failures: 0, locks: 0, lockedUntil: 0, lastSeen: now };
    this.#entries.delete(address); // re-inserted last: the Map's order is least recently seen first
    e.failures += 1;
    e.lastSeen = now;
    if (e.failures >= FAILURES_PER_LOCK) {
      e.failures = 0;
      e.lockedUntil = now + Math.min(MAX_LOCK_MS, FIRST_LOCK_MS * 2 ** e.locks);
      e.locks += 1;
    }
    this.#entries.set(address, e);
    if (this.#entries.size > MAX_ADDRESSES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  succeeded(address: string): void {
    this.#entries.delete(address);
  }

  get size(): number {
    return this.#entries.size;
  }
}
