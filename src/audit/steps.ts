/**
 * The steps of a replay (replay.ts): each source table's records of the
 * entity in the order the replay applies them, read once, a chunk at a time,
 * and the walk that merges every table's steps into the trail's order.
 *
 * What is kept is bounded by the trail's page, not by the history: a chunk is
 * applied to the views' states at `at` (the values) as it is read; the steps
 * the walk passes before the page are applied to a second set of states, each
 * step at its own time, and let go; only the page's steps are kept. The last
 * page of 200,000 records of one entity held every record before it, to say
 * what the page's records changed: 70 MB of live heap with a log view (now 31:
 * its 1-day window's events, twice) and 52 MB with a pk view (now 3).
 */
import type { Token } from '../engine/engine.js';
import type { Table } from '../engine/table.js';
import { applyColumns } from '../features/apply-columns.js';
import { applyOrder, type EntityState, type Evaluated, type PointInTime, type SourceColumns, type SourceRecord, type ViewEvaluator } from '../features/evaluator.js';
import { pkCut } from './pk-cut.js';

/**
 * Records applied per applyAll call, at least (not the last): a frame holds
 * only a few of one entity's records, and a log view's merge and pruning run
 * once per call. bench:audit tx replay CPU ~21 -> ~18.5 ms at 256 (1: per
 * frame); few enough records to die young.
 */
const APPLY_BATCH = 256;

/** What a replay reads: the entity (canonical key text), the moment (epoch ms) and which records count (replay.ts). */
export interface StepsInput {
  key: string;
  at: number;
  pointInTime: PointInTime;
  token?: Token | null;
}

/** One step of the trail: a record of a source table and when it counts in the trail's order. */
export interface Step {
  source: SourceSteps;
  rec: SourceRecord;
  /** Commit time, or event time for "event" (epoch ms). */
  time: number;
}

/** Records whole, or (outside the range the trail may show, through the key index) as columns of the views' columns only. */
type Chunk = SourceRecord[] | SourceColumns;

const lengthOf = (c: Chunk): number => (Array.isArray(c) ? c.length : c.count);

/** One source table's steps, read once: its views' states at `at`, and at the trail page's start. */
export class SourceSteps {
  /** The views' values at `at`, one per evaluator, once every step is read (each state is let go then). */
  values: Evaluated[] | undefined;
  /** The views' states at `at` while the steps are read. */
  private readonly states: (EntityState | undefined)[];
  /** The views' states after this table's steps before the trail's page, each step applied at its own time. */
  readonly before: (EntityState | undefined)[];
  /** The time (epoch ms) of the last step in `before`; 0 while none. */
  beforeTime = 0;
  /** Steps counted, and the offset of the newest of them (-1: none). */
  total = 0;
  last = -1;
  /** The chunk the walk is in (undefined: none left), the walk's next step in it, and how many of its steps come before the page. */
  private chunk: Chunk | undefined;
  private pos = 0;
  private prefix = 0;
  /** Steps handed to the walk so far; it takes no more than `reach` (the page's end) of one table. */
  private handed = 0;

  private constructor(
    readonly table: Table,
    /** The evaluators of the views read from this table (the first one's: how the table's records count). */
    readonly evs: ViewEvaluator[],
    private readonly at: number,
    private readonly byEvent: boolean,
    private readonly chunks: AsyncIterator<Chunk>,
    /** Whether the chunks make the values (not when a pk cut gave them: the chunks are then the trail's alone). */
    private readonly makeStates: boolean,
    private readonly reach: number,
  ) {
    this.states = evs.map(() => undefined);
    this.before = evs.map(() => undefined);
  }

  /**
   * Opens the table's steps. Records at indexes in `whole` (the steps the
   * trail page may show) come whole; outside it, through the key index, only
   * the views' columns are decoded. `pageEnd` is the index after the page's
   * last step: no later step of any table can be on the page or before it.
   */
  static async open(table: Table, evs: ViewEvaluator[], input: StepsInput, whole: { from: number; to: number }, pageEnd: number): Promise<SourceSteps> {
    const ev = evs[0];
    const byEvent = !input.token && input.pointInTime === 'event';
    let upTo = input.token ? (input.token[table.name] ?? -1) : Infinity;
    // A pk view needs only the history's first records (the trail's) and its last (the state): pk-cut.ts.
    const cut = !byEvent && ev.isPk && keyed(table, ev) ? await pkCut(table, input.key, upTo + 1, input.token ? undefined : input.at, pageEnd) : undefined;
    if (cut) upTo = cut.reach;
    // "event" reorders the whole history: every row whole.
    const columns = byEvent ? undefined : [...new Set(evs.flatMap((e) => e.sourceColumns))];
    const chunks = visibleRecords(table, ev, input, upTo, whole, columns)[Symbol.asyncIterator]();
    const s = new SourceSteps(table, evs, input.at, byEvent, chunks, !cut, pageEnd);
    if (cut) {
      s.values = evs.map((e) => e.evaluate(e.applyAll(undefined, cut.tail, input.at), input.at));
      s.total = cut.total;
      s.last = cut.last;
    }
    await s.next();
    return s;
  }

