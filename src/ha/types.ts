// The vocabulary of the HA core: what the agent observes, and the plan the pure decision returns.
// Nothing here does I/O; src/ha imports no etcd, pg, clock or randomness.
import type { DynamicConfig, Tags } from '../config/schema.ts';
import type { Memory } from './memory.ts';

/** A WAL position in bytes (pg_lsn as a number: exact up to 8 PiB of WAL). */
export type Lsn = number;

/** pg_controldata's "Database cluster state", reduced to what the decision needs. */
export type ControlState =
  | 'primary-clean' // "shut down": a primary stopped cleanly
  | 'primary-crashed' // "in production" while not running: a primary that died
  | 'standby' // "shut down in recovery" / "in archive recovery"
  | 'unknown';

/** What pgha was writing into the data directory when it died (the `<data_dir>.unfinished` marker). */
export type UnfinishedStep = 'bootstrap' | 'clone' | 'wipe';

export interface LocalPostgres {
  /**
   * Is there a data directory with PG_VERSION in it? `foreign`: the directory holds other files
   * but no PG_VERSION (a mount point with lost+found, leftovers): pgha neither writes into it nor
   * deletes them.
   */
  dataDir: 'empty' | 'initialized' | 'foreign';
  /**
   * `<data_dir>.unfinished` names a step that was writing into the data directory when the agent
   * died (SIGKILL, power loss): pgha found the directory empty, wrote the marker (fsynced), and
   * never got to remove it. The contents are pgha's own and incomplete. `bootstrap`: initdb or a
   * restore from a backup (complete once /initialize holds its system id); `clone`:
   * pg_basebackup or a restore as a replica; `wipe`: emptying it. Absent or null: no marker.
   */
  unfinished?: UnfinishedStep | null;
  /** Database system identifier from pg_controldata; null without a data directory. */
  systemId: string | null;
  controlState: ControlState;
  /** Is the postmaster alive (postmaster.pid names a live process)? */
  running: boolean;
  /** Did the health query succeed this loop? False while starting, crashed or hung. */
  accepting: boolean;
  /** From pg_is_in_recovery(); null when the health query failed. */
  role: 'primary' | 'standby' | null;
  timeline: number | null;
  /**
   * Standby: the timeline PostgreSQL itself reports now, without the memory of a timeline its WAL
   * receiver once streamed (`timeline` keeps that for failover comparisons). A standby that
   * received a newer timeline's history but cannot replay it stays on the old one here.
   */
  replayTimeline?: number | null;
  /** Primary: pg_current_wal_lsn(). Standby: max(receive, replay). */
  lsn: Lsn | null;
  /** Standby only: is a WAL receiver streaming right now? */
  streaming: boolean;
  /** Member name the configured primary_conninfo points at (null: none configured). */
  upstream: string | null;
  /** Standby: host:port its WAL receiver streams from now (pg_stat_wal_receiver); for pghactl topology only. */
  receivingFrom?: string | null;
  /** Some changed parameter needs a restart (pg_settings.pending_restart). */
  pendingRestart: boolean;
  /** Primary only: application names pg_stat_replication shows streaming with sync_state 'sync'. */
  syncStandbys: string[];
  /** Primary only: synchronous_standby_names as this server applies it now (current_setting). */
  syncSetting: string;
  /** Primary only: streaming standbys and the WAL position each has flushed (pg_stat_replication). */
  replicas: Array<{ name: string; flushLsn: Lsn | null }>;
  /**
   * Primary only: the primary's flushed WAL position read just after pgha last changed
   * synchronous_standby_names (null: not changed since the agent started). Every commit
   * acknowledged under an earlier setting lies at or before it.
   */
  syncChangedAt: Lsn | null;
  /** Read by the same health query for GET /metrics only; the decision never looks at it. */
  stats?: PostgresStats | null;
}

