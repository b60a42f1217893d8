/**
 * The entities a training set asks about, as dense ids, and the lookup of a
 * changelog batch's entity column against them: the one operation that runs
 * for every record a training set scans.
 */
import type * as A from 'apache-arrow';
import type { ColumnType } from '../engine/types.js';
import { dataOf, readKeys, TWO32, validityOf, type EntityKey } from './columns.js';

/**
 * The entities a training set asks about, as ids 0..size-1. Integer keys in a
 * compact range are their own ids (key - min: no lookup table, only a bit per
 * id saying whether it was asked about); other keys get ids in order of first
 * appearance through a Map. Ids of keys not asked about may exist in the
 * compact range; `idsOf` never returns them.
 */
export class EntityIndex {
  private map?: Map<EntityKey, number>;
  private dense?: { min: number; asked: Uint8Array };
  /** Ids run from 0 to size - 1. */
  size = 0;

  private constructor() {}

  /**
   * Indexes the entity keys of some entity rows: `ent[i]` gets row i's id
   * (-1 for a null key). Integer keys spanning at most 8x their count (and
   * <= 16M) get the direct table; anything else a Map.
   */
  static build(keys: readonly (EntityKey | null)[], ent: Int32Array): EntityIndex {
    const index = new EntityIndex();
    let min = Infinity;
    let max = -Infinity;
    let numeric = true;
    let count = 0;
    for (let i = 0; i < keys.length && numeric; i++) {
      const k = keys[i];
      if (k === null) continue;
      if (typeof k !== 'number' || !Number.isInteger(k)) numeric = false;
      else {
        count++;
        if (k < min) min = k;
        if (k > max) max = k;
      }
    }
    const range = max - min + 1;
    if (numeric && count > 0 && range <= Math.max(8 * count, 65_536) && range <= 16_777_216) {
      const asked = new Uint8Array((range + 7) >> 3);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        if (k === null) {
          ent[i] = -1;
          continue;
        }
        const x = (k as number) - min;
        asked[x >> 3] |= 1 << (x & 7);
        ent[i] = x;
      }
      index.dense = { min, asked };
      index.size = range;
      return index;
    }
    const map = (index.map = new Map());
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k === null) {
        ent[i] = -1;
        continue;
      }
      let id = map.get(k);
      if (id === undefined) map.set(k, (id = map.size));
      ent[i] = id;
    }
    index.size = map.size;
    return index;
  }

  /** Whether integer keys are their own ids (no lookup). */
  get direct(): boolean {
    return this.dense !== undefined;
  }

  /** The id of a key; -1 when it was not among the keys. */
  idOf(key: EntityKey): number {
    if (this.dense) {
      const x = typeof key === 'number' ? key - this.dense.min : -1;
      return x >= 0 && x < this.size && (this.dense.asked[x >> 3] & (1 << (x & 7))) !== 0 ? x : -1;
    }
    return this.map!.get(key) ?? -1;
  }

  /** `out[i]` = the id of row i's entity, or -1 (null, or not asked about). */
  idsOf(vec: A.Vector | null, type: ColumnType, n: number, out: Int32Array): void {
    if (!vec) return void out.fill(-1, 0, n);
    const dense = this.dense;
    if (dense && (type.kind === 'int64' || type.kind === 'timestamp' || type.kind === 'int32')) {
      const d = dataOf(vec);
      const { min, asked } = dense;
      const size = this.size;
      if (type.kind === 'int32') {
        const v = d.values as Int32Array;
        for (let i = 0; i < n; i++) {
          const x = v[i] - min;
          out[i] = x >= 0 && x < size && (asked[x >> 3] & (1 << (x & 7))) !== 0 ? x : -1;
        }
      } else {
        const v = d.values as BigInt64Array;
        const halves = new Int32Array(v.buffer, v.byteOffset, n * 2);
        for (let i = 0; i < n; i++) {
          const hi = halves[2 * i + 1];
          // Keys asked about are safe integers; anything with a large high word is not among them.
          const x = hi >= -2097152 && hi < 2097152 ? hi * TWO32 + (halves[2 * i] >>> 0) - min : -1;
          out[i] = x >= 0 && x < size && (asked[x >> 3] & (1 << (x & 7))) !== 0 ? x : -1;
        }
      }
      const valid = validityOf(d);
      if (valid) for (let i = 0; i < n; i++) if (!valid(i)) out[i] = -1;
      return;
    }
    const keys = readKeys(vec, type, n);
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      out[i] = k === null ? -1 : this.idOf(k);
    }
  }
}