  /** Whether the walk has a step left here. */
  get more(): boolean {
    return this.chunk !== undefined;
  }

  /** The time of the walk's next step. */
  get time(): number {
    return this.timeAt(this.pos);
  }

  /** Takes the walk's next step: one before the page (applied later, with the chunk's others), or the page's (returned). */
  take(onPage: boolean): Step | undefined {
    const c = this.chunk!;
    const i = this.pos++;
    if (!onPage) {
      this.prefix = i + 1;
      return undefined;
    }
    if (!Array.isArray(c)) throw new Error(`step ${i} of a chunk of table "${this.table.name}" is on the trail page but was read as columns`);
    return { source: this, rec: c[i], time: this.timeAt(i) };
  }

  /** Whether the walk has taken every step of its chunk. */
  get spent(): boolean {
    return this.pos >= lengthOf(this.chunk!);
  }

  /** Moves to the next chunk with a step in it (none: `more` is false), applying the one left behind. */
  async next(): Promise<void> {
    this.leave();
    this.chunk = undefined;
    let c = await this.read();
    if (c === undefined) return;
    const room = this.reach - this.handed;
    if (room <= 0) return this.rest();
    if (lengthOf(c) > room) {
      c = Array.isArray(c) ? c.slice(0, room) : { ...c, count: room };
      // The walk takes nothing after these: the rest only makes the values, and is read now, so that what its reader
      // holds (an "event" history, sorted whole) goes before the next table's is read.
      await this.rest();
    }
    this.handed += lengthOf(c);
    this.chunk = c;
    this.pos = 0;
    this.prefix = 0;
  }

  /** After the walk: reads the rest into the values. */
  async finish(): Promise<void> {
    this.leave();
    this.chunk = undefined;
    await this.rest();
  }

  /** The next chunk with a record in it (undefined: none left), applied to the values. */
  private async read(): Promise<Chunk | undefined> {
    for (;;) {
      const r = await this.chunks.next();
      if (r.done) {
        // Evaluated as soon as they are whole: a table read before the others' ends needs its state no longer.
        if (this.makeStates && !this.values) this.values = this.evs.map((e, k) => e.evaluate(this.states[k], this.at));
        this.states.fill(undefined);
        return undefined;
      }
      const c = r.value;
      const n = lengthOf(c);
      if (n === 0) continue;
      if (this.makeStates) {
        for (let k = 0; k < this.evs.length; k++) this.states[k] = applyFirst(this.evs[k], this.states[k], c, n, this.at);
        this.total += n;
        // "event" chunks are in event-time order: the newest offset is the largest anywhere in them.
        if (Array.isArray(c)) for (const rec of c) this.last = Math.max(this.last, rec.offset);
        else this.last = Math.max(this.last, c.offsets[n - 1]);
      }
      return c;
    }
  }

  /** Reads what is left into the values (a pk cut's chunks are the trail's alone: they stop). */
  private async rest(): Promise<void> {
    if (!this.makeStates) {
      await this.chunks.return?.();
      return;
    }
    while ((await this.read()) !== undefined);
  }

  async close(): Promise<void> {
    this.chunk = undefined;
    await this.chunks.return?.();
  }

  /**
   * Applies the chunk's steps before the page to `before`, all at the last
   * one's time: the state applying each at its own time gives (as the trail
   * does with the page's steps). Times do not decrease along a chunk (commit
   * times along the offsets, event times as "event" sorts them), and a log
   * view's state is a maximum and sorted sets (evaluator.ts applyAll): a
   * version or window event applied at a later time lands where that time's
   * promotion and pruning would have moved it. A pk view keeps its last row
   * whatever the time. test/integration/audit-deep-pages.test.ts holds deep
   * pages to the whole trail, where every step is applied at its own time.
   */
  private leave(): void {
    if (!this.chunk || this.prefix === 0) return;
    const t = this.timeAt(this.prefix - 1);
    for (let k = 0; k < this.evs.length; k++) this.before[k] = applyFirst(this.evs[k], this.before[k], this.chunk, this.prefix, t);
    this.beforeTime = t;
    this.prefix = 0;
  }

  private timeAt(i: number): number {
    const c = this.chunk!;
    if (!Array.isArray(c)) return c.commitTimes[i];
    return this.byEvent ? this.evs[0].eventTimeOf(c[i]) : c[i].commitTime;
  }
}

/**
 * Walks every table's steps in the trail's order, by time, then table name
 * (each table's own steps are already in that order), up to `pageEnd`:
 * leaves each table's `before` at its steps before the trail's index `from`,
 * reads the rest of each table into its values, and returns the steps
 * [from, pageEnd) (fewer when the trail ends first).
 */