/** What GET /metrics shows about the local PostgreSQL beyond LocalPostgres (Patroni's metrics). */
export interface PostgresStats {
  /** Primary: pg_current_wal_flush_lsn(). */
  flushLsn: Lsn | null;
  /** Standby: pg_stat_wal_receiver.written_lsn, else pg_last_wal_receive_lsn(). */
  receivedLsn: Lsn | null;
  /** Standby: pg_last_wal_replay_lsn(). */
  replayedLsn: Lsn | null;
  /** Standby: pg_last_xact_replay_timestamp(), epoch seconds. */
  replayedAt: number | null;
  /** Standby: pg_is_wal_replay_paused(). */
  replayPaused: boolean;
  /** pg_postmaster_start_time(), epoch seconds. */
  postmasterStart: number | null;
  /** server_version_num, e.g. 150014. */
  serverVersion: number | null;
  /** Primary: its WAL senders from pg_stat_replication (base backups left out). */
  standbys: StandbyStats[];
  /** pg_stat_archiver, and whether this member archives (archive_mode on as primary, or always). */
  archive?: ArchiveStats;
}

/** WAL archiving as pg_stat_archiver counts it (since the last stats reset). Times in epoch seconds. */
export interface ArchiveStats {
  enabled: boolean;
  archived: number;
  failed: number;
  lastArchivedAt: number | null;
  lastFailedAt: number | null;
}

/** One row of the primary's pg_stat_replication. Lags in seconds as PostgreSQL measures them (null: idle). */
export interface StandbyStats {
  name: string;
  state: string;
  syncState: string;
  writeLsn: Lsn | null;
  flushLsn: Lsn | null;
  replayLsn: Lsn | null;
  writeLag: number | null;
  flushLag: number | null;
  replayLag: number | null;
}

export type MemberState =
  | 'running'
  | 'streaming'
  | 'starting'
  | 'stopped'
  | 'crashed'
  | 'rewinding'
  | 'cloning'
  | 'bootstrapping'
  | 'fenced';

/** What each agent publishes about itself under /members/<name>. */
export interface MemberInfo {
  name: string;
  role: 'primary' | 'standby' | 'unknown';
  state: MemberState;
  timeline: number | null;
  lsn: Lsn | null;
  apiUrl: string;
  /** host:port of this member's PostgreSQL for clients and for replication. */
  conn: string;
  tags: Tags;
  /** Member name this standby replicates from, if any (its configured primary_conninfo). */
  upstream: string | null;
  /** host:port its WAL receiver streams from, as PostgreSQL reports it (absent: not streaming, or an older agent). */
  receivingFrom?: string | undefined;
  pendingRestart: boolean;
  /**
   * Which agent wrote the value (a mixed Patroni/pgha cluster during a migration): `patroni` when
   * it carries no pgha field (pgha writes `pgha_state` beside Patroni's fields); absent: pgha.
   */
  agent?: 'patroni' | 'pgha' | undefined;
  /** Patroni's own `role` word as a Patroni agent wrote it (`master`, `replica`, `demoted` ...). */
  patroniRole?: string | undefined;
}

export interface LeaderKey {
  name: string;
  /** etcd mod revision of the leader key, used for compare-and-set. */
  revision: string;
  /** Hex lease id the key is bound to. */
  lease: string;
}

/**
 * /sync: written only by the leader, never optimistic. The guarantee it states: every commit the
 * leader acknowledged is on at least `acks` of `members` (besides the leader). synchronous_mode
 * on leaves `acks` out: every member holds every acknowledged commit (acks = members.length).
 * In quorum mode `acks` is the n of `ANY n (...)` (see src/ha/quorum.ts for the write order).
 */
export interface SyncRecord {
  leader: string;
  members: string[];
  acks?: number | undefined;
}

/** A planned switchover or a manual failover, stored under /failover until the new leader clears it. */
export interface FailoverRequest {
  kind: 'switchover' | 'failover';
  /** Member that must be the leader for the request to apply; null: whoever leads. */
  leader: string | null;
  /** Member that must take over; null: the best eligible standby. */
  candidate: string | null;
  /** Epoch ms before which the leader does not step down; null: now. */
  scheduledAt: number | null;
  /** Epoch ms when the request was written (a stale request is ignored). */
  requestedAt: number;
  /** Set by the stepping-down leader: the candidate waits until it has WAL beyond this position. */
  shutdownLsn: Lsn | null;
}

