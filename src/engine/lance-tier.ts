/**
 * The cold tier in Lance, through LanceDB's public API: one dataset per
 * table, named as the table, under ASOF_LANCE_URI (a folder, or s3://... with
 * ASOF_LANCE_STORAGE_OPTIONS). One row per changelog record:
 *
 *   _asof_offset       int64, dense from 0 (the dataset's row count is the tiered end)
 *   _asof_change       int8 change type, as in the changelog (0 +I, 1 -U, 2 +U, 3 -D)
 *   _asof_commit_time  timestamp[ms, UTC]
 *   _asof_frame        binary, on a frame's first record only: the whole frame as the
 *                      changelog stored it (header and payload), so the frame's
 *                      checksum and hash chain can be verified again, and union
 *                      reads return exactly the bytes the hot log held
 *   _asof_frame_pos    int64, beside _asof_frame: the frame's position in the changelog
 *   <columns>          the table's columns, typed as in the changelog (added columns null
 *                      on older records)
 *
 * Scalar (BTree) indexes on `_asof_offset` and the key columns are created
 * after the first commit; `optimize` folds new rows into them now and then.
 * Versions are never tagged (LanceDB 0.37 refuses cleanup of tagged versions).
 * Nothing maps offsets to versions: offsets are dense and rows never deleted,
 * so a read of the table as it was at an offset filters `_asof_offset`.
 */
import type * as lancedb from '@lancedb/lancedb';
import type { ColdColumn, ColdFrame, ColdRecords, ColdTable, ColdTier, KeyMatch } from './cold-tier.js';
import { FRAME, FRAME_POS, frameBatch, LA, lanceFields, OFFSET } from './lance-batch.js';
import { parseFrame } from './log.js';

/**
 * A key's records are read by scanning their offset range when they are at
 * least this part of it. Straight LanceDB queries on bench:audit's Lance
 * datasets, batches as IPC bytes (ipcBatches), load ~12, minimum wall and
 * median CPU (all threads) of 15: its log entity (half of its range) 18.4 ms
 * / 18.8 CPU through the key's BTree (thousands of ranges), 9.9 / 15.8
 * scanning the range; its pk entity (two thirds) 14.1 / 22.0 against
 * 8.1 / 10.0. Sparser keys were not measured: a quarter keeps the scan at
 * most four rows read per row kept.
 */
const DENSE_KEY = 0.25;

/**
 * Appends between two optimize runs (compaction and index update). Compaction
 * rewrites fragments under 1,048,576 rows with their small neighbours; tiering
 * appends whole fragments where the load allows (tiering.ts, STEP_RECORDS),
 * which it leaves alone. Its cost is per row rewritten, not per run: running
 * it every 64 appends instead of 32 cost the same per row (session 14).
 */
const OPTIMIZE_EVERY = 32;

/** LanceDB's native module is large (160 MB): loaded when a cold tier is opened, not by every import of the engine. */
let lance: typeof lancedb;

export async function openLanceTier(uri: string, storageOptions: Record<string, string> = {}): Promise<ColdTier> {
  lance ??= await import('@lancedb/lancedb');
  const db = await lance.connect(uri, { storageOptions });
  return {
    where: uri.replace(/\/\/[^@/]*@/, '//'),
    open: (table, keyColumns) => LanceTable.open(db, table, keyColumns),
    close: async () => db.close(),
  };
}

class LanceTable implements ColdTable {
  private appends = 0;
  private indexed = false;
  /** An optimize failed: run again after the next append. */
  private optimizeDue = false;
  /** An append failed and what the dataset holds was not read back since: it may hold that append's records (see append). */
  private unsure = false;
  private maintenanceError?: string;

  private constructor(
    private readonly db: lancedb.Connection,
    private readonly name: string,
    private readonly keyColumns: string[],
    private t: lancedb.Table | undefined,
    private endOffset: number,
  ) {}

  static async open(db: lancedb.Connection, name: string, keyColumns: string[]): Promise<LanceTable> {
    // Opened, not looked up in tableNames(): listing is not reliable on every object store (s3rver lists
    // nothing). When opening fails the table counts as not tiered yet; if it does hold data, the first
    // append's create refuses (mode "create"), and a hot log that starts above 0 refuses to open.
    const t = await db.openTable(name).catch(() => undefined);
    if (!t) return new LanceTable(db, name, keyColumns, undefined, 0);
    // Offsets are dense from 0 and rows are never deleted, so the row count is the tiered end.
    const lt = new LanceTable(db, name, keyColumns, t, await t.countRows());
    lt.indexed = (await t.listIndices()).some((i) => i.columns.includes(OFFSET));
    return lt;
  }

  end(): number {
    return this.endOffset;
  }


