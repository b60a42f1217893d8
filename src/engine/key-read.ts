/**
 * Key reads: one key's records at the offsets the key index names, from the
 * cold tier (one query through its scalar index on the key columns) below the
 * hot log and from the frames holding them above it, as records
 * (`keyBatches`) or as columns (`keyColumns`). Both check the cold tier's
 * answer against the key index and read each hot frame once.
 */
import { makeVector } from 'apache-arrow';
import { CHANGE_COLUMN, decodeBatch, decodeIpc, decodeValuesInto, type StoredBatch } from './arrow-codec.js';
import type { ColdTable, KeyMatch } from './cold-tier.js';
import type { CompiledColumn, TableSchema } from './schema.js';
import type { KeyColumns, KeyRecord } from './table-scan.js';
import { frameRuns, payloadOf, type UnionSource } from './union-read.js';

/**
 * A canonical key → one Lance literal per key column, or undefined when a key
 * column's type has no exact literal (then the caller reads the key's frames).
 */
export function keyMatch(schema: TableSchema, key: string): KeyMatch[] | undefined {
  const parts: unknown[] = schema.keyColumns.length === 1 ? [key] : JSON.parse(key);
  const out: KeyMatch[] = [];
  for (let i = 0; i < schema.keyColumns.length; i++) {
    const c = schema.keyColumns[i];
    const v = String(parts[i]);
    switch (c.type.kind) {
      case 'int32':
      case 'int64':
        if (!/^-?\d+$/.test(v)) return undefined;
        out.push({ column: c.name, literal: v });
        break;
      case 'bool':
        if (v !== 'true' && v !== 'false') return undefined;
        out.push({ column: c.name, literal: v });
        break;
      case 'string':
        // Quoted as data: a quote is doubled, nothing else is special inside a SQL string literal.
        out.push({ column: c.name, literal: `'${v.replaceAll("'", "''")}'` });
        break;
      default:
        return undefined;
    }
  }
  return out;
}

/**
 * The records at `wanted` (ascending offsets, all of one key), in offset
 * order, an array at a time: those below the hot log from the cold tier
 * through its scalar index on the key columns (one query), the rest from the
 * frames holding them, each read once (close ones together) and only the
 * wanted rows built.
 */
export async function* keyBatches(src: UnionSource, schema: TableSchema, key: string, wanted: readonly number[], only: Set<string> | undefined): AsyncGenerator<KeyRecord[]> {
  // Pinned from the start: tiering may delete the segments of the hot frames this read counts on (coldBelow was
  // looked up before the cold query) while that query runs, and a segment deleted while no read pins it is closed.
  src.log.pin();
  try {
    let i = 0;
    const cold = coldPart(src, schema, key, wanted);
    if (cold) {
      const recs = await coldKeyRecords(cold.table, schema.columns, cold.match, wanted[0], wanted[cold.n - 1] + 1, cold.n, only);
      if (recs.length !== cold.n || recs.some((r, j) => r.offset !== wanted[j])) throw coldMismatch(schema, key, recs.length, cold.n);
      yield recs;
      i = cold.n;
    }
    // One array per read (frameRuns), not per frame.
    read: for await (const run of frameRuns(src, framesHolding(src, wanted, i))) {
      const out: KeyRecord[] = [];
      for (const { meta, bytes } of run) {
        const at: number[] = [];
        for (let j = i; j < wanted.length && wanted[j] < meta.firstOffset + meta.count; j++) at.push(wanted[j] - meta.firstOffset);
        if (at.length === 0 || at[0] < 0) {
          if (out.length) yield out;
          break read;
        }
        const { changes, rows } = decodeBatch(decodeIpc(payloadOf(bytes)), schema.columns, only, at);
        for (let k = 0; k < at.length; k++) out.push({ offset: meta.firstOffset + at[k], change: changes[at[k]], commitTime: meta.commitTime, row: rows[k] });
        i += at.length;
      }
      if (out.length) yield out;
    }
    if (i < wanted.length) throw new Error(`no frame holds offset ${wanted[i]} of table "${schema.name}"`);
  } finally {
    src.log.unpin();
  }
}

