// pg_controldata output -> what the HA decision needs. `parseControlData` is pure and tested with
// sample text; `readControlData` runs the binary (with LC_ALL=C, so field names are English).
import { join } from 'node:path';
import type { ControlState } from '../ha/types.ts';
import { run, type RunAs } from './exec.ts';
import { parseLsn } from './lsn.ts';

export interface ControlData {
  systemId: string | null;
  /** "Database cluster state" as printed ("shut down", "in production", ...). */
  clusterState: string | null;
  state: ControlState;
  /** "Latest checkpoint's TimeLineID". */
  timeline: number | null;
  /** "Latest checkpoint location": after a clean stop, the start of the shutdown checkpoint. */
  checkpointLsn: number | null;
}

export function parseControlData(text: string): ControlData {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const clusterState = fields.get('Database cluster state') ?? null;
  const tli = Number(fields.get("Latest checkpoint's TimeLineID"));
  const ckpt = fields.get('Latest checkpoint location');
  return {
    systemId: fields.get('Database system identifier') ?? null,
    clusterState,
    state: controlStateOf(clusterState),
    timeline: Number.isInteger(tli) && tli > 0 ? tli : null,
    checkpointLsn: ckpt === undefined ? null : parseLsn(ckpt),
  };
}

/**
 * The cluster state reduced for the decision. It only matters while the server is down; the
 * caller lets a standby.signal file win, since that is what pgha wrote last.
 * - "shut down": a primary stopped cleanly (it can follow a new primary if nothing diverged).
 * - "in production": a primary that died: it may hold WAL the new primary never saw.
 * - "shut down in recovery" / "in archive recovery": standby data.
 * - "in crash recovery" (it died again while replaying its own WAL, which a primary and a standby
 *   without a recovery checkpoint both do), "starting up", "shutting down", unreadable: unknown.
 *   The decision treats unknown like a crashed primary (rewind before following), the safe side.
 */
export function controlStateOf(clusterState: string | null): ControlState {
  switch (clusterState) {
    case 'shut down':
      return 'primary-clean';
    case 'in production':
      return 'primary-crashed';
    case 'shut down in recovery':
    case 'in archive recovery':
      return 'standby';
    default:
      return 'unknown';
  }
}

/** Run `pg_controldata -D dataDir` and parse it. */
export async function readControlData(binDir: string, dataDir: string, runAs?: RunAs): Promise<ControlData> {
  // pg_controldata reads one 8 kB file: 10 s only trips on a hung disk.
  const { stdout } = await run(join(binDir, 'pg_controldata'), ['-D', dataDir], { timeoutMs: 10_000, runAs });
  return parseControlData(stdout);
}