  async append(frames: ColdFrame[], columns: ColdColumn[]): Promise<void> {
    if (frames.length === 0) return;
    // Not found at open (or opening failed then): looked for again before creating, so a dataset that does exist is
    // resumed, never overwritten. After a failed append whose outcome is unknown: read back before writing anything.
    if (!this.t || this.unsure) await this.reload();
    if (frames[0].meta.firstOffset !== this.endOffset) throw new Error(`cold tier of "${this.name}" holds [0, ${this.endOffset}); refusing frames from ${frames[0].meta.firstOffset}`);
    const schema = new LA.Schema(lanceFields(columns));
    const batches: import('apache-arrow').RecordBatch[] = [];
    let expect = this.endOffset;
    for (const frame of frames) {
      if (frame.meta.firstOffset !== expect) throw new Error(`cold tier of "${this.name}": frames not contiguous at ${expect}`);
      expect += frame.meta.count;
      batches.push(frameBatch(schema, columns, frame));
    }
    const data = new LA.Table(schema, batches);
    this.unsure = true;
    try {
      if (!this.t) {
        this.t = await this.db.createTable(this.name, data, { mode: 'create' });
      } else {
        await this.addMissingColumns(schema);
        await addTable(this.t, data);
      }
    } catch (e) {
      // A commit can land and its call still fail (an object store that wrote the manifest and answered an error):
      // the caller would resend these records from the old end, and Lance would hold them twice. So what the dataset
      // holds is read back now, on failure only: the records landed whole or not at all (one commit), and the row
      // count says which. Landed: the append is done. Not read back: unsure, and the next append reads it first.
      await this.reload().catch(() => undefined);
      if (this.unsure || this.endOffset !== expect || !this.t) throw e;
    }
    this.unsure = false;
    this.endOffset = expect;
    // The records are committed: a failing index build or compaction must not fail the append (its caller would
    // resend them from the old end, refused for good). It is reported and tried again after the next append.
    this.maintenanceError = undefined;
    await this.maintain().catch((e: unknown) => {
      this.maintenanceError = e instanceof Error ? e.message : String(e);
    });
  }

  /** Why the last append's index upkeep failed (the append itself succeeded); undefined when it did not. */
  maintenanceFailure(): string | undefined {
    return this.maintenanceError;
  }

  /**
   * Where the dataset ends, read from Lance: its latest version (the handle may not have seen a commit made
   * through it whose call failed) and its row count (offsets are dense from 0, rows never deleted).
   */
  private async reload(): Promise<void> {
    if (this.t) await this.t.checkoutLatest();
    else this.t = await this.db.openTable(this.name).catch(() => undefined);
    if (this.t) {
      this.endOffset = await this.t.countRows();
      this.indexed = (await this.t.listIndices()).some((i) => i.columns.includes(OFFSET));
    }
    this.unsure = false;
  }

  /** Schema evolution: columns the table gained are added to the dataset as all-null columns (no rewrite). */
  private async addMissingColumns(schema: import('apache-arrow').Schema): Promise<void> {
    const have = new Set((await this.t!.schema()).fields.map((f) => f.name));
    const missing = schema.fields.filter((f) => !have.has(f.name));
    if (missing.length === 0) return;
    await this.t!.addColumns(missing);
  }

  /**
   * Scalar indexes after the first commit; compaction and index update every OPTIMIZE_EVERY appends. Either stays
   * due until it succeeds (a failed index build runs again in full: createIndex replaces an index there).
   */
  private async maintain(): Promise<void> {
    const t = this.t!;
    if (!this.indexed) {
      await t.createIndex(OFFSET, { config: lance.Index.btree() });
      for (const k of this.keyColumns) await t.createIndex(k, { config: lance.Index.btree() });
      this.indexed = true;
    } else if (++this.appends % OPTIMIZE_EVERY === 0 || this.optimizeDue) {
      this.optimizeDue = true;
      await t.optimize();
      this.optimizeDue = false;
    }
  }

  async frames(from: number, to: number): Promise<ColdFrame[]> {
    if (!this.t || from >= to) return [];
    const got = await this.t.query().where(`${OFFSET} >= ${from} AND ${OFFSET} < ${to} AND ${FRAME} IS NOT NULL`).select([FRAME, FRAME_POS]).toArrow();
    const bytes = got.getChild(FRAME)!;
    const pos = got.getChild(FRAME_POS)!;
    const out: ColdFrame[] = [];
    for (let i = 0; i < got.numRows; i++) {
      const p = Number(pos.get(i));
      const { version: _v, crcOk: _c, hash: _h, payload: _p, ...meta } = parseFrame(bytes.get(i) as Uint8Array, p, `cold tier of "${this.name}"`);
      out.push({ meta, bytes: bytes.get(i) as Uint8Array });
    }
    return out.sort((a, b) => a.meta.firstOffset - b.meta.firstOffset);
  }

  async keyRecords(key: KeyMatch[], from: number, to: number, expected: number): Promise<ColdRecords[]> {
    if (!this.t || from >= to) return [];
    // A key holding a good part of its offset range (DENSE_KEY) is read by scanning the range (through the offset
    // index) and keeping its rows: a string key compared as concat(column, ''), which Lance cannot answer from the
    // key's BTree, so it filters the range's rows instead of gathering the key's rows as thousands of ranges.
    const dense = expected >= (to - from) * DENSE_KEY;
    const match = (k: KeyMatch) => (dense && k.literal.startsWith("'") ? `concat(\`${k.column}\`, '') = ${k.literal}` : `\`${k.column}\` = ${k.literal}`);
    const where = [...key.map(match), `${OFFSET} >= ${from}`, `${OFFSET} < ${to}`].join(' AND ');
    const fields = (await this.t.schema()).fields.map((f) => f.name).filter((n) => n !== FRAME && n !== FRAME_POS);
    return ipcBatches(this.t.query().where(where).select(fields));
  }

