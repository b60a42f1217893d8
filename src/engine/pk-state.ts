/**
 * The latest row of each key of a pk table, stored by column instead of one
 * object per row.
 *
 * Node 20 has no pointer compression: a row object of twelve numbers cost
 * about 370 bytes (the object, a boxed HeapNumber per non-small number, the
 * map entry and the key string). Here a key maps to a slot (a small integer)
 * and the slot's values sit in row stores by kind (pk-rows.ts): about 8
 * bytes a value plus the key's map entry. Rows are built fresh on each read,
 * so callers may keep them; every value reads back exactly as written.
 *
 * Keys: `IndexKey`s, as the key index uses them (a number for a table with
 * one int32/int64/timestamp key column when the value is a safe integer, else
 * the canonical key string; see TableSchema.indexKeyOf). With `intKey` (that
 * key column's index), number keys find their slot through IntSlots, a hash
 * table of slot numbers that reads the keys from the key column itself: 8 bytes
 * a key at most, where a Map entry costs about 28.
 */
import type { IndexKey } from './indexes.js';
import { column, kindOf, newStore, NumberColumn, type Column, type Store } from './pk-rows.js';
import type { Row } from './schema.js';
import type { ColumnType } from './types.js';
import { IntSlots } from './int-slots.js';

/** Row code over column stores, compiled once per column list (see row-code.ts for why). */
interface SlotCode {
  /** A fresh row from slot `slot` of `cols`. */
  read(cols: Column[], slot: number): Row;
  /** Writes a canonical row into slot `slot`. */
  write(cols: Column[], slot: number, row: Row): void;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function compileSlotCode(names: string[]): SlotCode {
  if (names.length === 0 || names.length > 10_000 || !names.every((n) => IDENT.test(n) && !(n in Object.prototype))) {
    return {
      read(cols, slot) {
        const row: Row = {};
        for (let j = 0; j < names.length; j++) row[names[j]] = cols[j].get(slot);
        return row;
      },
      write(cols, slot, row) {
        for (let j = 0; j < names.length; j++) cols[j].put(slot, row[names[j]] ?? null);
      },
    };
  }
  const idx = names.map((_, j) => j);
  const lit = (j: number): string => JSON.stringify(names[j]);
  const read = new Function('cols', 'slot', `"use strict"; return {${idx.map((j) => `${lit(j)}: cols[${j}].get(slot)`).join(', ')}};`) as SlotCode['read'];
  // A missing property (a row built before a column was added) is stored as null, as the changelog reads it back.
  const write = new Function('cols', 'slot', 'row', `"use strict"; ${idx.map((j) => `cols[${j}].put(slot, row[${lit(j)}] ?? null);`).join('\n')}`) as SlotCode['write'];
  return { read, write };
}

/** A consistent, independent copy of a state: later changes to the state do not show in it. */
export class FrozenState {
  constructor(
    private readonly code: SlotCode,
    private readonly cols: Column[],
    private readonly slots: Int32Array,
  ) {}

  get size(): number {
    return this.slots.length;
  }

  /** Every row, built one at a time (unordered). */
  *rows(): IterableIterator<Row> {
    for (let i = 0; i < this.slots.length; i++) yield this.code.read(this.cols, this.slots[i]);
  }

  /** The rows as value arrays, one per column (column order), at most `max` rows a chunk; no row objects. */
  *chunks(max: number): IterableIterator<unknown[][]> {
    for (let at = 0; at < this.slots.length; at += max) {
      const n = Math.min(max, this.slots.length - at);
      yield this.cols.map((c) => {
        const out = new Array<unknown>(n);
        for (let i = 0; i < n; i++) out[i] = c.get(this.slots[at + i]);
        return out;
      });
    }
  }
}

const FIRST_CAPACITY = 1024;
type ValuesReader = (cols: Column[], slot: number) => unknown[];

export class PkState {
  /** Keys that are not in `ints`. */
  private slots = new Map<IndexKey, number>();
  private ints?: IntSlots;
  /** Slots freed by deletes, reused before new ones. */
  private free: number[] = [];
  /** Slots [0, used) have been handed out at least once. */
  private used = 0;
  private capacity = FIRST_CAPACITY;
  private cols: Column[];
  private code: SlotCode;
  private types: ColumnType[];
  /** The rows; each slot's version (the changelog offset of the record that wrote its row, NaN until known) is position 0 of its number row. */
  private store: Store;

  /** `intKey`: the index of the one key column whose safe-integer values are keys as numbers (TableSchema.numericKey). */
  constructor(columns: readonly { name: string; type: ColumnType }[], private readonly intKey?: number) {
    this.types = columns.map((c) => c.type);
    ({ store: this.store, cols: this.cols } = newStore(this.types, this.capacity));
    this.code = compileSlotCode(columns.map((c) => c.name));
    this.ints = this.intSlots();
  }

  private intSlots(): IntSlots | undefined {
    if (this.intKey === undefined) return undefined;
    const c = this.cols[this.intKey];
    if (!(c instanceof NumberColumn)) throw new Error(`pk state: key column ${this.intKey} is not a number column`);
    return new IntSlots(c.rows, c.at);
  }

  get size(): number {
    return this.slots.size + (this.ints?.size ?? 0);
  }

  has(key: IndexKey): boolean {
    return this.find(key) !== undefined;
  }

  private find(key: IndexKey): number | undefined {
    return this.ints && typeof key === 'number' ? this.ints.get(key) : this.slots.get(key);
  }

  /**
   * The key's slot, -1 when it has no row. It names the key's row until the
   * state is next written: read it (`versionAt`, `rowAt`) in the same
   * synchronous step. One lookup where `version` then `get` are two.
   */
  slotOf(key: IndexKey): number {
    const slot = this.find(key);
    return slot === undefined ? -1 : slot;
  }

