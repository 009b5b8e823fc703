// The availability model behind `pghactl availability`. Pure arithmetic, worked by hand in
// docs/availability.md and checked against those numbers by test/unit/availability.test.ts.
//
// Unlike the guide's formula (primary x (1 - (1 - replica)^n) x network x storage), the primary
// is not a single point of failure once failover is automatic: each primary failure costs one
// failover outage, and only the loss of every node at once costs a full repair time.

export interface AvailabilityInput {
  /** Availability of one database node (host + PostgreSQL), 0..1. */
  node: number;
  /** Shared network path to the cluster, 0..1. */
  network: number;
  /** Shared storage (1 when each node has local disks), 0..1. */
  storage: number;
  /** The etcd cluster (a quorum across zones), 0..1. */
  etcd: number;
  /** Number of standbys (nodes = standbys + 1). */
  standbys: number;
  /** Mean time between failures of one node, hours. */
  mtbfHours: number;
  /** Write outage per failover, seconds (measured by a drill of an unplanned failure). */
  failoverSeconds: number;
  /** The cluster's synchronous_mode, which decides the data-loss advice; null when not known. */
  synchronousMode: SynchronousMode | null;
}

export type SynchronousMode = 'off' | 'on' | 'quorum';

/**
 * Drills whose outage stands for an unplanned failure: the primary's PostgreSQL SIGKILLed or
 * stopped at once (pghactl drill), or a whole node crashed (npm run bench writes
 * "crash-failover" into docs/benchmarks.json). A switchover is planned: the old primary hands
 * over cleanly and the outage is a fraction of a failure's, so it would flatter the model.
 */
export const UNPLANNED_DRILLS = ['kill-primary', 'stop-primary', 'crash-failover'] as const;

/** Why a measured drill cannot stand for the failover time, or null when it can. */
export function drillProblem(kind: string | undefined, file: string): string | null {
  const run = `run pghactl drill --kind kill-primary --format json > FILE (or --kind stop-primary)`;
  if (kind === undefined) return `${file} does not say which drill it measured (summary.kind): ${run}`;
  if ((UNPLANNED_DRILLS as readonly string[]).includes(kind)) return null;
  if (kind === 'switchover') {
    return `${file} measures a switchover drill, a planned handover much shorter than a failure: the model needs an unplanned failure; ${run}`;
  }
  return `${file} measures a "${kind}" drill; the model needs one of ${UNPLANNED_DRILLS.join(', ')}: ${run}`;
}

export interface AvailabilityResult {
  availability: number;
  /** Unavailability from failover outages (primary failures with a standby to take over). */
  failoverShare: number;
  /** Unavailability from every node being down at once. */
  allNodesDownShare: number;
  /** Unavailability from the shared parts (network, storage, etcd). */
  sharedShare: number;
  yearlyDowntimeMinutes: number;
  monthlyDowntimeMinutes: number;
  targetsMet: Array<{ target: number; met: boolean }>;
  /** The guide's series formula, for comparison. */
  guideFormula: number;
  recommendations: string[];
}

export const TARGETS = [0.999, 0.9995, 0.9999];
const HOURS_PER_YEAR = 24 * 365;

export function validateInput(i: AvailabilityInput): string[] {
  const problems: string[] = [];
  for (const k of ['node', 'network', 'storage', 'etcd'] as const) {
    if (!(i[k] > 0 && i[k] <= 1)) problems.push(`${k}: an availability between 0 (exclusive) and 1, e.g. 0.999`);
  }
  if (!Number.isInteger(i.standbys) || i.standbys < 0 || i.standbys > 16) problems.push('standbys: an integer from 0 to 16');
  if (!(i.mtbfHours > 0)) problems.push('mtbf-hours: a positive number of hours');
  if (!(i.failoverSeconds >= 0)) problems.push('failover-seconds: zero or more seconds');
  return problems;
}

export function computeAvailability(i: AvailabilityInput): AvailabilityResult {
  const nodes = i.standbys + 1;
  // Primary failures per hour, each costing one failover outage, when some standby is up to
  // take over (probability 1 - (1 - node)^standbys). Without standbys nobody takes over.
  const failovers = (1 / i.mtbfHours) * (1 - (1 - i.node) ** i.standbys);
  const failoverShare = failovers * (i.failoverSeconds / 3600);
  // Every node down at once: the service waits for a repair.
  const allNodesDownShare = (1 - i.node) ** nodes;
  const shared = i.network * i.storage * i.etcd;
  const availability = shared * Math.max(0, 1 - failoverShare - allNodesDownShare);
  const down = 1 - availability;
  const r: AvailabilityResult = {
    availability,
    failoverShare,
    allNodesDownShare,
    sharedShare: 1 - shared,
    yearlyDowntimeMinutes: down * HOURS_PER_YEAR * 60,
    monthlyDowntimeMinutes: (down * HOURS_PER_YEAR * 60) / 12,
    targetsMet: TARGETS.map((target) => ({ target, met: availability >= target })),
    guideFormula: i.node * (1 - (1 - i.node) ** i.standbys) * i.network * i.storage,
    recommendations: [],
  };
  r.recommendations = recommend(i, r);
  return r;
}

/** Advice on data loss for the synchronous_mode in use (never a feature named as missing). */
export function dataLossAdvice(mode: SynchronousMode | null): string {
  if (mode === 'off') {
    return 'synchronous_mode is off: a failover may lose acknowledged writes (up to maximum_lag_on_failover). For zero data loss set it to on or quorum (pghactl edit-config --set synchronous_mode=on) and measure the failover again with pghactl drill.';
  }
  if (mode !== null) {
    return `synchronous_mode is ${mode}: a failover loses no acknowledged write while a synchronous standby is connected (synchronous_mode_strict: true keeps it so by stopping writes when none is).`;
  }
  return 'Data loss on failover depends on synchronous_mode (pghactl show-config): off may lose acknowledged writes up to maximum_lag_on_failover; on or quorum loses none while a synchronous standby is connected. Give --synchronous-mode, or a drill file that records it, for advice on yours.';
}

function recommend(i: AvailabilityInput, r: AvailabilityResult): string[] {
  const out: string[] = [];
  const biggest = Math.max(r.failoverShare, r.allNodesDownShare, r.sharedShare);
  if (i.standbys < 2) out.push('Run at least two standbys: with one, a standby that is down or rebuilding leaves the primary as a single point of failure.');
  if (r.sharedShare === biggest && r.sharedShare > 0) {
    out.push('The shared parts dominate: spread etcd over three zones (a quorum survives one zone) and give the network and storage redundant paths; more database nodes will not help.');
  }
  if (r.failoverShare === biggest && r.failoverShare > 0) {
    out.push('Failover outages dominate: shorten them (ttl, HAProxy check interval) or make nodes fail less often (MTBF); measure with pghactl drill --kind kill-primary.');
  }
  if (r.allNodesDownShare === biggest && r.allNodesDownShare > 0) out.push('Losing every node at once dominates: add a standby, preferably in another zone.');
  out.push(dataLossAdvice(i.synchronousMode));
  if (!r.targetsMet.some((t) => t.met)) out.push('No target of 99.9 % or better is met: fix the largest share above first.');
  return out;
}
