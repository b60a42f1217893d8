/**
 * One pass over a view's source changelog: keep the records of the entities a
 * training set asks about, columnar. Records arrive in offset order and are
 * kept in offset order.
 *
 * What is kept per record: entity (dense id), offset, commit time, event time
 * (the evaluator's `eventTimeOf`: the event-time column, else the commit time;
 * a delete happens at its commit) and change type; plus the values of the
 * source columns the requested features read. `-U` records are dropped: no
 * rule reads them (a pk version is its +I/+U, or -D for absent).
 */
import { CHANGE_COLUMN, ChangeType } from '../engine/arrow-codec.js';
import type { Table } from '../engine/table.js';
import type { ColumnType } from '../engine/types.js';
import { readKeys, readTimes, valueStore, type EntityKey, type ValueStore } from './columns.js';

export interface RecordSet {
  n: number;
  /** Dense entity id (index into the chunk's entity list). */
  ent: Int32Array;
  offset: Float64Array;
  /** Epoch ms. */
  commitTime: Float64Array;
  /** Epoch ms, as the evaluator's `eventTimeOf` defines it. */
  eventTime: Float64Array;
  change: Uint8Array;
  /** One store per entry of `columns`, indexed by record. */
  values: ValueStore[];
  columns: string[];
}

export interface ScanOptions {
  table: Table;
  /** Records [0, toOffset): the snapshot the training set reads. */
  toOffset: number;
  entityColumn: string;
  entityType: ColumnType;
  /** The event-time column of the source, if any. */
  eventTimeColumn?: string;
  /** Source columns whose values to keep. */
  columns: { name: string; type: ColumnType }[];
  /** Entities asked about → dense id. */
  ids: Map<EntityKey, number>;
  /** Keep only entities with id % count === index. */
  partition: { count: number; index: number };
  /** Stop keeping values past this many records (the memory budget); the pass then only counts. */
  maxRecords: number;
  /** Called between batches so long scans do not hog the event loop. */
  onBatch?: () => Promise<void> | void;
}

export type ScanResult = { records: RecordSet } | { overflow: number };

function grow<T extends Float64Array | Int32Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/** Scans `[0, toOffset)` and keeps what `opts` asks for. Memory: ~29 bytes per kept record plus the values. */
export async function scanRecords(opts: ScanOptions): Promise<ScanResult> {
  let cap = 4096;
  let ent = new Int32Array(cap);
  let offset = new Float64Array(cap);
  let commitTime = new Float64Array(cap);
  let eventTime = new Float64Array(cap);
  let change = new Uint8Array(cap);
  const values = opts.columns.map((c) => valueStore(c.type));
  let n = 0;
  let counted = 0;
  const { count: parts, index: part } = opts.partition;
  let rows = new Int32Array(1024);
  for await (const b of opts.table.scanArrow({ toOffset: opts.toOffset })) {
    const m = b.count;
    const changes = b.batch.getChild(CHANGE_COLUMN)!.data[0].values as Int8Array;
    const keys = readKeys(b.batch.getChild(opts.entityColumn), opts.entityType, m);
    if (rows.length < m) rows = new Int32Array(m);
    const ids = new Int32Array(m);
    let kept = 0;
    for (let i = 0; i < m; i++) {
      const key = keys[i];
      if (key === null || changes[i] === ChangeType.UPDATE_BEFORE) continue;
      const id = opts.ids.get(key);
      if (id === undefined || (parts > 1 && id % parts !== part)) continue;
      rows[kept] = i;
      ids[kept++] = id;
    }
    counted += kept;
    if (counted > opts.maxRecords) {
      await opts.onBatch?.();
      continue;
    }
    if (n + kept > cap) {
      cap = Math.max(n + kept, cap * 2);
      ent = grow(ent, cap);
      offset = grow(offset, cap);
      commitTime = grow(commitTime, cap);
      eventTime = grow(eventTime, cap);
      change = grow(change, cap);
    }
    const times = opts.eventTimeColumn ? readTimes(b.batch.getChild(opts.eventTimeColumn), m) : undefined;
    for (let k = 0; k < kept; k++) {
      const i = rows[k];
      const j = n + k;
      ent[j] = ids[k];
      offset[j] = b.firstOffset + i;
      commitTime[j] = b.commitTime;
      change[j] = changes[i];
      const et = times ? times[i] : NaN;
      eventTime[j] = changes[i] === ChangeType.DELETE || et !== et ? b.commitTime : et;
    }
    opts.columns.forEach((c, ci) => values[ci].append(b.batch.getChild(c.name), rows, kept, m));
    n += kept;
    await opts.onBatch?.();
  }
  if (counted > opts.maxRecords) return { overflow: counted };
  return { records: { n, ent, offset, commitTime, eventTime, change, values, columns: opts.columns.map((c) => c.name) } };
}

/** Bytes one kept record costs with these value columns. */
export const recordBytes = (columns: { type: ColumnType }[]): number => 29 + columns.reduce((s, c) => s + valueStore(c.type).bytesPerValue, 0);
