/**
 * One pass over a view's source changelog, columnar: for each stored batch,
 * the records of the entities a training set asks about, handed to a sink in
 * offset order. Nothing here decides values; the sinks (pit.ts) do.
 *
 * Per kept record the sink gets: its entity (dense id), offset, commit time,
 * event time (the evaluator's `eventTimeOf`: the event-time column, else the
 * commit time; a delete happens at its commit) and change type, plus the Arrow
 * batch to read value columns from. `-U` records are dropped: no rule reads
 * them (a pk version is its +I/+U, or -D for absent).
 */
import type { ArrowBatch } from '../engine/table.js';
import { CHANGE_COLUMN, ChangeType } from '../engine/arrow-codec.js';
import type { Table } from '../engine/table.js';
import type { ColumnType } from '../engine/types.js';
import { readTimes, valueStore, type ValueStore } from './columns.js';
import type { EntityIndex } from './entity-index.js';

/** The kept records of one stored batch; arrays are valid up to `count`. */
export interface KeptBatch {
  count: number;
  /** Row of each kept record within `batch`. */
  rows: Int32Array;
  ent: Int32Array;
  eventTime: Float64Array;
  change: Uint8Array;
  /** Offset of the batch's row 0; a record's offset is firstOffset + its row. */
  firstOffset: number;
  /** Epoch ms, the same for the whole batch (one commit). */
  commitTime: number;
  batch: ArrowBatch;
  /** Rows in `batch`. */
  n: number;
}

export interface RecordSink {
  add(b: KeptBatch): void;
}

export interface ScanOptions {
  table: Table;
  /** Records [0, toOffset): the snapshot the training set reads. */
  toOffset: number;
  entityColumn: string;
  entityType: ColumnType;
  /** The event-time column of the source, if any. */
  eventTimeColumn?: string;
  /** Entities asked about → dense id. */
  ids: EntityIndex;
  /** Keep only entities with id % count === index. */
  partition: { count: number; index: number };
}

/** Scans `[0, toOffset)`, handing kept records to `sink` batch by batch. */
export async function scanSource(opts: ScanOptions, sink: RecordSink): Promise<void> {
  const { count: parts, index: part } = opts.partition;
  let cap = 0;
  let rows = new Int32Array(0);
  let ids = new Int32Array(0);
  let eventTime = new Float64Array(0);
  let change = new Uint8Array(0);
  for await (const b of readAhead(opts.table.scanArrow({ toOffset: opts.toOffset }))) {
    const m = b.count;
    if (cap < m) {
      cap = m;
      rows = new Int32Array(m);
      ids = new Int32Array(m);
      eventTime = new Float64Array(m);
      change = new Uint8Array(m);
    }
    const changes = b.batch.getChild(CHANGE_COLUMN)!.data[0].values as Int8Array;
    opts.ids.idsOf(b.batch.getChild(opts.entityColumn), opts.entityType, m, ids);
    const times = opts.eventTimeColumn ? readTimes(b.batch.getChild(opts.eventTimeColumn), m) : undefined;
    let kept = 0;
    for (let i = 0; i < m; i++) {
      const id = ids[i];
      const c = changes[i];
      if (id < 0 || c === ChangeType.UPDATE_BEFORE || (parts > 1 && id % parts !== part)) continue;
      const et = times ? times[i] : NaN;
      rows[kept] = i;
      ids[kept] = id;
      change[kept] = c;
      eventTime[kept++] = c === ChangeType.DELETE || et !== et ? b.commitTime : et;
    }
    if (kept) sink.add({ count: kept, rows, ent: ids, eventTime, change, firstOffset: b.firstOffset, commitTime: b.commitTime, batch: b.batch, n: m });
  }
}

/**
 * Asks for the next item before the current one is handed out, so the next
 * frame's read is in flight while this one is processed.
 */
export async function* readAhead<T>(it: AsyncIterator<T>): AsyncGenerator<T> {
  let next = it.next();
  for (;;) {
    const cur = await next;
    if (cur.done) return;
    next = it.next();
    yield cur.value;
  }
}

/** Every kept record, in offset order, with the values of `columns`: the evaluator path's input. */
export interface RecordSet {
  n: number;
  ent: Int32Array;
  offset: Float64Array;
  commitTime: Float64Array;
  eventTime: Float64Array;
  change: Uint8Array;
  /** One store per entry of `columns`, indexed by record. */
  values: ValueStore[];
  columns: string[];
}

function grow<T extends Float64Array | Int32Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2, 4096));
  b.set(a);
  return b;
}

/** A sink that keeps everything, up to `maxRecords`; past it, only counts (the caller splits the work). */
export class RecordCollector implements RecordSink {
  readonly set: RecordSet;
  counted = 0;

  constructor(
    private readonly columns: { name: string; type: ColumnType }[],
    private readonly maxRecords: number,
  ) {
    this.set = { n: 0, ent: new Int32Array(0), offset: new Float64Array(0), commitTime: new Float64Array(0), eventTime: new Float64Array(0), change: new Uint8Array(0), values: columns.map((c) => valueStore(c.type)), columns: columns.map((c) => c.name) };
  }

  get overflowed(): boolean {
    return this.counted > this.maxRecords;
  }

  add(b: KeptBatch): void {
    this.counted += b.count;
    if (this.overflowed) return;
    const s = this.set;
    const need = s.n + b.count;
    s.ent = grow(s.ent, need);
    s.offset = grow(s.offset, need);
    s.commitTime = grow(s.commitTime, need);
    s.eventTime = grow(s.eventTime, need);
    s.change = grow(s.change, need);
    for (let k = 0; k < b.count; k++) {
      const j = s.n + k;
      s.ent[j] = b.ent[k];
      s.offset[j] = b.firstOffset + b.rows[k];
      s.commitTime[j] = b.commitTime;
      s.eventTime[j] = b.eventTime[k];
      s.change[j] = b.change[k];
    }
    this.columns.forEach((c, i) => s.values[i].append(b.batch.getChild(c.name), b.rows, b.count, b.n));
    s.n = need;
  }
}

/** Bytes one collected record costs with these value columns. */
export const recordBytes = (columns: { type: ColumnType }[]): number => 29 + columns.reduce((s, c) => s + valueStore(c.type).bytesPerValue, 0);
