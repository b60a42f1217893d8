/**
 * The embedded online store: in-process maps, the default. Nothing to install;
 * its state is rebuilt from the changelog at start-up. Each entity's state is
 * kept packed (packed.ts): one one-byte string per (namespace, entity). An
 * entity key that is an integer in canonical text is kept as its number: no
 * key string per entity (about 24 bytes each, 1M entities are 23 MB).
 */
import type { EntityState } from '../features/evaluator.js';
import { pack, unpack } from './packed.js';
import { WatermarkConflict, type EncodedRead, type NamespaceMeta, type OnlineRead, type OnlineStore } from './store.js';

/**
 * The map key of an entity key: the number for a canonical integer (`-?[1-9][0-9]*`
 * or `0`, a safe integer), else the string itself. Checked by hand: a
 * `String(Number(key)) === key` check would make a string on every lookup.
 */
export function entityMapKey(key: string): string | number {
  const n = key.length;
  if (n === 0 || n > 17) return key;
  let i = key.charCodeAt(0) === 45 ? 1 : 0; // '-'
  if (i === n || n - i > 16) return key;
  const first = key.charCodeAt(i);
  // A leading zero is canonical only as "0" itself ("-0" is not: it reads back as "0").
  if (first === 48) return n === 1 ? 0 : key;
  let v = 0;
  for (; i < n; i++) {
    const d = key.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return key;
    v = v * 10 + d;
  }
  if (v > Number.MAX_SAFE_INTEGER) return key;
  return key.charCodeAt(0) === 45 ? -v : v;
}

interface Space {
  rows: Map<string | number, string>;
  watermark: number;
  lineage: string;
}

export class EmbeddedOnlineStore implements OnlineStore {
  readonly kind = 'embedded';
  private readonly spaces = new Map<string, Space>();

  async read(ns: string, keys: string[]): Promise<OnlineRead> {
    const { encoded, watermark } = this.readEncodedSync(ns, keys);
    return { states: encoded.map((p) => (p === undefined ? undefined : this.decode(p))), watermark };
  }

  async readEncoded(ns: string, keys: string[]): Promise<EncodedRead> {
    return this.readEncodedSync(ns, keys);
  }

  readEncodedSync(ns: string, keys: string[]): EncodedRead {
    const s = this.spaces.get(ns);
    const encoded = new Array<string | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++) encoded[i] = s?.rows.get(entityMapKey(keys[i]));
    return { encoded, watermark: s ? s.watermark : null };
  }

  decode(encoded: string): EntityState {
    return unpack(encoded) as EntityState;
  }

  async meta(ns: string): Promise<NamespaceMeta | undefined> {
    const s = this.spaces.get(ns);
    return s && { watermark: s.watermark, lineage: s.lineage };
  }

  async reset(ns: string, lineage: string): Promise<void> {
    this.spaces.set(ns, { rows: new Map(), watermark: -1, lineage });
  }

  async write(ns: string, entries: [string, EntityState | undefined][], from: number, to: number): Promise<void> {
    const s = this.spaces.get(ns);
    if (!s || s.watermark !== from) throw new WatermarkConflict(ns, from, s ? s.watermark : null);
    for (const [k, v] of entries) {
      if (v === undefined) s.rows.delete(entityMapKey(k));
      else s.rows.set(entityMapKey(k), pack(v));
    }
    s.watermark = to;
  }

  async clear(ns: string): Promise<void> {
    this.spaces.delete(ns);
  }

  async close(): Promise<void> {
    this.spaces.clear();
  }
}
