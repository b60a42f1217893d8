/**
 * Idempotency keys, kept with the commits they wrote, so that a retry after a
 * restart (or after a crash between the fdatasync and the answer) finds the
 * first answer instead of writing again.
 *
 * A keyed request's key and fingerprint go into the payload of the very frame
 * that holds its records (the Arrow schema's custom metadata under
 * `asof.idempotency`): the key is durable exactly when the records are, by the
 * same fdatasync and the same checksum, and a frame cut as a torn tail takes
 * its keys with it. A keyed request that writes no record (a delete of absent
 * keys) still writes a frame, of zero records, to hold its key. On start-up
 * the table's snapshot brings the keys it covered and the replayed frames add
 * theirs.
 *
 * Metadata value: JSON `[[key, fingerprint, at, count], ...]`, one entry per
 * keyed request of the commit: `at` is the index of its first record within
 * the frame, `count` how many records it wrote.
 *
 * Lifetime: a key is remembered for `ttlMs` after its commit (commit time,
 * epoch ms) and at most `capacity` keys per table are kept, the oldest
 * forgotten first; a retry after that writes again.
 */
export const IDEMPOTENCY_METADATA = 'asof.idempotency';

export interface KeyedRequest {
  key: string;
  /** Identifies the request's table, op and body: the same key with another fingerprint is a conflict. */
  fingerprint: string;
}

/** What a keyed request was answered, as the commit that wrote it says. */
export interface KeyedAnswer {
  fingerprint: string;
  /** Epoch ms. */
  commitTime: number;
  count: number;
  firstOffset: number | null;
  lastOffset: number | null;
  /** The token offset of the answer: its last record, or the end of its commit when it wrote none. */
  tokenOffset: number;
}

/** One keyed request of a commit: [key, fingerprint, index of its first record in the frame, record count]. */
export type FrameKey = [string, string, number, number];

export class IdempotencyKeys {
  /** Commit order, so the first entries are the oldest. */
  private readonly entries = new Map<string, KeyedAnswer>();

  constructor(
    private readonly ttlMs: number,
    private readonly capacity: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Remembers the keyed requests of one durable frame of `frameCount` records from `firstOffset`. */
  addFrame(firstOffset: number, frameCount: number, commitTime: number, keys: FrameKey[]): void {
    for (const [key, fingerprint, at, count] of keys) {
      const first = firstOffset + at;
      this.entries.delete(key);
      this.entries.set(key, {
        fingerprint,
        commitTime,
        count,
        firstOffset: count ? first : null,
        lastOffset: count ? first + count - 1 : null,
        tokenOffset: count ? first + count - 1 : firstOffset + frameCount - 1,
      });
    }
    this.forget(commitTime);
  }

  /** The answer a key got, if it is still remembered at `now` (epoch ms). */
  get(key: string, now: number): KeyedAnswer | undefined {
    const e = this.entries.get(key);
    return e && e.commitTime >= now - this.ttlMs ? e : undefined;
  }

  private forget(now: number): void {
    const cutoff = now - this.ttlMs;
    for (const [k, v] of this.entries) {
      if (v.commitTime >= cutoff && this.entries.size <= this.capacity) break;
      this.entries.delete(k);
    }
  }

  /** The remembered keys as a snapshot section (JSON), oldest first. */
  serialize(now: number): Buffer {
    this.forget(now);
    const out: unknown[] = [];
    for (const [k, v] of this.entries) out.push([k, v.fingerprint, v.commitTime, v.count, v.firstOffset, v.lastOffset, v.tokenOffset]);
    return Buffer.from(JSON.stringify(out));
  }

  /** Replaces what is remembered with a snapshot section's keys. */
  load(section: Buffer): void {
    this.entries.clear();
    if (section.length === 0) return;
    for (const [k, fingerprint, commitTime, count, firstOffset, lastOffset, tokenOffset] of JSON.parse(section.toString('utf8')) as [string, string, number, number, number | null, number | null, number][]) {
      this.entries.set(k, { fingerprint, commitTime, count, firstOffset, lastOffset, tokenOffset });
    }
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The frame metadata holding a commit's keyed requests (undefined when it has none). */
export function keysMetadata(keys: FrameKey[]): Map<string, string> | undefined {
  return keys.length ? new Map([[IDEMPOTENCY_METADATA, JSON.stringify(keys)]]) : undefined;
}

/** The keyed requests a frame's metadata holds (empty when none). */
export function keysOf(metadata: Map<string, string>): FrameKey[] {
  const v = metadata.get(IDEMPOTENCY_METADATA);
  return v ? (JSON.parse(v) as FrameKey[]) : [];
}