  async close(): Promise<void> {
    this.t?.close();
  }
}

/**
 * `Table.add` of a table built in LanceDB's own Arrow (lance-batch.ts), less
 * one copy of it: `add` reads the dataset's schema, relabels the table into
 * LanceDB's Arrow (it already is), writes it as an Arrow IPC file, and copies
 * the file's bytes again (`Buffer.from`) for its native `add`, which checks
 * the schema itself. Here the file's bytes go to the native `add` as they are,
 * through a LanceDB internal (`inner`, a plain property at run time), fenced
 * here as ipcBatches is. The copy is the size of the step's record batch
 * (about twice its frames: ~84 MiB for a full step of bench:ingest's 5
 * columns) at once: peak RSS of a server tiering 2.2M such records in full
 * steps, 828 MB through `add`, 728 here (680 with 32 MiB steps). It cost no
 * measurable CPU (100k-row
 * appends, alternating, in process: 0.375 / 0.324 CPU-ms per 1,000 rows
 * through `add`, 0.357 / 0.347 here; session 14).
 * test/integration/lance-ipc.test.ts fails if an upgrade removes it; a
 * missing method throws here, never appends otherwise.
 */
export async function addTable(t: lancedb.Table, data: import('apache-arrow').Table): Promise<void> {
  const inner = (t as unknown as { inner?: { add?: (buf: Buffer, mode: string) => Promise<unknown> } }).inner;
  if (typeof inner?.add !== 'function') throw new Error('LanceDB Table has no inner.add any more (lance-tier.ts appends through it; see addTable)');
  const file = LA.RecordBatchFileWriter.writeAll(data).toUint8Array(true);
  await inner.add(Buffer.from(file.buffer, file.byteOffset, file.byteLength), 'append');
}

/**
 * A query's batches as Arrow IPC stream bytes, each in its own buffer, as
 * LanceDB's native side wrote them: through LanceDB internals, fenced here.
 * `Query.toArrow()` reads each batch's bytes with apache-arrow's JS reader,
 * and the key read then wrote them again (`tableToIPC`) for the main thread,
 * which parses them once more: of bench:audit's 34.5 ms Lance key query for
 * its pk entity, ~13 ms was that JS reader (session 12). In LanceDB 0.31 the
 * public `execute()` and `toArrow()` both go through `nativeExecute()`
 * (protected in the typings, a plain method at run time), whose iterator's
 * `next()` gives one batch as an Arrow IPC file (the stream inside it is
 * what is kept). Vector searches read their candidates through it too
 * (vectors/lance-ops.ts). test/integration/lance-ipc.test.ts fails if an
 * upgrade changes either; a missing method or another format throws here,
 * never misreads.
 */
export async function ipcBatches(q: lancedb.Query | lancedb.VectorQuery): Promise<ColdRecords[]> {
  const exec = (q as unknown as { nativeExecute?: () => Promise<{ next(): Promise<Uint8Array | null | undefined> }> }).nativeExecute;
  if (typeof exec !== 'function') throw new Error('LanceDB has no Query.nativeExecute any more (lance-tier.ts reads query results through it; see ipcBatches)');
  const it = await exec.call(q);
  const out: ColdRecords[] = [];
  for (let b = await it.next(); b; b = await it.next()) out.push(streamOfFile(b));
  return out;
}

const MAGIC = 'ARROW1';

/**
 * The IPC stream inside an Arrow IPC file, copied into its own buffer (to be
 * transferred): "ARROW1" and padding, the stream (schema message, batches,
 * end-of-stream marker), the footer, its length (int32), "ARROW1".
 */
export function streamOfFile(b: Uint8Array): Uint8Array {
  const text = (at: number) => Buffer.from(b.buffer, b.byteOffset + at, 6).toString('latin1');
  if (b.length < 18 || text(0) !== MAGIC || text(b.length - 6) !== MAGIC) throw new Error(`LanceDB answered a batch that is not an Arrow IPC file (${b.length} bytes)`);
  const view = Buffer.from(b.buffer, b.byteOffset, b.length);
  const footer = view.readInt32LE(b.length - 10);
  const end = b.length - 10 - footer;
  // arrow-rs pads the header with zeros to its alignment (64 bytes): the stream starts at its first message's continuation marker.
  let start = 8;
  while (start + 8 <= end && view.readUInt32LE(start) === 0) start += 8;
  if (footer <= 0 || start + 8 > end || view.readUInt32LE(start) !== 0xffffffff) throw new Error(`LanceDB answered an Arrow IPC file whose stream or footer (${footer} bytes) was not found in its ${b.length} bytes`);
  // Copied by hand: `slice` of a Node Buffer (what LanceDB gives) is a view.
  const out = new Uint8Array(end - start);
  out.set(b.subarray(start, end));
  return out;
}
