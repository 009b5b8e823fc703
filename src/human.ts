// Figures as a person reads them: rounded to what they mean, with units. JSON output never goes
// through these (it keeps full precision); pghactl's tables and sentences always do.

/** Seconds: below one second in whole milliseconds, else to two decimals ("0.28 s" is "283 ms"). */
export function seconds(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  return Math.abs(s) < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

/** A length of time: seconds (as above) below a minute, minutes below ten hours, then hours. */
export function duration(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  if (s < 60) return seconds(s);
  if (s < 10 * 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/**
 * An availability (0..1) as a percentage with the digits that matter: enough decimals to show
 * the unavailability to two significant figures (99.979 %, 99.80 %), at least two, at most six.
 */
export function availabilityPercent(x: number): string {
  if (x >= 1) return '100 %';
  const down = (1 - x) * 100;
  const decimals = Math.min(6, Math.max(2, Math.ceil(-Math.log10(down)) + 1));
  return `${(x * 100).toFixed(decimals)} %`;
}

/** A target such as 0.9995 as "99.95 %" (no trailing zeros). */
export function targetPercent(x: number): string {
  return `${Number((x * 100).toFixed(4))} %`;
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'] as const;

/** A byte count with a unit (powers of 1024, PostgreSQL's names): "512 B", "6.0 MB". */
export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}