/**
 * /failsafe (failsafe_mode on): written by the leader while etcd is healthy, naming every member
 * with its REST API URL. With etcd unreachable, the leader must be confirmed by all of them.
 */
export interface FailsafeRecord {
  leader: string;
  /** Member name -> REST API base URL (the leader included). */
  members: Record<string, string>;
}

/** One round of POST /failsafe calls the leader made this loop because etcd was unreachable. */
export interface FailsafeRound {
  /** Monotonic ms just before the first call was sent. */
  sentAt: number;
  /** Members asked (every member of the last /failsafe record but ourselves). */
  asked: string[];
  /** Members that answered 200. */
  confirmed: string[];
}

/** A standby accepted a failsafe call: it may not race for the key or promote before `until`. */
export interface FailsafeHold {
  leader: string;
  /** Monotonic ms: receipt of the call + ttl. */
  until: number;
}

/**
 * The etcd mod revision of each key the agents and pghactl write by compare-and-set, as the view
 * read it ("0": the key was absent). A write passes the revision back and lands only if the key
 * is still at it ("0": only if still absent); otherwise someone wrote in between, the write is
 * dropped (PGHA_DCS_CONFLICT) and the next loop reads and decides again.
 */
export interface KeyRevisions {
  sync: string;
  failsafe: string;
  failover: string;
  /** /status: the leader's WAL position (and its logical slots'). */
  status: string;
}

export interface ClusterView {
  /** null: nobody holds the leader key. */
  leader: LeaderKey | null;
  members: MemberInfo[];
  /** null: nobody claimed initialization; "" or "claim:<name>": claimed, initdb in progress; else the system id. */
  initialize: string | null;
  config: DynamicConfig;
  /** WAL position the last leader published (persists after its key expires); for the lag check. */
  lastLeaderLsn: Lsn | null;
  /** A pending switchover or manual failover. */
  failover: FailoverRequest | null;
  /** /failover exists but cannot be read (`failover` is then null): it counts as pending for pghactl. */
  failoverUnreadable?: boolean;
  /** Synchronous replication record (synchronous_mode on). */
  sync: SyncRecord | null;
  /** The /failsafe record; absent or null: none. */
  failsafe?: FailsafeRecord | null;
  /**
   * /sync exists but does not match its schema (`sync` is then null). It cannot tell who holds
   * every acknowledged commit, so with synchronous_mode on nobody races for a free key.
   */
  syncUnreadable?: boolean;
  /**
   * /config in etcd does not match its schema. `kept`: `config` is the last valid /config this
   * agent read; otherwise it is the node file's bootstrap.dcs, and pause may have been lost.
   */
  configInvalid?: { error: string; kept: boolean } | null;
  /** Scheduled restarts (/restart/<member>), by member name. */
  restarts?: Record<string, ScheduledRestart>;
  /**
   * The confirmed position of each pgha-managed logical slot, as the leader last published it
   * in /status (absent: logical replication was never managed here). Standbys advance their
   * copies to it.
   */
  logicalSlots?: Record<string, Lsn> | null;
  /**
   * Members `pghactl verify` found different from the leader (/unsafe/<member>), by name: never
   * promoted, never a clone source, until a reinit or a clean re-check removes the mark.
   */
  unsafe?: Record<string, UnsafeMark>;
  /** Mod revisions of /sync, /failsafe, /failover and /status as read, for the conditional writes. */
  revisions: KeyRevisions;
}

/** Why a member is marked unsafe: when verify found it, and what it found. */
export interface UnsafeMark {
  /** Epoch ms. */
  at: number;
  reason: string;
}

/** POST /restart with a schedule: the member restarts PostgreSQL once `at` has come. */
export interface ScheduledRestart {
  /** Epoch ms. */
  at: number;
  requestedAt: number;
  /** etcd mod revision, for the delete-then-restart compare-and-set. */
  revision: string;
}