export async function walkSteps(sources: SourceSteps[], from: number, pageEnd: number): Promise<Step[]> {
  const page: Step[] = [];
  for (let i = 0; i < pageEnd; i++) {
    let best: SourceSteps | undefined;
    let bestTime = 0;
    for (const s of sources) {
      if (!s.more) continue;
      const t = s.time;
      if (!best || t < bestTime || (t === bestTime && s.table.name < best.table.name)) {
        best = s;
        bestTime = t;
      }
    }
    if (!best) break;
    const step = best.take(i >= from);
    if (step) page.push(step);
    if (best.spent) await best.next();
  }
  for (const s of sources) await s.finish();
  return page;
}

function applyFirst(ev: ViewEvaluator, state: EntityState | undefined, c: Chunk, n: number, now: number): EntityState | undefined {
  if (Array.isArray(c)) return ev.applyAll(state, n === c.length ? c : c.slice(0, n), now);
  return applyColumns(ev, state, n === c.count ? c : { ...c, count: n }, now);
}

/**
 * The entity's records in one source table that the replay applies, in the
 * order it applies them, a batch at a time: those at offsets up to `upTo`
 * (a token's, or where the trail's part of a pk cut ends); of them, "known"
 * takes those committed by `at`, "event" those that happened by it, in
 * event-time order (applyOrder).
 */
async function* visibleRecords(table: Table, ev: ViewEvaluator, input: StepsInput, upTo: number, whole: { from: number; to: number }, columns: string[] | undefined): AsyncGenerator<Chunk> {
  const batches = coalesced(entityRecords(table, ev, input.key, upTo, whole, columns), APPLY_BATCH);
  if (input.token) return yield* batches;
  if (input.pointInTime === 'known') {
    // Committed by `at`: commit times never decrease along the offsets, so the first record after it ends the replay.
    for await (const recs of batches) {
      if (!Array.isArray(recs)) {
        let n = 0;
        while (n < recs.count && recs.commitTimes[n] <= input.at) n++;
        if (n) yield n === recs.count ? recs : { ...recs, count: n };
        if (n < recs.count) return;
        continue;
      }
      const known = applyOrder(ev, recs, input.at, 'known');
      if (known.length) yield known;
      if (known.length < recs.length) return;
    }
    return;
  }
  // "event" reorders the whole history by event time (its records come whole: no columns are asked for).
  const all: SourceRecord[] = [];
  for await (const recs of batches) {
    if (!Array.isArray(recs)) throw new Error('an "event" replay reads whole records');
    for (const r of recs) all.push(r);
  }
  yield applyOrder(ev, all, input.at, 'event');
}

/** The arrays joined, in order, into arrays of at least `n` (the last one before columns, or the end, may be shorter); columns pass as they are. */
async function* coalesced<T>(batches: AsyncIterable<T[] | SourceColumns>, n: number): AsyncGenerator<T[] | SourceColumns> {
  let pending: T[] = [];
  for await (const b of batches) {
    if (!Array.isArray(b)) {
      if (pending.length) yield pending;
      pending = [];
      yield b;
      continue;
    }
    for (const x of b) pending.push(x);
    if (pending.length >= n) {
      yield pending;
      pending = [];
    }
  }
  if (pending.length) yield pending;
}

/** Whether the view's entity is the table's one key column: its records are found through the key index. */
const keyed = (table: Table, ev: ViewEvaluator): boolean => table.schema.keyColumns.length === 1 && table.schema.keyColumns[0].name === ev.view.entity;

/**
 * The entity's records at offsets <= upTo, in offset order, a batch at a
 * time: through the key index when the entity column is the table's key,
 * else by reading the table. Through the key index, only the records at
 * indexes in `whole` come whole, the others as columns of `columns` (when
 * given): the trail shows whole rows, the state needs only what the views
 * read, and needs no object per record (apply-columns.ts).
 */
async function* entityRecords(table: Table, ev: ViewEvaluator, key: string, upTo: number, whole: { from: number; to: number }, columns: string[] | undefined): AsyncGenerator<Chunk> {
  const toOffset = upTo + 1;
  if (keyed(table, ev)) {
    // Key records have SourceRecord's shape (the change type as its code): taken as they come.
    if (!columns) return yield* table.scanKey(key, { toOffset });
    let next = 0;
    if (whole.from > 0) {
      let read = 0;
      for await (const cols of table.scanKeyColumns(key, columns, { toOffset, limit: whole.from })) {
        if (cols.count === 0) continue;
        read += cols.count;
        next = cols.offsets[cols.count - 1] + 1;
        yield cols;
      }
      if (read < whole.from) return;
    }
    const wanted = whole.to - whole.from;
    let read = 0;
    for await (const recs of table.scanKey(key, { fromOffset: next, toOffset, limit: wanted })) {
      read += recs.length;
      next = recs[recs.length - 1].offset + 1;
      yield recs;
    }
    if (read === wanted) yield* table.scanKeyColumns(key, columns, { fromOffset: next, toOffset });
    return;
  }
  for await (const b of table.scanBatches({ toOffset })) {
    const out: SourceRecord[] = [];
    for (let i = 0; i < b.count; i++) {
      if (ev.entityOf(b.rows[i]) === key) out.push({ offset: b.firstOffset + i, change: b.changes[i], commitTime: b.commitTime, row: b.rows[i] });
    }
    if (out.length) yield out;
  }
}
