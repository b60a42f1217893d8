/**
 * Columnar access to the changelog's Arrow batches: entity keys, times and
 * feature values read straight from the buffers, and growable stores that keep
 * the values of the records a scan retains. This is what lets a training set
 * touch a million records without making a million row objects.
 *
 * Canonical values are the engine's (schema.ts): int64 as a number when safe,
 * else bigint; timestamps as epoch ms (UTC); the rest as decodeColumn gives them.
 */
import type * as A from 'apache-arrow';
import { decodeColumn } from '../engine/arrow-codec.js';
import type { ColumnType } from '../engine/types.js';
import type { NumberColumn } from './out-columns.js';

/** A key as Maps compare it: numbers for integer and timestamp keys, strings for strings and big int64, booleans. */
export type EntityKey = number | string | boolean;

/** The canonical key of an entity value (the evaluator's `entityOf`, but keeping numbers numeric); null when absent. */
export function keyOfValue(v: unknown): EntityKey | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v as EntityKey;
}

export const TWO32 = 4294967296;

/** The one Data of a batch column (IPC batches carry one per column). */
export function dataOf(vec: A.Vector): A.Data {
  if (vec.data.length !== 1) throw new Error(`expected one data chunk per column, got ${vec.data.length}`);
  return vec.data[0];
}

export function validityOf(d: A.Data): ((i: number) => boolean) | undefined {
  if (d.nullCount === 0 || !d.nullBitmap || d.nullBitmap.length === 0) return undefined;
  const bits = d.nullBitmap;
  const off = d.offset;
  return (i) => ((bits[(off + i) >> 3] >> ((off + i) & 7)) & 1) === 1;
}

/**
 * An int64 / timestamp column as numbers: exact for |v| <= 2^53 - 1; other
 * values come back as NaN and are reported through `big` (index → bigint).
 */
function int64Numbers(d: A.Data, n: number, out: Float64Array, big?: (i: number, v: bigint) => void): void {
  const v = d.values as BigInt64Array;
  const halves = new Int32Array(v.buffer, v.byteOffset, n * 2);
  for (let i = 0; i < n; i++) {
    const hi = halves[2 * i + 1];
    const lo = halves[2 * i] >>> 0;
    if (hi >= -2097152 && hi < 2097152 && !(hi === -2097152 && lo === 0)) out[i] = hi * TWO32 + lo;
    else {
      out[i] = NaN;
      big?.(i, v[i]);
    }
  }
}

/** Times (epoch ms) of a timestamp column; NaN where null. */
export function readTimes(vec: A.Vector | null, n: number): Float64Array {
  const out = new Float64Array(n);
  if (!vec) return out.fill(NaN);
  const d = dataOf(vec);
  int64Numbers(d, n, out);
  const valid = validityOf(d);
  if (valid) for (let i = 0; i < n; i++) if (!valid(i)) out[i] = NaN;
  return out;
}

/**
 * A batch column as canonical values (what the engine's `decodeColumn` gives),
 * read from the buffers for scalar types: Arrow's per-value `get` costs more
 * than the rest of reading a table of entity rows.
 */
export function readValues(vec: A.Vector | null, type: ColumnType, n: number): unknown[] {
  if (!vec) return new Array(n).fill(null);
  const d = dataOf(vec);
  const valid = validityOf(d);
  const out: unknown[] = new Array(n);
  switch (type.kind) {
    case 'int32':
    case 'float32':
    case 'float64': {
      const v = d.values as Int32Array | Float32Array | Float64Array;
      for (let i = 0; i < n; i++) out[i] = v[i];
      break;
    }
    case 'int64':
    case 'timestamp': {
      const nums = new Float64Array(n);
      const raw = d.values as BigInt64Array;
      int64Numbers(d, n, nums);
      for (let i = 0; i < n; i++) {
        const x = nums[i];
        out[i] = x === x ? x : type.kind === 'timestamp' ? Number(raw[i]) : raw[i];
      }
      break;
    }
    case 'string': {
      const offsets = d.valueOffsets as Int32Array;
      const bytes = d.values as Uint8Array;
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) out[i] = buf.toString('utf8', offsets[i], offsets[i + 1]);
      break;
    }
    default:
      return decodeColumn(type, vec);
  }
  if (valid) for (let i = 0; i < n; i++) if (!valid(i)) out[i] = null;
  return out;
}

/** Entity keys of a batch column (see `EntityKey`); null where the value is null. */
export function readKeys(vec: A.Vector | null, type: ColumnType, n: number): (EntityKey | null)[] {
  const out: (EntityKey | null)[] = new Array(n).fill(null);
  if (!vec) return out;
  const d = dataOf(vec);
  const valid = validityOf(d);
  switch (type.kind) {
    case 'int64':
    case 'timestamp': {
      const nums = new Float64Array(n);
      int64Numbers(d, n, nums, (i, b) => (out[i] = b.toString()));
      for (let i = 0; i < n; i++) if (!Number.isNaN(nums[i])) out[i] = nums[i];
      break;
    }
    case 'int32': {
      const v = d.values as Int32Array;
      for (let i = 0; i < n; i++) out[i] = v[i];
      break;
    }
    case 'string': {
      const offsets = d.valueOffsets as Int32Array;
      const bytes = d.values as Uint8Array;
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) out[i] = buf.toString('utf8', offsets[i], offsets[i + 1]);
      break;
    }
    default: {
      const vals = decodeColumn(type, vec);
      for (let i = 0; i < n; i++) out[i] = keyOfValue(vals[i]);
    }
  }
  if (valid) for (let i = 0; i < n; i++) if (!valid(i)) out[i] = null;
  return out;
}