/** Who this member is, and the live guards the agent holds outside the loop (the fence timer, a failsafe promise). */
export interface SelfState {
  name: string;
  tags: Tags;
  /**
   * Monotonic ms after which this member must not run as primary (last acked renewal + ttl -
   * margin, src/ha/lease.ts). The fence timer holds it: it must be re-armed inside long steps
   * too, between two loops.
   */
  leaseDeadline: number | null;
  /** The last failsafe call this member accepted; absent or null: none. */
  failsafeHold?: FailsafeHold | null;
  /**
   * When this agent process started (monotonic ms, the clock of `now`). A promise lives in the
   * agent's memory only: for one ttl after a start (failsafe_mode on) the member does not take
   * the key, since it may have given one before a restart (src/ha/failsafe.ts startBlocksRace).
   */
  startedAt: number;
  /** bootstrap.adopt_system_id: existing data with this identifier may become the cluster. */
  adoptSystemId?: string | null;
}

export interface Observation {
  now: number;
  /** What the agent remembers from earlier loops (src/ha/memory.ts). */
  memory: Memory;
  /** Wall-clock epoch ms, only for scheduled switchovers and request ages. */
  wallNow: number;
  self: SelfState;
  local: LocalPostgres;
  /** null: etcd could not be read this loop. */
  cluster: ClusterView | null;
  /** Settings from the node config that the decision needs when etcd is unreadable. */
  fallbackConfig: DynamicConfig;
  /** Leader with etcd unreachable and failsafe_mode on: the confirmations gathered this loop. */
  failsafe?: FailsafeRound | null;
  /**
   * standby_cluster set: what the agent last read from the source cluster (src/agent/source.ts);
   * absent or null: not read (not set, or this member is a follower that does not need it).
   */
  source?: SourceState | null;
}

/** The source cluster of a standby cluster, as one query on it found it. */
export interface SourceState {
  reachable: boolean;
  /** Why it could not be read (reachable false). */
  error: string | null;
  systemId: string | null;
  timeline: number | null;
  /** Its WAL position: pg_current_wal_lsn() when writable, else the furthest received/replayed. */
  lsn: Lsn | null;
  /** The server reached accepts writes (not in recovery). */
  writable: boolean | null;
  /** pg_postmaster_start_time() of the server reached, epoch seconds (tells one server from another). */
  startedAt?: number;
}

/**
 * One step the agent performs. Steps run in plan order; the first that fails ends the plan, so
 * a step may rely on every earlier one (for example, `promote` follows a successful `acquire`).
 */
/**
 * Why a member promotes, as `pghactl history` shows it: a planned switchover, a manual failover
 * (`pghactl failover`), or an automatic failover (the leader key was free).
 */
export type PromoteReason = 'switchover' | 'manual failover' | 'failover';

