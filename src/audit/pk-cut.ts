/**
 * The short replay of a pk view: what a reconstruction reads of a pk entity's
 * history for its state when it need not read all of it.
 *
 * A pk view's state after records in offset order is decided by the last of
 * them that is no -U (features/evaluator.ts, applyAll: its row, or absent for
 * a -D), and the trail's page needs only the records before the page's end
 * (steps.ts reads those). So with a token (records at offsets <= token) or
 * "known" (committed by t: commit times never decrease along a table's
 * offsets), the state needs only the last few records, not the whole history:
 * 20,000 records of bench:audit's pk entity, read from 2,000 frames or one
 * Lance key query, became ~100 from a dozen frames and one or two.
 *
 * Not taken for "event" without a token (records reordered by event time, -U
 * dropped from the trail, so every record's change type and event time count),
 * nor where the view's entity is not the table's one key column (no key index).
 */
import { ChangeType } from '../engine/arrow-codec.js';
import type { KeyRecord, Table } from '../engine/table.js';

export interface PkCut {
  /** The last records, from the end back to (and including) the last that is no -U, or all when every one is -U. */
  tail: KeyRecord[];
  /** How many records the replay counts in all. */
  total: number;
  /** The offset of the last of them. */
  last: number;
  /** The offset of the `atLeast`-th of them: the last record the trail can reach. */
  reach: number;
}

/**
 * The records of one key that decide its state, or undefined when the
 * records the replay counts are `atLeast` or fewer (the trail reads them all
 * then: reading them for the state too is as cheap). The records counted are
 * those at offsets below `toOffset` and, with `knownAt` (epoch ms), committed
 * by it.
 */
export async function pkCut(table: Table, key: string, toOffset: number, knownAt: number | undefined, atLeast: number): Promise<PkCut | undefined> {
  const offsets = table.offsetsOf(key);
  let n = lowerBound(offsets.length, (i) => offsets[i] >= Math.min(toOffset, table.endOffset));
  // Commit times never decrease along the offsets: the first record committed after `knownAt` ends what is known.
  if (knownAt !== undefined) n = lowerBound(n, (i) => table.commitTimeAt(offsets[i]) > knownAt);
  if (n <= atLeast) return undefined;
  const last = offsets[n - 1];
  // Usually the last record or the one before decides (a -U is followed by its +U in the same commit); a token may cut
  // between them, or a caller's token anywhere: read further back, four times as far each time, down to the first.
  for (let k = 2; ; k *= 4) {
    const from = Math.max(0, n - k);
    const tail = await collect(table.scanKey(key, { fromOffset: offsets[from], toOffset: last + 1 }));
    if (tail.length !== n - from) throw new Error(`key ${key} of table "${table.name}": ${tail.length} records read, ${n - from} expected`);
    if (from === 0 || tail.some((r) => r.change !== ChangeType.UPDATE_BEFORE)) return { tail, total: n, last, reach: offsets[atLeast - 1] };
  }
}

/** The first index in [0, n) where `past` holds (it holds from some index on), n when none. */
function lowerBound(n: number, past: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (past(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

async function collect(batches: AsyncIterable<KeyRecord[]>): Promise<KeyRecord[]> {
  const out: KeyRecord[] = [];
  for await (const b of batches) for (const r of b) out.push(r);
  return out;
}
