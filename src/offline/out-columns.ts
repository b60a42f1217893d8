/**
 * Output columns of a training set. Numeric features (int32, int64, float32,
 * float64, timestamp) are held typed — doubles plus a validity byte, int64
 * beyond 2^53 on the side — so a million values are not a million boxed
 * numbers; other columns are plain arrays of canonical values.
 */
export interface NumberColumn {
  values: Float64Array;
  /** 1 where the value is set, 0 for null. */
  valid: Uint8Array;
  /** Row → int64 value beyond 2^53 (its `values` entry is NaN). */
  big?: Map<number, bigint>;
}

export type Column = unknown[] | NumberColumn;

/** Rows of output: the entity rows' columns, then the features. */
export interface OutBatch {
  n: number;
  columns: Column[];
}

const NUMERIC = new Set(['int32', 'int64', 'float32', 'float64', 'timestamp']);

/** An all-null column of n rows for a feature of this type kind. */
export function newColumn(kind: string, n: number): Column {
  return NUMERIC.has(kind) ? { values: new Float64Array(n), valid: new Uint8Array(n) } : new Array(n).fill(null);
}

export const isNumberColumn = (c: Column): c is NumberColumn => !Array.isArray(c);

/** The canonical value at row i (null when unset). */
export function cell(c: Column, i: number): unknown {
  if (Array.isArray(c)) return c[i];
  if (c.valid[i] === 0) return null;
  const v = c.values[i];
  return v === v ? v : c.big!.get(i)!;
}

export function setCell(c: Column, i: number, v: unknown): void {
  if (Array.isArray(c)) {
    c[i] = v;
    return;
  }
  if (v === null || v === undefined) {
    c.valid[i] = 0;
    return;
  }
  c.valid[i] = 1;
  if (typeof v === 'bigint') {
    c.values[i] = NaN;
    (c.big ??= new Map()).set(i, v);
  } else c.values[i] = v as number;
}

/** Rows [from, to) as a column of their own (views over typed data, not copies). */
export function sliceColumn(c: Column, from: number, to: number): Column {
  if (Array.isArray(c)) return c.slice(from, to);
  const out: NumberColumn = { values: c.values.subarray(from, to), valid: c.valid.subarray(from, to) };
  if (c.big) for (const [i, v] of c.big) if (i >= from && i < to) (out.big ??= new Map()).set(i - from, v);
  return out;
}

/** A column as a plain array of canonical values. */
export const toArray = (c: Column, n: number): unknown[] => (Array.isArray(c) ? c : Array.from({ length: n }, (_, i) => cell(c, i)));
