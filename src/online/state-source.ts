/**
 * Where a view's per-entity states come from, behind one interface: the
 * online store, for views materialized into it (`StoreRead`), or the pk
 * source table itself, for views served straight from the table's latest
 * rows (`TableRead`; see materializer.ts). Serving has one fill loop over
 * a `StateRead`, whichever it is.
 */
import type { EntityState, ViewEvaluator } from '../features/evaluator.js';
import type { CacheKey } from './lookup-cache.js';
import type { DirectSource } from './materializer.js';
import type { EncodedRead } from './store.js';

/** One read of some entities' states, in the order of the keys asked for. */
export interface StateRead {
  /** The newest source offset the states reflect; null when the store has no namespace for the view. */
  readonly position: number | null;
  /**
   * What entity e's evaluation is cached by: its encoded state, or the version (offset) of the
   * row it comes from; undefined when the entity has no state; NaN when it has one that must not
   * be cached. Asked for e = 0, 1, ... in turn, with `state`, in one synchronous step.
   */
  cacheKey(e: number): CacheKey | undefined;
  /** Entity e's state, made afresh (on a cache miss; only for entities with a cache key). */
  state(e: number, ev: ViewEvaluator, at: number): EntityState;
}

/** States as the online store holds them: cached by their encoding, decoded on a miss. */
export class StoreRead implements StateRead {
  readonly position: number | null;

  constructor(private readonly read: EncodedRead) {
    this.position = read.watermark;
  }

  cacheKey(e: number): CacheKey | undefined {
    return this.read.encoded[e];
  }

  state(e: number): EntityState {
    return this.read.decode(e);
  }
}

/**
 * States of a view over a pk table, from the table's latest rows as they are
 * now. A row's version keys the cached evaluations; the state is built by the
 * evaluator's `rowState` from the row's values, as `apply` builds it from the
 * record that wrote the row: what the materializer would have stored.
 */
export class TableRead implements StateRead {
  /** Each entity's slot in the table's state, all found by the fill's first `cacheKey` (independent probes in one tight loop overlap their cache misses) and read by `state` in the same fill step. */
  private readonly slots: Int32Array;

  constructor(
    private readonly table: DirectSource,
    private readonly keys: string[],
  ) {
    this.slots = new Int32Array(keys.length);
  }

  /**
   * The table's head when asked, not when the read was set up: the service awaits other groups'
   * reads in between, and a commit then would give rows newer than a position taken earlier. It is
   * asked in the same synchronous step that reads the rows (checkRead, then fill), so the two agree.
   */
  get position(): number {
    return this.table.endOffset - 1;
  }

  cacheKey(e: number): CacheKey | undefined {
    if (e === 0) for (let k = 0; k < this.keys.length; k++) this.slots[k] = this.table.latestSlot(this.keys[k]);
    const slot = this.slots[e];
    // A row without a known version (NaN: not possible after a load, which sets them all) could not be told from others: never cached.
    return slot < 0 ? undefined : this.table.versionAt(slot);
  }

  state(e: number, ev: ViewEvaluator): EntityState {
    const rec = this.table.recordAt(this.slots[e], ev.rowColumns);
    return ev.rowState(rec.offset, rec.commitTime, rec.values);
  }
}