/** Values of retained records, appended batch by batch and read back by record index. */
export interface ValueStore {
  /** Appends the values of rows `rows[0..count)` of a batch column (null vector: the column is absent, all null). */
  append(vec: A.Vector | null, rows: Int32Array, count: number, n: number): void;
  get(i: number): unknown;
  /** Writes value i into a typed output column (numeric stores only). */
  copyInto?(i: number, out: NumberColumn, row: number): void;
  /** Keeps only the values at `indexes[0..count)`, which become 0..count-1 (the rest is garbage). */
  keep(indexes: Int32Array, count: number): void;
  readonly size: number;
  /** Approximate bytes per value, for memory budgeting. */
  readonly bytesPerValue: number;
}

function grow<T extends Float64Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2, 1024));
  b.set(a);
  return b;
}

/** int32, float32, float64, int64 and timestamp values as doubles, with a side map for int64 beyond 2^53. */
class NumberStore implements ValueStore {
  private v: Float64Array;
  private ok: Uint8Array;
  /** Values are allocated up to this many at first; more grow by doubling. */
  private static readonly FIRST = 1 << 18;
  private big?: Map<number, bigint>;
  private len = 0;
  readonly bytesPerValue = 9;
  constructor(
    private readonly kind: ColumnType['kind'],
    capacity: number,
  ) {
    this.v = new Float64Array(Math.min(Math.max(capacity, 1024), NumberStore.FIRST));
    this.ok = new Uint8Array(this.v.length);
  }

  append(vec: A.Vector | null, rows: Int32Array, count: number, n: number): void {
    this.v = grow(this.v, this.len + count);
    this.ok = grow(this.ok, this.len + count);
    const base = this.len;
    this.len += count;
    if (!vec) return void this.ok.fill(0, base, base + count);
    const d = dataOf(vec);
    const valid = validityOf(d);
    let src: ArrayLike<number>;
    if (this.kind === 'int64' || this.kind === 'timestamp') {
      const nums = new Float64Array(n);
      const bigs = new Map<number, bigint>();
      int64Numbers(d, n, nums, (i, b) => bigs.set(i, b));
      if (bigs.size) {
        this.big ??= new Map();
        for (let k = 0; k < count; k++) if (bigs.has(rows[k])) this.big.set(base + k, bigs.get(rows[k])!);
      }
      src = nums;
    } else src = d.values as Float64Array | Float32Array | Int32Array;
    for (let k = 0; k < count; k++) {
      const r = rows[k];
      this.v[base + k] = src[r];
      this.ok[base + k] = valid && !valid(r) ? 0 : 1;
    }
  }

  get(i: number): unknown {
    if (this.ok[i] === 0) return null;
    const x = this.v[i];
    return x === x ? x : this.big!.get(i)!;
  }

  get size(): number {
    return this.len;
  }

  copyInto(i: number, out: NumberColumn, row: number): void {
    const ok = this.ok[i];
    out.valid[row] = ok;
    if (!ok) return;
    const x = this.v[i];
    out.values[row] = x;
    if (x !== x) (out.big ??= new Map()).set(row, this.big!.get(i)!);
  }

  keep(indexes: Int32Array, count: number): void {
    const v = new Float64Array(Math.max(count, 1024));
    const ok = new Uint8Array(v.length);
    const big = this.big ? new Map<number, bigint>() : undefined;
    for (let k = 0; k < count; k++) {
      const i = indexes[k];
      v[k] = this.v[i];
      ok[k] = this.ok[i];
      if (big && this.big!.has(i)) big.set(k, this.big!.get(i)!);
    }
    this.v = v;
    this.ok = ok;
    this.big = big;
    this.len = count;
  }
}

/** Any other type: canonical values from the engine's decoder, kept in a plain array. */
class AnyStore implements ValueStore {
  private v: unknown[] = [];
  readonly bytesPerValue = 32;
  constructor(private readonly type: ColumnType) {}

  append(vec: A.Vector | null, rows: Int32Array, count: number): void {
    if (!vec) {
      for (let k = 0; k < count; k++) this.v.push(null);
      return;
    }
    const vals = decodeColumn(this.type, vec);
    for (let k = 0; k < count; k++) this.v.push(vals[rows[k]]);
  }

  get(i: number): unknown {
    return this.v[i];
  }

  get size(): number {
    return this.v.length;
  }

  keep(indexes: Int32Array, count: number): void {
    const v = new Array(count);
    for (let k = 0; k < count; k++) v[k] = this.v[indexes[k]];
    this.v = v;
  }
}

/** A store for values of `type`; `capacity` (values) avoids regrowing when the count is known. */
export function valueStore(type: ColumnType, capacity = 0): ValueStore {
  switch (type.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
    case 'int64':
    case 'timestamp':
      return new NumberStore(type.kind, capacity);
    default:
      return new AnyStore(type);
  }
}
