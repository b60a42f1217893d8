/**
 * The online store interface: where materialized per-entity feature state
 * lives. Small on purpose: read, write, reset, meta, clear, close. Joins, TTL,
 * windows and fan-out live above it (features/, online/service.ts), once.
 *
 * A namespace is one version of one feature view (`view@version`). Values are
 * `EntityState`s; each backend picks its own representation (see FORMAT.md
 * for Redis). Each namespace carries a watermark, the newest source-changelog
 * offset its values reflect, and a lineage, naming what the values were built
 * from. The watermark moves only together with the values (one atomic write,
 * compare-and-set on the previous watermark), so a reader never sees values
 * ahead of or behind the watermark it reads with them.
 */
import type { EntityState } from '../features/evaluator.js';

export interface NamespaceMeta {
  /** Newest source offset the values reflect; -1 when none yet. */
  watermark: number;
  /** What the values were built from (view definition and source changelog); a different lineage means rebuild. */
  lineage: string;
  /** A shared store's namespace still marked as being built (a build that did not finish, or is under way). */
  building?: boolean;
}

/**
 * States as the store holds them, not decoded: `decode` turns one into its
 * `EntityState`. Serving reads this way, so equal encodings (an entity not
 * written since the last lookup) can reuse an earlier evaluation.
 */
export interface EncodedRead {
  /** States for the keys, in order; undefined where the entity has none. */
  encoded: (string | undefined)[];
  /** The namespace's watermark, read atomically with the states; null when the namespace does not exist. */
  watermark: number | null;
  /** The state of key e (one that has one) → a fresh `EntityState`, which the caller may change (the materializer applies records to it). */
  decode(e: number): EntityState;
}

export interface OnlineStore {
  readonly kind: string;
  /**
   * `forWrite`: the caller writes the states back (the materializer). A store with several
   * connections reads those on the writes' connection, lookups on their own, so that neither
   * waits in line behind the other.
   */
  readEncoded(namespace: string, keys: string[], forWrite?: boolean): Promise<EncodedRead>;
  /** In-process stores answer synchronously (the serving fast path); others leave this out. */
  readEncodedSync?(namespace: string, keys: string[]): EncodedRead;
  /** The namespace's watermark and lineage; undefined when it does not exist. */
  meta(namespace: string): Promise<NamespaceMeta | undefined>;
  /** (Re)creates a namespace empty: no states, watermark -1, the given lineage; a shared store marks it as being built. */
  reset(namespace: string, lineage: string): Promise<void>;
  /** The namespace has caught up with the changelog after a reset: readers of a shared store may serve it again. */
  built?(namespace: string): Promise<void>;
  /**
   * Writes states (undefined deletes the entity) and moves the watermark from
   * `from` to `to`, as one unit. Writes nothing and rejects with
   * `WatermarkConflict` when the namespace does not exist or its watermark is
   * not `from` (someone else wrote, or the store lost its state).
   */
  write(namespace: string, entries: [key: string, state: EntityState | undefined][], from: number, to: number): Promise<void>;
  /** Removes a namespace, its states and its meta. */
  clear(namespace: string): Promise<void>;
  /** False while a remote store is unreachable (readiness, /readyz); in-process stores leave this out. */
  healthy?(): boolean;
  close(): Promise<void>;
}

/** A write found a different watermark than it expected; the writer must re-read the meta and catch up. */
export class WatermarkConflict extends Error {
  constructor(
    readonly namespace: string,
    readonly expected: number,
    readonly found: number | null,
  ) {
    super(`online store namespace "${namespace}": expected watermark ${expected}, found ${found === null ? 'no namespace' : found}`);
    this.name = 'WatermarkConflict';
  }
}