/**
 * `keyBatches` as columns: the records at `wanted` (ascending offsets, all of
 * one key), in offset order, with only the values of `columns` (all of them
 * the schema's), a chunk per read (a run of hot frames, or the cold tier's
 * query). No object is made per record: rebuilding an entity's state needs
 * a few columns of each record, and 10,000 records, each with its row, were
 * most of what reconstructing bench:audit's log entity allocated.
 */
export async function* keyColumns(src: UnionSource, schema: TableSchema, key: string, wanted: readonly number[], columns: readonly string[]): AsyncGenerator<KeyColumns> {
  const cols = columns.map((name) => {
    const c = schema.byName.get(name);
    if (!c) throw new Error(`table "${schema.name}" has no column "${name}"`);
    return c;
  });
  src.log.pin();
  try {
    let i = 0;
    const cold = coldPart(src, schema, key, wanted);
    if (cold) {
      const { n } = cold;
      const got = await coldKeyColumns(cold.table, cols, cold.match, wanted[0], wanted[n - 1] + 1, n);
      let same = got.count === n;
      for (let j = 0; same && j < n; j++) same = got.offsets[j] === wanted[j];
      if (!same) throw coldMismatch(schema, key, got.count, n);
      yield got;
      i = n;
    }
    const at: number[] = [];
    // Values are copied out of the frames (numbers, and strings made from the bytes), so one read buffer serves every run.
    read: for await (const run of frameRuns(src, framesHolding(src, wanted, i), {})) {
      const lastMeta = run[run.length - 1].meta;
      let n = i;
      while (n < wanted.length && wanted[n] < lastMeta.firstOffset + lastMeta.count) n++;
      const out = newColumns(columns, n - i);
      let w = 0;
      for (const { meta, bytes } of run) {
        at.length = 0;
        for (let j = i; j < wanted.length && wanted[j] < meta.firstOffset + meta.count; j++) at.push(wanted[j] - meta.firstOffset);
        if (at.length === 0 || at[0] < 0) {
          out.count = w;
          if (w) yield out;
          break read;
        }
        const changes = decodeValuesInto(decodeIpc(payloadOf(bytes)), cols, at, out.values, w);
        for (let k = 0; k < at.length; k++, w++) {
          out.offsets[w] = meta.firstOffset + at[k];
          out.changes[w] = changes[at[k]];
          out.commitTimes[w] = meta.commitTime;
        }
        i += at.length;
      }
      out.count = w;
      if (w) yield out;
    }
    if (i < wanted.length) throw new Error(`no frame holds offset ${wanted[i]} of table "${schema.name}"`);
  } finally {
    src.log.unpin();
  }
}

/**
 * The hot frames holding `wanted[from..]`, each once, in order: a search per
 * frame, not per offset (offsets the frame found last holds are passed by);
 * one per offset was ~4% of replaying bench:audit's log entity (10,000
 * offsets in 2,000 frames).
 */
function framesHolding(src: UnionSource, wanted: readonly number[], from: number): number[] {
  const idx: number[] = [];
  let end = -Infinity;
  for (let j = from; j < wanted.length; j++) {
    if (wanted[j] < end) continue;
    const f = src.frames.find(wanted[j]);
    idx.push(f);
    end = src.frames.endOffsetOf(f);
  }
  return idx;
}

/**
 * The first `n` of `wanted` (ascending), those below the hot log, to be read
 * from the cold tier `table` with `match`; undefined when none is below it or
 * the key cannot be matched there. Asked after the read pins the hot log.
 */
function coldPart(src: UnionSource, schema: TableSchema, key: string, wanted: readonly number[]): { table: ColdTable; match: KeyMatch[]; n: number } | undefined {
  const coldBelow = src.coldBelow;
  const match = src.cold && wanted.length && wanted[0] < coldBelow ? keyMatch(schema, key) : undefined;
  if (!match) return undefined;
  let n = 0;
  while (n < wanted.length && wanted[n] < coldBelow) n++;
  return { table: src.cold!, match, n };
}