export type Action =
  | { kind: 'bootstrap' } // claim /initialize, initdb, start as primary, take the key, write config
  // standby_cluster: claim /initialize, pg_basebackup from the source cluster, start as its
  // standby, take the key, write config, record the system id (the first standby leader)
  | { kind: 'bootstrap_standby' }
  | { kind: 'adopt_cluster' } // existing data, no /initialize key: register our system id
  // the data directory holds an unfinished bootstrap, clone or wipe of ours (marker): stop
  // PostgreSQL if it runs, empty the directory, drop the marker (the next loop bootstraps or clones)
  | { kind: 'wipe_unfinished'; step: UnfinishedStep }
  | { kind: 'settle_data' } // the bootstrap did finish (/initialize holds our system id): drop the marker
  | { kind: 'clone'; from: string } // pg_basebackup into an empty data directory (a `start` follows)
  // the data cannot be used (pg_rewind failed, the rewound data did not start, or rewinds keep
  // leaving it unable to stream): stop it, wipe it, clone afresh (a `start` follows)
  | { kind: 'reclone'; from: string }
  | { kind: 'clear_unsafe' } // a fresh clone of the leader: remove our /unsafe mark (pghactl verify)
  | { kind: 'acquire' } // create the leader key if absent (fails when someone else wins)
  // Keepalive the lease and prove the key is still ours. With fenceOnFailure, a failed renewal
  // stops PostgreSQL at once: it runs as primary and its lease deadline has passed or is unknown.
  | { kind: 'renew'; fenceOnFailure: boolean }
  | { kind: 'release' } // delete the leader key if it is ours
  | { kind: 'promote'; reason: PromoteReason } // pg_promote, then record history with the reason
  | { kind: 'start'; as: 'primary' | 'standby'; upstream: string | null }
  | { kind: 'follow'; upstream: string | null } // rewrite primary_conninfo and reload
  | { kind: 'fence' } // stop PostgreSQL at once (immediate mode): the lease cannot be proved
  | { kind: 'rewind'; from: string } // stop PostgreSQL if it runs, pg_rewind from the leader (a `start` follows)
  // leader: a slot per member seen within member_slots_ttl (Memory.slotsSeen), plus permanent_slots
  | { kind: 'ensure_slots'; members: string[]; permanent: string[] }
  // leader: store its WAL position (and logical slots) for the lag check, unless `last` was published already
  | { kind: 'publish_leader_lsn'; last: PublishedStatus | null }
  // leader: create/drop logical slots and publications, read the slots' confirmed positions;
  // standby (streaming from `leader`): copy missing logical slots from it (a short restart, only
  // when mayRestart), advance the copies, drop copies no longer configured
  | { kind: 'sync_logical'; as: 'leader' }
  | { kind: 'sync_logical'; as: 'standby'; leader: string; mayRestart: boolean }
  // a standby about to take the key and promote: advance its logical slot copies to the
  // positions the leader published (after a switchover: its final ones); never fails
  | { kind: 'advance_logical' }
  | { kind: 'step_down' } // switchover: stop PostgreSQL cleanly, record its last WAL position, release the key (a `start` as standby follows)
  | { kind: 'clear_failover' } // remove the /failover request (done, impossible or stale)
  | { kind: 'write_sync'; members: string[]; acks?: number } // leader: store the /sync record (acks: quorum mode)
  | { kind: 'write_failsafe'; record: FailsafeRecord | null; expected: string } // leader: store (null: delete) /failsafe, if its revision is still `expected`
  // etcd unreachable, every member confirmed us: fence deadline = sentAt + ttl - fence_margin
  | { kind: 'failsafe_extend'; sentAt: number }
  // leader: set synchronous_standby_names, FIRST (on) or ANY (quorum) count of names
  // (null: asynchronous; [] in strict mode: block commits)
  | { kind: 'set_sync_names'; names: string[] | null; count: number; method?: SyncMethod };

/** What the leader last wrote to /status: its WAL position and its logical slots (JSON). */
export interface PublishedStatus {
  lsn: Lsn;
  slots: string;
}

/**
 * What one executed step reports back (src/agent/act.ts), for remember() (src/ha/memory.ts).
 * A failed step ends the plan: it is the last outcome of the list.
 */
export type Outcome =
  | {
    action: Action;
    ok: true;
    /** renew, acquire: the keepalive etcd acknowledged, sent at `sentAt` (monotonic ms), lease ttl in s. */
    lease?: { sentAt: number; ttl: number };
    /** publish_leader_lsn: what /status holds now. */
    published?: PublishedStatus;
    /** set_sync_names: the primary's flushed WAL position read just after the setting changed. */
    syncChangedAt?: Lsn | null;
  }
  | {
    action: Action;
    ok: false;
    /** The error as logged (code: message). */
    error: string;
    /** The error is a transient one (etcd or the leader unreachable): nothing was changed. */
    retryable: boolean;
    /** promote: pre_promote refused it at this monotonic ms, and the key was released. */
    vetoedAt?: number;
  };

/** synchronous_standby_names' method: FIRST n (synchronous_mode on) or ANY n (quorum). */
export type SyncMethod = 'first' | 'any';

export interface Plan {
  /** A short human sentence, logged when it changes. */
  reason: string;
  actions: Action[];
  /** Run the next loop after this many ms rather than loop_wait (a handover in progress). */
  retryAfterMs?: number;
}
