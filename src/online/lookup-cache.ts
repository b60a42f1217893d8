/**
 * The lookup cache: recent evaluations kept by what they were evaluated
 * from, the encoded state (views materialized in the online store) or the
 * version of the source row (views served from their pk table). A write
 * changes the encoding (or the version), so nothing needs invalidating; an
 * evaluation answers for as long as the evaluator says it holds
 * (`stableUntil`: ttl expiry, a future version becoming visible; never
 * across a millisecond for windows).
 */
import type { EntityEval } from './evaluation.js';

/**
 * What an evaluation is cached by within its namespace: the encoded state
 * (stored views), or the version of the source row (direct views).
 */
export type CacheKey = string | number;

/** One admitted evaluation, in the cache's eviction order. */
interface CacheSlot {
  map: Map<CacheKey, EntityEval>;
  key: CacheKey;
  ev: EntityEval;
  bytes: number;
}

/**
 * Recent evaluations by (namespace, CacheKey), within a memory budget,
 * evicted by CLOCK (second chance): a hit only marks its evaluation used;
 * when the cache is over budget, the oldest admitted evaluations go unless
 * marked, and marked ones lose the mark and go to the back of the line.
 * A hit costs one map lookup and no moves, and a working set up to the whole
 * budget stays put. (Two generations, the scheme before, held a working set
 * of half the budget at best, and moved every other hit between maps.)
 *
 * An evaluation is admitted on the second miss of its state only (a
 * "doorkeeper" remembers states seen once, in two generations of its own):
 * traffic that touches every entity once in turn, more entities than the
 * budget holds, would otherwise fill the cache with evaluations that are
 * evicted before anyone asks again, and pay for keeping them.
 */
export class LookupCache {
  private spaces = new Map<string, Map<CacheKey, EntityEval>>();
  /** Admitted evaluations, oldest first from `head`; slots whose evaluation was replaced are dropped when reached. */
  private queue: (CacheSlot | undefined)[] = [];
  private head = 0;
  private bytes = 0;
  private seen = new Set<CacheKey>();
  private seenBefore = new Set<CacheKey>();
  /** States the doorkeeper remembers per generation: about as many as the cache holds. */
  private readonly seenMax: number;
  /** Lookups answered from the cache, and evaluated afresh; for /metrics. */
  hits = 0;
  misses = 0;

  /** `budgetBytes` 0 disables the cache. */
  constructor(private readonly budgetBytes: number) {
    this.seenMax = Math.max(1000, Math.floor(budgetBytes / 4096));
  }

  get(ns: string, key: CacheKey, at: number): EntityEval | undefined {
    const hit = this.spaces.get(ns)?.get(key);
    if (hit !== undefined && at >= hit.from && at <= hit.until) {
      hit.used = true;
      this.hits++;
      return hit;
    }
    this.misses++;
    return undefined;
  }

  /** Offers a fresh evaluation of a state that missed; true when the cache keeps it. */
  offer(ns: string, key: CacheKey, ev: EntityEval): boolean {
    if (this.budgetBytes <= 0) return false;
    // Versions of different views over one table are the same numbers; sharing a doorkeeper entry only admits one of them a miss early.
    if (!this.seen.has(key) && !this.seenBefore.has(key)) {
      this.seen.add(key);
      if (this.seen.size >= this.seenMax) {
        this.seenBefore = this.seen;
        this.seen = new Set();
      }
      return false;
    }
    let map = this.spaces.get(ns);
    if (!map) this.spaces.set(ns, (map = new Map()));
    map.set(key, ev);
    // An estimate: the key (an encoding, or a number), the decoded values and (the usual adapter use) their rendered text.
    const bytes = (typeof key === 'string' ? 2 * key.length : 16) + 200 + 160 * ev.values.length;
    this.queue.push({ map, key, ev, bytes });
    this.bytes += bytes;
    if (this.bytes > this.budgetBytes) this.evict();
    return true;
  }

  clear(): void {
    this.spaces = new Map();
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.seen = new Set();
    this.seenBefore = new Set();
  }

  /** Evaluations held (for tests). */
  get size(): number {
    let n = 0;
    for (const m of this.spaces.values()) n += m.size;
    return n;
  }

  /** Brings the cache to 7/8 of its budget, so that eviction runs once per many admissions. */
  private evict(): void {
    const target = (this.budgetBytes * 7) / 8;
    const q = this.queue;
    while (this.bytes > target && this.head < q.length) {
      const slot = q[this.head]!;
      q[this.head++] = undefined;
      if (slot.map.get(slot.key) !== slot.ev) this.bytes -= slot.bytes;
      else if (slot.ev.used) {
        slot.ev.used = false;
        q.push(slot);
      } else {
        slot.map.delete(slot.key);
        this.bytes -= slot.bytes;
      }
    }
    if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}
