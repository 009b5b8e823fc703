// pg_controldata output -> what the HA decision needs. The parser is pure; the runner is in instance.ts.
import type { ControlState } from '../ha/types.ts';
import { parseLsn } from './lsn.ts';

export interface ControlData {
  systemId: string | null;
  clusterState: string | null;
  state: ControlState;
  timeline: number | null;
  /** "Latest checkpoint location": after a clean stop, the start of the shutdown checkpoint. */
  checkpointLsn: number | null;
}

export function parseControlData(text: string): ControlData {
  const field = (name: string): string | null => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}:`));
    return line === undefined ? null : line.slice(name.length + 1).trim();
  };
  const clusterState = field('Database cluster state');
  const tli = field("Latest checkpoint's TimeLineID");
  const ckpt = field('Latest checkpoint location');
  return {
    systemId: field('Database system identifier'),
    clusterState,
    state: mapState(clusterState),
    timeline: tli === null ? null : Number(tli),
    checkpointLsn: ckpt === null ? null : parseLsn(ckpt),
  };
}

function mapState(s: string | null): ControlState {
  switch (s) {
    case 'shut down': return 'primary-clean';
    case 'in production': return 'primary-crashed';
    case 'shut down in recovery':
    case 'in archive recovery': return 'standby';
    default: return 'unknown'; // "in crash recovery", "shutting down", "starting up", unknown
  }
}
