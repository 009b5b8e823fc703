// Copies of the leader's logical replication slots on a standby (PostgreSQL 11 to 15, which can
// neither create a logical slot on a standby nor synchronise one: both arrive in 16 and 17).
//
// As Patroni's copy_logical_slots: the leader's slot is read as the bytes of its on-disk state,
// pg_replslot/<name>/state (pg_read_binary_file, granted to the rewind role at bootstrap), right
// after a CHECKPOINT there so that the file holds the slot's current restart_lsn, catalog_xmin and
// confirmed_flush (a slot is written to disk at checkpoints). The standby, stopped, gets the
// same file (written to <name>.tmp, fsynced, renamed), and reads it at its next start. The file
// carries the database's OID: the same on a physical standby, whose catalogs are the leader's.
import { chown, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { splitHostPort } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';
import { fsyncDir } from './datadir.ts';
import type { RunAs } from './exec.ts';
import { psql, type ReplicationContext } from './replication.ts';
import type { Upstream } from './types.ts';

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;
/** A slot's state file is a few hundred bytes (ReplicationSlotOnDisk); anything larger is not one. */
const MAX_STATE_BYTES = 65536;

/** One slot as read from the leader: its identity and the bytes of its state file. */
export interface SlotState {
  name: string;
  type: string;
  plugin: string | null;
  database: string | null;
  state: Buffer;
}

/** Read the state files of `names` from the leader `from` (which must not be in recovery). */
export async function readSlotStates(ctx: ReplicationContext, from: Upstream, names: string[]): Promise<SlotState[]> {
  if (names.length === 0) return [];
  const bad = names.filter((n) => !SLOT_NAME.test(n));
  if (bad.length > 0) throw new PgHaError('PGHA_PG_COMMAND', `not valid slot names: ${bad.join(', ')}`);
  const { host, port } = splitHostPort(from.conn);
  await ctx.writePassfile(from, true);
  // The names are [a-z0-9_] (checked above): safe to write as literals (psql -c takes no parameters).
  const list = names.map((n) => `'${n}'`).join(',');
  await psql(ctx, host, port, 'checkpoint');
  const text = await psql(ctx, host, port, `select coalesce(json_agg(json_build_object('name', slot_name, 'type', slot_type,
      'plugin', plugin, 'database', database,
      'state', encode(pg_read_binary_file('pg_replslot/' || slot_name || '/state', 0, ${MAX_STATE_BYTES}, false), 'base64'))), '[]')
    from pg_replication_slots where slot_name in (${list}) and not pg_is_in_recovery()`);
  const rows = JSON.parse(text) as Array<Omit<SlotState, 'state'> & { state: string }>;
  return rows.map((r) => ({ ...r, state: Buffer.from(r.state, 'base64') }));
}

/** Write each slot's state into the stopped server's pg_replslot, replacing any older copy. */
export async function installSlotStates(dataDir: string, states: SlotState[], runAs: RunAs | undefined): Promise<void> {
  const root = join(dataDir, 'pg_replslot');
  for (const s of states) {
    if (!SLOT_NAME.test(s.name)) throw new PgHaError('PGHA_PG_COMMAND', `not a valid slot name: ${s.name}`);
    const dir = join(root, s.name);
    const tmp = `${dir}.tmp`; // PostgreSQL itself removes a leftover <name>.tmp at start
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { mode: 0o700 });
    const fh = await open(join(tmp, 'state'), 'wx', 0o600);
    try {
      await fh.writeFile(s.state);
      if (runAs !== undefined) await fh.chown(runAs.uid, runAs.gid);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (runAs !== undefined) await chown(tmp, runAs.uid, runAs.gid);
    await fsyncDir(tmp);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    await fsyncDir(root);
  }
}

/**
 * PostgreSQL 15's pg_replslot/<name>/state (slot.c, ReplicationSlotOnDisk): magic, checksum,
 * version, length (4 bytes each), then ReplicationSlotPersistentData: name (64), database OID
 * (4), persistency, xmin, catalog_xmin (4 each), restart_lsn, invalidated_at, confirmed_flush
 * (8 each, little-endian on the platforms PostgreSQL runs pgha on), ... plugin (64).
 */
const SLOT_MAGIC = 0x1051ca1;
const OFFSET = { name: 16, database: 80, restartLsn: 96, confirmedFlush: 112 } as const;

/** Name, database OID and confirmed_flush of a slot state file (pure); null when it is not one. */
export function parseSlotState(b: Buffer): { name: string; database: number; confirmedFlush: number } | null {
  if (b.length < OFFSET.confirmedFlush + 8 || b.readUInt32LE(0) !== SLOT_MAGIC) return null;
  const raw = b.subarray(OFFSET.name, OFFSET.name + 64);
  const end = raw.indexOf(0);
  const confirmed = b.readBigUInt64LE(OFFSET.confirmedFlush);
  if (confirmed > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { name: raw.subarray(0, end < 0 ? 64 : end).toString('utf8'), database: b.readUInt32LE(OFFSET.database), confirmedFlush: Number(confirmed) };
}

/**
 * The stopped server's logical slots and their confirmed_flush, read from pg_replslot: after a
 * clean stop the shutdown checkpoint wrote each slot's last confirmed position there.
 */
export async function readStoppedSlotPositions(dataDir: string): Promise<Record<string, number>> {
  const root = join(dataDir, 'pg_replslot');
  const out: Record<string, number> = {};
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!SLOT_NAME.test(name)) continue;
    const s = parseSlotState(await readFile(join(root, name, 'state')).catch(() => Buffer.alloc(0)));
    if (s !== null && s.database !== 0 && s.name === name) out[name] = s.confirmedFlush;
  }
  return out;
}
