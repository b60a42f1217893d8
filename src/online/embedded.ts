/**
 * The embedded online store: in-process maps, the default. Nothing to install;
 * its state is rebuilt from the changelog at start-up.
 */
import type { OnlineStore } from './store.js';

export class EmbeddedOnlineStore implements OnlineStore {
  readonly kind = 'embedded';
  private readonly spaces = new Map<string, { rows: Map<string, string>; watermark: number }>();

  private space(ns: string) {
    let s = this.spaces.get(ns);
    if (!s) this.spaces.set(ns, (s = { rows: new Map(), watermark: -1 }));
    return s;
  }

  async get(ns: string, keys: string[]): Promise<(string | undefined)[]> {
    return this.getSync(ns, keys);
  }

  /** Synchronous read, for the in-process fast path. */
  getSync(ns: string, keys: string[]): (string | undefined)[] {
    const rows = this.spaces.get(ns)?.rows;
    return keys.map((k) => rows?.get(k));
  }

  async write(ns: string, entries: [string, string | null][], watermark: number): Promise<void> {
    const s = this.space(ns);
    for (const [k, v] of entries) {
      if (v === null) s.rows.delete(k);
      else s.rows.set(k, v);
    }
    s.watermark = watermark;
  }

  async watermark(ns: string): Promise<number> {
    return this.spaces.get(ns)?.watermark ?? -1;
  }

  async clear(ns: string): Promise<void> {
    this.spaces.delete(ns);
  }

  async close(): Promise<void> {
    this.spaces.clear();
  }
}
