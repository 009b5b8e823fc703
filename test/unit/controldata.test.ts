// pg_controldata output (PostgreSQL 15, LC_ALL=C) parsed into what the HA decision needs.
import { describe, expect, it } from 'vitest';
import { controlStateOf, parseControlData } from '../../src/postgres/controldata.ts';

/** Real pg_controldata output, trimmed of the fields nobody reads, with the state and timeline varied. */
const sample = (state: string, tli = 1, ckpt = '0/1500718') => `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7711655357439759110
Database cluster state:               ${state}
pg_control last modified:             Tue Nov 24 08:41:20 2026
Latest checkpoint location:           ${ckpt}
Latest checkpoint's REDO location:    ${ckpt}
Latest checkpoint's REDO WAL file:    0000000${tli}0000000000000001
Latest checkpoint's TimeLineID:       ${tli}
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's oldestCommitTsXid:0
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
wal_log_hints setting:                on
Data page checksum version:           1
`;

describe('parseControlData', () => {
  it.each([
    ['shut down', 'primary-clean'],
    ['shut down in recovery', 'standby'],
    ['in production', 'primary-crashed'],
    ['in archive recovery', 'standby'],
    ['in crash recovery', 'unknown'],
    ['starting up', 'unknown'],
    ['shutting down', 'unknown'],
  ] as const)('maps "%s" to %s', (state, want) => {
    const cd = parseControlData(sample(state, 3, '16/B374D848'));
    expect(cd).toEqual({
      systemId: '7711655357439759110',
      clusterState: state,
      state: want,
      timeline: 3,
      checkpointLsn: 0x16 * 2 ** 32 + 0xb374d848,
    });
  });

  it('reads values that contain colons and keys without a space after the colon', () => {
    const cd = parseControlData(sample('shut down'));
    expect(cd.timeline).toBe(1);
    expect(cd.checkpointLsn).toBe(0x1500718);
  });

  it('returns nulls and unknown for text that is not pg_controldata output', () => {
    expect(parseControlData('pg_controldata: error: could not open file "global/pg_control"')).toEqual({
      systemId: null, clusterState: null, state: 'unknown', timeline: null, checkpointLsn: null,
    });
    expect(controlStateOf(null)).toBe('unknown');
  });
});