const coldMismatch = (schema: TableSchema, key: string, got: number, expected: number): Error =>
  new Error(`the cold tier's records of key ${key} in table "${schema.name}" differ from the key index (${got} records, ${expected} expected)`);

function newColumns(columns: readonly string[], n: number): KeyColumns {
  return { count: n, offsets: new Float64Array(n), changes: new Int8Array(n), commitTimes: new Float64Array(n), columns, values: columns.map(() => new Array<unknown>(n)) };
}

/**
 * `coldKeyRecords` as columns: one key's records in [from, to) from the cold
 * tier, ascending by offset. Each batch the query answers is decoded straight
 * into the columns (values as the hot log's are, offsets and commit times from
 * their typed arrays), and reordered only when the batches did not come in
 * offset order: reading the offsets value by value through Arrow's vectors and
 * placing every record through a sorted permutation was a tenth of the main
 * thread's part of replaying bench:audit's log entity from Lance.
 */
async function coldKeyColumns(cold: ColdTable, cols: CompiledColumn[], key: KeyMatch[], from: number, to: number, expected: number): Promise<KeyColumns> {
  const batches = (await cold.keyRecords(key, from, to, expected)).map((ipc) => decodeIpc(ipc));
  let n = 0;
  for (const b of batches) n += b.numRows;
  const out = newColumns(cols.map((c) => c.name), n);
  let w = 0;
  for (const stored of batches) {
    const changes = decodeValuesInto(stored, cols, undefined, out.values, w);
    out.changes.set(changes, w);
    numbersInto(stored, '_asof_offset', out.offsets, w);
    numbersInto(stored, '_asof_commit_time', out.commitTimes, w);
    w += stored.numRows;
  }
  for (let i = 1; i < n; i++) if (out.offsets[i] <= out.offsets[i - 1]) return byOffset(out);
  return out;
}

/** An int64 or timestamp column of a cold batch (no nulls) as numbers into `into` from `at`. */
function numbersInto(stored: StoredBatch, name: string, into: Float64Array, at: number): void {
  const data = stored.column(name);
  if (!data) throw new Error(`the cold tier's batch has no column ${name}`);
  const values = data.values as ArrayLike<bigint | number>;
  for (let k = 0; k < stored.numRows; k++) into[at + k] = Number(values[data.offset + k]);
}

/** The columns' records reordered ascending by offset. */
function byOffset(c: KeyColumns): KeyColumns {
  const order = Array.from({ length: c.count }, (_, i) => i).sort((a, b) => c.offsets[a] - c.offsets[b]);
  const out = newColumns(c.columns, c.count);
  order.forEach((i, w) => {
    out.offsets[w] = c.offsets[i];
    out.changes[w] = c.changes[i];
    out.commitTimes[w] = c.commitTimes[i];
    for (let j = 0; j < c.values.length; j++) out.values[j][w] = c.values[j][i];
  });
  return out;
}

/** One key's records from the cold tier in [from, to) (`expected` of them, by the key index), ascending by offset, rows decoded as the hot log's are. */
export async function coldKeyRecords(
  cold: ColdTable,
  columns: CompiledColumn[],
  key: KeyMatch[],
  from: number,
  to: number,
  expected: number,
  only: Set<string> | undefined,
): Promise<KeyRecord[]> {
  const out: KeyRecord[] = [];
  for (const ipc of await cold.keyRecords(key, from, to, expected)) {
    const stored = decodeIpc(ipc);
    const { rows } = decodeBatch(stored, columns, only);
    const offsets = makeVector(stored.column('_asof_offset')!);
    const commits = makeVector(stored.column('_asof_commit_time')!);
    const changes = makeVector(stored.column(CHANGE_COLUMN)!);
    for (let i = 0; i < stored.numRows; i++) {
      out.push({ offset: Number(offsets.get(i)), change: Number(changes.get(i)), commitTime: Number(commits.get(i)), row: rows[i] });
    }
  }
  return out.sort((a, b) => a.offset - b.offset);
}