  /** The version (see `version`) of the row at a slot from `slotOf`. */
  versionAt(slot: number): number {
    return this.store.number.vals[slot * this.store.number.width];
  }

  /** Values of some columns (by position, in that order) of the row at a slot from `slotOf`: no row object; code made once per `columns` array. */
  valuesAt(slot: number, columns: readonly number[]): unknown[] {
    let read = this.readers.get(columns);
    if (!read) this.readers.set(columns, (read = new Function('cols', 'slot', `"use strict"; return [${columns.map((j) => `cols[${j}].get(slot)`).join(', ')}];`) as ValuesReader));
    return read(this.cols, slot);
  }
  private readonly readers = new WeakMap<readonly number[], ValuesReader>();

  /** A fresh row (the caller may keep or change it), or undefined. */
  get(key: IndexKey): Row | undefined {
    const slot = this.find(key);
    return slot === undefined ? undefined : this.code.read(this.cols, slot);
  }

  /**
   * The changelog offset of the record that wrote the key's row, -1 when the
   * key has no row: it changes exactly when the row does (NaN when the row
   * was loaded without one and `fillVersions` has not run).
   */
  version(key: IndexKey): number {
    const slot = this.find(key);
    return slot === undefined ? -1 : this.versionAt(slot);
  }

  /**
   * Stores a canonical row as the key's latest (the row object itself is not
   * kept), written by the record at offset `version`. `key` must be the row's
   * own (schema.indexKeyOf(row)).
   */
  set(key: IndexKey, row: Row, version: number): void {
    const slot = this.slotFor(key);
    this.code.write(this.cols, slot, row);
    this.setVersion(slot, version);
  }

  /** `set` from decoded columns (replay, snapshot load): row `i` of `values`, one array per column in column order. */
  setAt(key: IndexKey, values: unknown[][], i: number, version: number): void {
    const slot = this.slotFor(key);
    for (let j = 0; j < this.cols.length; j++) this.cols[j].put(slot, values[j][i] ?? null);
    this.setVersion(slot, version);
  }

  /** Sets every key's version from `versionOf` (after a snapshot load, whose rows carry none). */
  fillVersions(versionOf: (key: IndexKey) => number): void {
    if (this.ints) for (const slot of this.ints.slots()) this.setVersion(slot, versionOf(this.cols[this.intKey!].get(slot) as number));
    for (const [key, slot] of this.slots) this.setVersion(slot, versionOf(key));
  }

  delete(key: IndexKey): boolean {
    let slot: number | undefined;
    if (this.ints && typeof key === 'number') slot = this.ints.delete(key);
    else {
      slot = this.slots.get(key);
      this.slots.delete(key);
    }
    if (slot === undefined) return false;
    for (const c of this.cols) c.free(slot);
    this.setVersion(slot, NaN);
    this.free.push(slot);
    return true;
  }

  clear(): void {
    this.slots = new Map();
    this.free = [];
    this.used = 0;
    this.capacity = FIRST_CAPACITY;
    ({ store: this.store, cols: this.cols } = newStore(this.types, this.capacity));
    this.ints = this.intSlots();
  }

  *keys(): IterableIterator<IndexKey> {
    if (this.ints) for (const slot of this.ints.slots()) yield this.cols[this.intKey!].get(slot) as number;
    yield* this.slots.keys();
  }

  /**
   * A schema change: `columns` is the old column list with nullable columns
   * appended (the only change allowed); every existing row reads them as null.
   */
  setColumns(columns: readonly { name: string; type: ColumnType }[]): void {
    if (columns.length < this.cols.length) throw new Error(`pk state: a schema change cannot drop columns (${this.cols.length} → ${columns.length})`);
    // Each new column takes the next position of its kind's rows, which are laid out again one wider.
    for (let j = this.cols.length; j < columns.length; j++) {
      const kind = kindOf(columns[j].type);
      const rows = this.store[kind];
      rows.resize(this.capacity, rows.width + 1);
      this.cols.push(column(this.store, kind, rows.width - 1));
      this.types.push(columns[j].type);
    }
    this.code = compileSlotCode(columns.map((c) => c.name));
  }

  /**
   * A copy of the state as it is now (synchronous, so it is one consistent
   * point): copies the columns' arrays (about 8 bytes a value), not rows.
   */
  freeze(): FrozenState {
    const slots = new Int32Array(this.size);
    let n = 0;
    if (this.ints) for (const slot of this.ints.slots()) slots[n++] = slot;
    for (const slot of this.slots.values()) slots[n++] = slot;
    const copy: Store = { number: this.store.number.copy(this.used), bool: this.store.bool.copy(this.used), value: this.store.value.copy(this.used) };
    return new FrozenState(this.code, this.cols.map((c, j) => c.copy(copy[kindOf(this.types[j])])), slots);
  }

  private setVersion(slot: number, version: number): void {
    this.store.number.vals[slot * this.store.number.width] = version;
  }

  /** The key's slot, a new one for a new key (then its key column must be written before the next call). */
  private slotFor(key: IndexKey): number {
    let slot = this.find(key);
    if (slot !== undefined) return slot;
    slot = this.free.pop();
    if (slot === undefined) {
      if (this.used === this.capacity) {
        this.capacity *= 2;
        this.store.number.resize(this.capacity);
        this.store.bool.resize(this.capacity);
        this.store.value.resize(this.capacity);
      }
      slot = this.used++;
    }
    if (this.ints && typeof key === 'number') this.ints.add(key, slot);
    else this.slots.set(key, slot);
    return slot;
  }
}
