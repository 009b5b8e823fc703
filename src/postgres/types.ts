// The contract between the agent and its local PostgreSQL. Implemented over the Debian binaries
// (initdb, pg_ctl, pg_basebackup, pg_rewind, pg_controldata) and one dedicated `pg` client.
import type { LocalPostgres, SourceState, SyncMethod } from '../ha/types.ts';
import type { SlotState } from './slot-copy.ts';
import type { StandbyClusterConfig } from '../config/schema.ts';

/** Where another member's PostgreSQL can be reached, for replication, cloning and rewind. */
export interface Upstream {
  name: string;
  /** host:port (the source cluster: its first host) */
  conn: string;
  /** The source cluster of a standby cluster: every host, and the standby leader's settings. */
  source?: StandbyClusterConfig;
}

export interface PostgresControl {
  /** Health query, control data and postmaster check. Never throws: failures show in the result. */
  observe(): Promise<LocalPostgres>;

  /** initdb with the bootstrap options (always with data checksums) and the pgha config include. */
  initdb(): Promise<void>;
  /** Create the superuser/replication/rewind roles and bootstrap.users (scram-sha-256). Primary only. */
  createRoles(): Promise<void>;

  /**
   * Render pgha.conf (parameters, port, primary_conninfo, primary_slot_name), write or remove
   * standby.signal, then `pg_ctl start -w`.
   */
  start(as: 'primary' | 'standby', upstream: Upstream | null): Promise<void>;
  /**
   * Stop the server: `pg_ctl stop -m <mode> -w` for smart and fast; immediate sends SIGQUIT to
   * the postmaster itself (what pg_ctl would send, without spawning it) and waits for its exit.
   * A stopped server is not an error.
   */
  stop(mode: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** Rewrite primary_conninfo / primary_slot_name and reload; no restart. */
  follow(upstream: Upstream | null): Promise<void>;
  /** Promote a running standby and wait until it accepts writes. Returns the new timeline. */
  promote(): Promise<{ timeline: number; lsn: string }>;
  /** Send SIGHUP to the postmaster (what `pg_ctl reload` does); renders nothing (see applyConfig). */
  reload(): Promise<void>;
  /**
   * Re-render pgha.conf for the server's current role (standby.signal present: a standby of
   * `upstream`) and reload if it changed (new dynamic parameters). True when it reloaded.
   */
  applyConfig(upstream: Upstream | null): Promise<boolean>;

  /** pg_basebackup from `from` into the (empty) data directory, then configure as its standby. */
  clone(from: Upstream): Promise<void>;
  /** pg_rewind from `from` (the server must be stopped). Throws PGHA_PG_REWIND_FAILED on failure. */
  rewind(from: Upstream): Promise<void>;
  /** pg_controldata's latest checkpoint position (after a clean stop: the shutdown checkpoint). */
  checkpointLsn(): Promise<number | null>;
  /**
   * Remove the data directory's contents (for reinit or a failed rewind). `forReclone`: a clone
   * follows, which may restore over the kept files instead (delta restore from the backup).
   */
  wipe(o?: { forReclone?: boolean }): Promise<void>;
  /**
   * The data directory is complete (a bootstrap registered in /initialize): remove the
   * `<data_dir>.unfinished` marker that initdb or a restore wrote. A clone removes its own.
   */
  settle(): Promise<void>;

  /** Leader only: make the set of pgha-managed physical slots equal `slotNames` (others are kept). */
  ensureSlots(slotNames: string[], dropAbsent: boolean): Promise<void>;
  /** Standby: the leader's logical slots' state files, read after a CHECKPOINT there (slot-copy.ts). */
  readSlotStates?(from: Upstream, names: string[]): Promise<SlotState[]>;
  /** The server must be stopped: install slot state files into pg_replslot (slot-copy.ts). */
  installSlotStates?(states: SlotState[]): Promise<void>;
  /** The server must be stopped: each logical slot's confirmed_flush, from its state file. */
  readStoppedSlotPositions?(): Promise<Record<string, number>>;

  /**
   * Primary: set synchronous_standby_names (FIRST|ANY count (names); null: asynchronous) and
   * reload. True when the setting differs from the one pgha.conf held.
   */
  setSyncNames(names: string[] | null, count: number, method: SyncMethod): Promise<boolean>;
  /** Primary: pg_current_wal_flush_lsn(). */
  flushLsn(): Promise<number | null>;
  /** Drill only: SIGKILL the postmaster and its children, as a crash would. */
  crash(): Promise<void>;

  /**
   * standby_cluster: one query on the source cluster (through `source`'s hosts, as the rewind
   * role, its own passfile). Never throws: an unreachable source is `reachable: false`.
   */
  readSource?(source: Upstream): Promise<SourceState>;

  /** Close the health client. */
  close(): Promise<void>;
}

/** Physical slot name of a member: lower case, [a-z0-9_], at most 63 bytes. */
export function slotNameFor(member: string): string {
  return member.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
}
