/**
 * Where a pk state (pk-state.ts) keeps its rows' values, row-major: one
 * row store per kind of column, numbers (int32, int64 that fit in 2^53,
 * float32 as already rounded, float64, timestamp) in a Float64Array, bools
 * in a Uint8Array, anything else (strings, json, lists, structs, vectors) in
 * a plain array, a slot's values of each kind side by side; and a `Column`
 * per table column that reads and writes its position of every row.
 *
 * Null is NaN in a Float64Array (no canonical number is NaN: coercion refuses
 * non-finite numbers) and 2 in a bool column; a value a typed column cannot
 * hold (an int64 beyond 2^53 as a bigint, and to be safe any value of another
 * kind) goes to that column's small `odd` map, marked NaN or 3. So every value
 * reads back exactly as written (Object.is), -0 included.
 */
import type { ColumnType } from './types.js';

export interface Column {
  put(slot: number, v: unknown): void;
  get(slot: number): unknown;
  /** Drops what the slot holds (a freed slot must not keep a string or object alive). */
  free(slot: number): void;
  /** This column's part of a copy of its rows (`rows`, made by Rows.copy). */
  copy(rows: Rows): Column;
}

/**
 * The values of one kind of column (numbers, bools, anything else) of every
 * slot, row-major: slot s's values are at [s * width, (s + 1) * width). One
 * entity's values sit together, so reading a row touches a cache line or two
 * where a typed array per column cost one miss (and often a TLB miss) per
 * column: with 100,000 entities of 20 columns read in random order, ~0.55 µs
 * of a cold lookup (session 11's measurement, 100,000 distinct entities
 * against 2,000). Empty positions read as `empty` (the kind's null).
 */
export class Rows<A extends Float64Array | Uint8Array | unknown[] = Float64Array | Uint8Array | unknown[]> {
  constructor(
    public vals: A,
    public width: number,
    private readonly make: (n: number) => A,
  ) {}

  /** Room for slots [0, cap), `width` values each; new slots and new positions read as null. */
  resize(cap: number, width = this.width): void {
    const next = this.make(cap * width);
    const n = Math.min(cap, Math.floor(this.vals.length / Math.max(1, this.width)));
    if (width === this.width) copyInto(next, this.vals, 0, n * width);
    else for (let s = 0; s < n; s++) for (let j = 0; j < this.width; j++) next[s * width + j] = this.vals[s * this.width + j];
    this.vals = next;
    this.width = width;
  }

  /** An independent copy of slots [0, used). */
  copy(used: number): Rows<A> {
    return new Rows(this.vals.slice(0, used * this.width) as A, this.width, this.make);
  }
}

function copyInto<A extends Float64Array | Uint8Array | unknown[]>(to: A, from: A, at: number, n: number): void {
  if (Array.isArray(to)) for (let i = 0; i < n; i++) to[i] = (from as unknown[])[at + i];
  else (to as Float64Array | Uint8Array).set((from as Float64Array | Uint8Array).subarray(at, at + n));
}

const numberRows = (width: number, cap: number): Rows<Float64Array> => new Rows(new Float64Array(cap * width).fill(NaN), width, (n) => new Float64Array(n).fill(NaN));
const boolRows = (width: number, cap: number): Rows<Uint8Array> => new Rows(new Uint8Array(cap * width).fill(NULL), width, (n) => new Uint8Array(n).fill(NULL));
const valueRows = (width: number, cap: number): Rows<unknown[]> => new Rows(new Array<unknown>(cap * width).fill(null), width, (n) => new Array<unknown>(n).fill(null));

export class NumberColumn implements Column {
  odd = new Map<number, unknown>();
  constructor(
    readonly rows: Rows<Float64Array>,
    readonly at: number,
  ) {}

