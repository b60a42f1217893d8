/**
 * Records not yet in Lance, kept in memory and scored exactly.
 *
 * A segment holds the newest version of each key (pk tables; a delete or a
 * null vector is a tombstone) or every record (log tables, by offset). New
 * records go to the active segment; a flush seals it and opens a new one,
 * writes the sealed one to Lance, and only then drops it. A search takes the
 * segments as they are when it starts (newest first) and reads them before
 * its first await, so every record acknowledged before the search began is
 * either in a segment it read or already committed to Lance.
 */
import { ChangeType } from '../engine/arrow-codec.js';
import type { Row, TableSchema } from '../engine/schema.js';
import type { DistanceFn } from './distance.js';

export interface HotEntry {
  /** pk: the canonical key; log: the row's key, or its offset when the table has no key columns. */
  key: string;
  offset: number;
  commitTime: number;
  /** null: a tombstone (pk key deleted, or its vector set to null). */
  row: Row | null;
  vector?: Float32Array;
}

export class Segment {
  /** pk: by key; log: by offset. */
  readonly entries = new Map<string | number, HotEntry>();
  lastOffset = -1;
  lastCommit = 0;
  get size(): number {
    return this.entries.size;
  }
}

export interface Scored {
  key: string;
  offset: number;
  distance: number;
  /** Either the canonical row (hot) or its JSON text without the vector (Lance). */
  row?: Row;
  rowJson?: string;
  vector: Float32Array;
}

/** Turns changelog records into segment entries for one vector column. */
export class HotApplier {
  constructor(
    private readonly schema: () => TableSchema,
    private readonly column: string,
  ) {}

  /** Applies one record to `seg`; -U records carry nothing new. */
  apply(seg: Segment, offset: number, change: number, commitTime: number, row: Row): void {
    const s = this.schema();
    seg.lastOffset = offset;
    seg.lastCommit = commitTime;
    if (s.kind === 'pk') {
      if (change === ChangeType.UPDATE_BEFORE) return;
      const key = s.keyOf(row)!; // a pk table's key columns are never nullable
      const alive = change !== ChangeType.DELETE && row[this.column] !== null && row[this.column] !== undefined;
      seg.entries.delete(key); // re-inserted last: Map order stays offset order
      seg.entries.set(key, { key, offset, commitTime, row: alive ? row : null });
      return;
    }
    if (row[this.column] === null || row[this.column] === undefined) return;
    // A log row whose key is null is stored under "null" (as Lance datasets written before held it); its hit's key is
    // read from its row, never from this (search.ts hitKey).
    seg.entries.set(offset, { key: s.keyColumns.length ? (s.keyOf(row) ?? 'null') : String(offset), offset, commitTime, row });
  }
}

export function vectorOf(e: HotEntry, column: string): Float32Array {
  return (e.vector ??= Float32Array.from(e.row![column] as ArrayLike<number>));
}

/**
 * Scores the live entries of `segments` (newest first) that pass `test`.
 * Returns the scored entries and, for pk tables, every key the segments
 * hold with the offset of its newest version (live or not): Lance rows of
 * those keys at older offsets are stale.
 */
export function scoreHot(
  segments: Segment[],
  pk: boolean,
  column: string,
  query: Float32Array,
  distance: DistanceFn,
  test: ((row: Row) => boolean) | undefined,
): { scored: Scored[]; newest: Map<string, number> } {
  const scored: Scored[] = [];
  const newest = new Map<string, number>();
  for (const seg of segments) {
    for (const e of seg.entries.values()) {
      if (pk) {
        if (newest.has(e.key)) continue;
        newest.set(e.key, e.offset);
      }
      if (e.row === null || (test && !test(e.row))) continue;
      scored.push({ key: e.key, offset: e.offset, distance: distance(query, vectorOf(e, column)), row: e.row, vector: vectorOf(e, column) });
    }
  }
  return { scored, newest };
}
