// What the REST API, pghactl and GET /metrics show about logical slots (no I/O here).

/** One logical slot as GET /status, `pghactl slots` and GET /metrics show it. */
export interface LogicalSlotStatus {
  name: string;
  plugin: string | null;
  database: string | null;
  /** A consumer is connected (leader). */
  active: boolean;
  /** The position the consumer confirmed (leader) or the copy's position (standby). */
  confirmed_flush_lsn: string | null;
  restart_lsn: string | null;
  /** Leader: WAL bytes written since the consumer's confirmed position. Standby: bytes the copy is behind the leader's published position. */
  lag_bytes: number | null;
  /** Standby: the consumer's confirmed position as the leader last published it. */
  leader_confirmed_flush_lsn?: string | null;
}

export interface LogicalSnapshot {
  role: 'leader' | 'standby';
  slots: LogicalSlotStatus[];
  /** Date.now() of the reading. */
  checkedAt: number;
}