  put(slot: number, v: unknown): void {
    const i = slot * this.rows.width + this.at;
    if (typeof v === 'number' && v === v) {
      this.rows.vals[i] = v;
      if (this.odd.size !== 0) this.odd.delete(slot);
    } else {
      this.rows.vals[i] = NaN;
      if (v !== null) this.odd.set(slot, v);
      else if (this.odd.size !== 0) this.odd.delete(slot);
    }
  }
  get(slot: number): unknown {
    const v = this.rows.vals[slot * this.rows.width + this.at];
    if (v === v) return v;
    return this.odd.size !== 0 && this.odd.has(slot) ? this.odd.get(slot) : null;
  }
  free(slot: number): void {
    this.rows.vals[slot * this.rows.width + this.at] = NaN;
    if (this.odd.size !== 0) this.odd.delete(slot);
  }
  copy(rows: Rows): Column {
    const c = new NumberColumn(rows as Rows<Float64Array>, this.at);
    c.odd = new Map(this.odd);
    return c;
  }
}

const FALSE = 0;
const TRUE = 1;
const NULL = 2;
const ODD = 3;

class BoolColumn implements Column {
  odd = new Map<number, unknown>();
  constructor(
    readonly rows: Rows<Uint8Array>,
    readonly at: number,
  ) {}

  put(slot: number, v: unknown): void {
    if (this.odd.size !== 0) this.odd.delete(slot);
    const i = slot * this.rows.width + this.at;
    if (v === true) this.rows.vals[i] = TRUE;
    else if (v === false) this.rows.vals[i] = FALSE;
    else if (v === null) this.rows.vals[i] = NULL;
    else {
      this.rows.vals[i] = ODD;
      this.odd.set(slot, v);
    }
  }
  get(slot: number): unknown {
    const v = this.rows.vals[slot * this.rows.width + this.at];
    return v === TRUE ? true : v === FALSE ? false : v === NULL ? null : this.odd.get(slot);
  }
  free(slot: number): void {
    this.rows.vals[slot * this.rows.width + this.at] = NULL;
    if (this.odd.size !== 0) this.odd.delete(slot);
  }
  copy(rows: Rows): Column {
    const c = new BoolColumn(rows as Rows<Uint8Array>, this.at);
    c.odd = new Map(this.odd);
    return c;
  }
}

/** Strings, json, lists, structs, vectors: the values themselves (never changed in place: canonical rows are not mutated). */
class ValueColumn implements Column {
  constructor(
    readonly rows: Rows<unknown[]>,
    readonly at: number,
  ) {}

  put(slot: number, v: unknown): void {
    this.rows.vals[slot * this.rows.width + this.at] = v;
  }
  get(slot: number): unknown {
    return this.rows.vals[slot * this.rows.width + this.at];
  }
  free(slot: number): void {
    this.rows.vals[slot * this.rows.width + this.at] = null;
  }
  copy(rows: Rows): Column {
    return new ValueColumn(rows as Rows<unknown[]>, this.at);
  }
}

export type Kind = 'number' | 'bool' | 'value';

export function kindOf(t: ColumnType): Kind {
  switch (t.kind) {
    case 'int32':
    case 'int64':
    case 'float32':
    case 'float64':
    case 'timestamp':
      return 'number';
    case 'bool':
      return 'bool';
    default:
      return 'value';
  }
}

/** The three row stores of a state; a slot's version (see PkState.version) is position 0 of its number row. */
export interface Store {
  number: Rows<Float64Array>;
  bool: Rows<Uint8Array>;
  value: Rows<unknown[]>;
}

/** Empty stores for `types`, and their columns (the version is number position 0, so number columns start at 1). */
export function newStore(types: readonly ColumnType[], cap: number): { store: Store; cols: Column[] } {
  const count = { number: 1, bool: 0, value: 0 };
  for (const t of types) count[kindOf(t)]++;
  const store: Store = { number: numberRows(count.number, cap), bool: boolRows(count.bool, cap), value: valueRows(count.value, cap) };
  const at = { number: 1, bool: 0, value: 0 };
  return { store, cols: types.map((t) => column(store, kindOf(t), at[kindOf(t)]++)) };
}

export function column(store: Store, kind: Kind, at: number): Column {
  return kind === 'number' ? new NumberColumn(store.number, at) : kind === 'bool' ? new BoolColumn(store.bool, at) : new ValueColumn(store.value, at);
}

