/**
 * The online store interface: where materialized per-entity feature state
 * lives. Small on purpose: read, write, watermark, clear, close. Joins, TTL,
 * windows and fan-out live above it (features/, online/service.ts), once.
 *
 * A namespace is one version of one feature view (`view@version`). Values are
 * packed `EntityState`s (JSON text). Each namespace carries a watermark: the
 * newest source-changelog offset its values reflect, written together with
 * them so a reader never sees values ahead of or behind the watermark.
 */
export interface OnlineStore {
  readonly kind: string;
  /** Packed states for the keys, in order; undefined where none. */
  get(namespace: string, keys: string[]): Promise<(string | undefined)[]>;
  /** Writes states (null deletes a key) and sets the namespace's watermark, as one unit. */
  write(namespace: string, entries: [key: string, value: string | null][], watermark: number): Promise<void>;
  /** The namespace's watermark; -1 when nothing was written. */
  watermark(namespace: string): Promise<number>;
  /** Removes a namespace and its watermark. */
  clear(namespace: string): Promise<void>;
  close(): Promise<void>;
}
