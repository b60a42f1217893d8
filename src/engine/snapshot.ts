/**
 * Snapshots of a pk table's latest state. A snapshot is one file holding the
 * offset it reflects (every record below it is applied) and the live rows as one
 * Arrow IPC stream. It is written to a temporary name, fsync'd and renamed, so a
 * crash leaves either the old snapshot or the new one, never half of one.
 * Start-up loads the newest snapshot and replays the changelog after it.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { decodeBatch, decodeIpc, encodeBatch } from './arrow-codec.js';
import type { Row, TableSchema } from './schema.js';

const MAGIC = 0x50534e41; // "ANSP"

export interface Snapshot {
  /** Records with offset < this are reflected. */
  offset: number;
  lastCommitTime: number;
  rows: Row[];
}

export async function writeSnapshot(path: string, schema: TableSchema, snap: { offset: number; lastCommitTime: number; rows: Row[] }): Promise<void> {
  const payload = encodeBatch(schema.columns, new Uint8Array(snap.rows.length), snap.rows);
  const header = Buffer.alloc(32);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(payload.length, 4);
  header.writeDoubleLE(snap.offset, 8);
  header.writeDoubleLE(snap.lastCommitTime, 16);
  header.writeUInt32LE(crc32(payload, crc32(header.subarray(8, 24))), 24);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writev([header, payload]);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Reads a snapshot; undefined when there is none or it is damaged (then the log is replayed from 0). */
export async function readSnapshot(path: string, schema: TableSchema): Promise<Snapshot | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch {
    return undefined;
  }
  if (buf.length < 32 || buf.readUInt32LE(0) !== MAGIC) return undefined;
  const len = buf.readUInt32LE(4);
  const payload = buf.subarray(32, 32 + len);
  if (payload.length !== len || crc32(payload, crc32(buf.subarray(8, 24))) !== buf.readUInt32LE(24)) return undefined;
  const { rows } = decodeBatch(decodeIpc(payload), schema.columns);
  return { offset: buf.readDoubleLE(8), lastCommitTime: buf.readDoubleLE(16), rows };
}

export async function removeSnapshot(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}
