/**
 * The embedded online store: in-process maps, the default. Nothing to install;
 * its state is rebuilt from the changelog at start-up. Each entity's state is
 * kept packed (packed.ts): one one-byte string per (namespace, entity). An
 * entity key that is an integer in canonical text is kept as its number: no
 * key string per entity (about 24 bytes each, 1M entities are 23 MB).
 * Views over pk tables keep nothing here: they are read from the table's own
 * latest rows (materializer.ts, "direct").
 */
import type { EntityState } from '../features/evaluator.js';
import { numericIndexKey } from '../engine/indexes.js';
import { pack, unpack } from './packed.js';
import { WatermarkConflict, type EncodedRead, type NamespaceMeta, type OnlineStore } from './store.js';

interface Space {
  rows: Map<string | number, string>;
  watermark: number;
  lineage: string;
}

export class EmbeddedOnlineStore implements OnlineStore {
  readonly kind = 'embedded';
  private readonly spaces = new Map<string, Space>();

  async readEncoded(ns: string, keys: string[]): Promise<EncodedRead> {
    return this.readEncodedSync(ns, keys);
  }

  readEncodedSync(ns: string, keys: string[]): EncodedRead {
    const s = this.spaces.get(ns);
    const encoded = new Array<string | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++) encoded[i] = s?.rows.get(numericIndexKey(keys[i]));
    return { encoded, watermark: s ? s.watermark : null, decode: (e) => unpack(encoded[e]!) as EntityState };
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
      if (v === undefined) s.rows.delete(numericIndexKey(k));
      else s.rows.set(numericIndexKey(k), pack(v));
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
