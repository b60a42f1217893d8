/**
 * The slot index of a pk state (pk-state.ts) for safe-integer keys: key →
 * slot by open addressing, linear probing, at most half full. The table holds
 * slot + 1 (0 is empty) and nothing else: a key is compared with the key
 * column's value at the slot (position `at` of the slot's row in `keys.vals`,
 * read anew on each call since the rows grow), so a new slot's key must be written there before any other
 * key is looked up or added. 8 bytes a key at most; a Map entry costs about 28.
 */
export class IntSlots {
  private table = new Int32Array(1024);
  private mask = 1023;
  size = 0;
  constructor(
    private readonly keys: { readonly vals: Float64Array; readonly width: number },
    private readonly at: number,
  ) {}

  private home(k: number): number {
    const h = Math.imul((k | 0) ^ Math.floor(k / 4294967296), 0x9e3779b1);
    return (h ^ (h >>> 15)) & this.mask;
  }

  get(k: number): number | undefined {
    const { vals, width } = this.keys;
    const at = this.at;
    for (let i = this.home(k); ; i = (i + 1) & this.mask) {
      const e = this.table[i];
      if (e === 0) return undefined;
      if (vals[(e - 1) * width + at] === k) return e - 1;
    }
  }

  /** Adds a key known to be absent, whose slot does not yet hold it. */
  add(k: number, slot: number): void {
    if ((this.size + 1) * 2 > this.table.length) this.rehash(this.table.length * 2);
    let i = this.home(k);
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
    this.size++;
  }

  /** Removes a key whose slot still holds it; returns its slot. */
  delete(k: number): number | undefined {
    const { vals, width } = this.keys;
    const at = this.at;
    let i = this.home(k);
    for (; ; i = (i + 1) & this.mask) {
      const e = this.table[i];
      if (e === 0) return undefined;
      if (vals[(e - 1) * width + at] === k) break;
    }
    const slot = this.table[i] - 1;
    // Backward shift: move up each later entry of the run that may sit at the hole, so no probe stops early.
    for (let j = (i + 1) & this.mask; this.table[j] !== 0; j = (j + 1) & this.mask) {
      const h = this.home(vals[(this.table[j] - 1) * width + at]);
      if (((j - h) & this.mask) >= ((j - i) & this.mask)) {
        this.table[i] = this.table[j];
        i = j;
      }
    }
    this.table[i] = 0;
    this.size--;
    return slot;
  }

  /** Every slot held, in table order. */
  *slots(): IterableIterator<number> {
    for (let i = 0; i < this.table.length; i++) if (this.table[i] !== 0) yield this.table[i] - 1;
  }

  private rehash(cap: number): void {
    const old = this.table;
    this.table = new Int32Array(cap);
    this.mask = cap - 1;
    const { vals, width } = this.keys;
    const at = this.at;
    for (let j = 0; j < old.length; j++) {
      const e = old[j];
      if (e === 0) continue;
      let i = this.home(vals[(e - 1) * width + at]);
      while (this.table[i] !== 0) i = (i + 1) & this.mask;
      this.table[i] = e;
    }
  }
}
