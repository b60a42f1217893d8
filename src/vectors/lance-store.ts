/**
 * One vector column's search state in a Lance dataset, through LanceDB's
 * public API. Runs in the process's LanceDB thread only (engine/lance-host.ts;
 * lance-ops.ts calls it there, lance-client.ts asks from the main thread). A row per searchable version:
 *   _asof_key     canonical key (pk tables and keyed log tables), else the offset
 *   _asof_offset  the changelog offset that wrote this version
 *   _asof_commit  its commit time, epoch ms
 *   _asof_row     the row's JSON form, without the searched vector
 *   _asof_vector  FixedSizeList<float32>[D]
 *   <column>      every filterable column of the table, typed (timestamps as
 *                 int64 epoch ms), so where clauses run inside Lance.
 * pk tables keep one row per key (merge-insert on _asof_key, delete); log
 * tables one per record.
 */
import type * as lancedb from '@lancedb/lancedb';
import { Bool, Field, FixedSizeList, Float32, Float64, Int32, Int64, Schema, Utf8, type DataType } from 'apache-arrow';
import type { CompiledColumn } from '../engine/schema.js';
import type { Metric } from './distance.js';
import { FILTERABLE } from './filter.js';

export const VECTOR = '_asof_vector';

type LanceModule = typeof import('@lancedb/lancedb');
let loaded: LanceModule | undefined;

/**
 * LanceDB, loaded on first use: its native library is large (160 MB), and a
 * server without vector columns should not pay its load time at start.
 */
export async function lanceModule(): Promise<LanceModule> {
  return (loaded ??= await import('@lancedb/lancedb'));
}
/** The module, once a dataset is open (every LanceVectors was opened through lanceModule). */
const L = (): LanceModule => loaded!;

/** A version of a row as stored (canonical values; the vector as float32). */
export interface StoredRow {
  key: string;
  offset: number;
  commitTime: number;
  /** JSON form of the row without the searched vector column. */
  rowJson: string;
  vector: Float32Array;
  /** Canonical values of the filterable columns. */
  values: Record<string, unknown>;
}

export interface Candidate {
  key: string;
  offset: number;
  rowJson: string;
  vector: Float32Array;
}

/**
 * What a search reads of each candidate: all a hit needs, and no more. Each
 * column costs Lance a read per candidate (0.1-0.4 ms per query for 15
 * candidates of 100k, bench/RESULTS.md session 15); `_distance` comes from
 * the search itself, and is named only because LanceDB warns, once per query,
 * when it is left out.
 */
export const CANDIDATE_COLUMNS = ['_asof_key', '_asof_offset', '_asof_row', VECTOR] as const;

export interface IndexParams {
  kind: 'hnsw_sq' | 'ivf_pq';
  /** HNSW search breadth (ef) per result asked; IVF_PQ refine factor. */
  ef: number;
  refine: number;
  nprobes: number;
}

function arrowType(kind: string): DataType {
  switch (kind) {
    case 'bool':
      return new Bool();
    case 'int32':
      return new Int32();
    case 'int64':
    case 'timestamp':
      return new Int64();
    case 'float32':
      return new Float32();
    case 'float64':
      return new Float64();
    default:
      return new Utf8();
  }
}

/** A column as the store needs it (what crosses to the LanceDB thread). */
export type StoreColumn = { name: string; type: { kind: CompiledColumn['type']['kind'] } };

/** The filterable columns of a table (stored typed beside the vector). */
export const filterColumns = <C extends StoreColumn>(columns: C[]): C[] => columns.filter((c) => FILTERABLE.has(c.type.kind));

export function lanceSchema(dim: number, columns: StoreColumn[]): Schema {
  return new Schema([
    new Field('_asof_key', new Utf8(), false),
    new Field('_asof_offset', new Int64(), false),
    new Field('_asof_commit', new Int64(), false),
    new Field('_asof_row', new Utf8(), false),
    new Field(VECTOR, new FixedSizeList(dim, new Field('item', new Float32(), true)), false),
    ...filterColumns(columns).map((c) => new Field(c.name, arrowType(c.type.kind), true)),
  ]);
}

const quoteList = (keys: string[]): string => keys.map((k) => `'${k.replaceAll("'", "''")}'`).join(', ');

export class LanceVectors {
  private constructor(
    readonly table: lancedb.Table,
    private schema: Schema,
    private readonly db: lancedb.Connection,
    readonly name: string,
  ) {}

  /** Opens the dataset, or creates it empty; `fresh` drops what was there (a rebuild). */
  static async open(db: lancedb.Connection, name: string, dim: number, columns: StoreColumn[], fresh: boolean): Promise<LanceVectors> {
    await lanceModule();
    const schema = lanceSchema(dim, columns);
    const exists = (await db.tableNames()).includes(name);
    if (exists && !fresh) {
      const t = await db.openTable(name);
      const lv = new LanceVectors(t, schema, db, name);
      try {
        await lv.addMissingColumns(columns);
      } catch (e) {
        t.close(); // the column's next start opens it again (vectors/column.ts)
        throw e;
      }
      return lv;
    }
    const t = await db.createEmptyTable(name, schema, { mode: 'overwrite' });
    return new LanceVectors(t, schema, db, name);
  }

  /** Schema evolution: columns added to the table are added to the dataset as all-null (instant in Lance). */
  async addMissingColumns(columns: StoreColumn[]): Promise<void> {
    const have = new Set((await this.table.schema()).fields.map((f) => f.name));
    const missing = filterColumns(columns).filter((c) => !have.has(c.name));
    if (missing.length) {
      // As a Schema in LanceDB's own copy of apache-arrow (CommonJS; this module's is the ES module copy): addColumns
      // tells a Schema or Fields from SQL expressions by instanceof against its copy, and sent this module's Fields to
      // Lance as expressions, which it refused ("Missing field `valueSql`"). makeArrowTable converts a schema from any
      // copy into LanceDB's, as createEmptyTable and add do for theirs.
      const added = new Schema(missing.map((c) => new Field(c.name, arrowType(c.type.kind), true)));
      await this.table.addColumns(L().makeArrowTable([], { schema: added }).schema);
    }
    const dim = (this.schema.fields[4].type as FixedSizeList).listSize;
    this.schema = lanceSchema(dim, columns);
  }

  private toArrow(rows: StoredRow[]) {
    const int64 = this.schema.fields.filter((f) => f.type instanceof Int64 && !f.name.startsWith('_asof')).map((f) => f.name);
    const data = rows.map((r) => {
      const o: Record<string, unknown> = { ...r.values, _asof_key: r.key, _asof_offset: BigInt(r.offset), _asof_commit: BigInt(r.commitTime), _asof_row: r.rowJson, [VECTOR]: r.vector };
      for (const n of int64) if (typeof o[n] === 'number') o[n] = BigInt(o[n] as number);
      return o;
    });
    return L().makeArrowTable(data, { schema: this.schema });
  }

  /** pk tables: the latest version of each key (insert or replace), one commit. */
  async upsert(rows: StoredRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.table.mergeInsert('_asof_key').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(this.toArrow(rows));
  }

  /** Log tables: appends record versions. */
  async append(rows: StoredRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.table.add(this.toArrow(rows));
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) await this.table.delete(`\`_asof_key\` IN (${quoteList(keys.slice(i, i + 1000))})`);
  }

  /** Drops versions written after `offset` (a crash between a Lance commit and the position file). */
  async deleteAfter(offset: number): Promise<void> {
    await this.table.delete(`\`_asof_offset\` > ${offset}`);
  }

  version(): Promise<number> {
    return this.table.version();
  }

  /** Reads the dataset's latest version: a commit made through this handle whose call failed may be one it has not seen. */
  latest(): Promise<void> {
    return this.table.checkoutLatest();
  }

  countRows(where?: string): Promise<number> {
    return this.table.countRows(where);
  }

  /** A read-only handle on an older version (asOf searches). */
  async at(version: number): Promise<lancedb.Table> {
    const t = await this.db.openTable(this.name);
    await t.checkout(version);
    return t;
  }

  /**
   * The query for the nearest rows by `metric`: through the vector index when
   * `exact` is false and the index was built for `metric` (Lance searches
   * rows not yet in the index exactly and merges them), else a flat scan.
   * `where` applies first. lance-ops.ts runs it for its Arrow IPC bytes
   * (CANDIDATE_COLUMNS and `_distance`), which the main thread reads
   * (lance-client.ts): building candidate objects in the LanceDB thread cost
   * it Arrow's JS reader and the main thread a structured clone of every one
   * (bench/RESULTS.md, session 15).
   */
  static searchQuery(t: lancedb.Table, q: { vector: Float32Array; limit: number; metric: Metric; where?: string; exact: boolean; params: IndexParams }): lancedb.VectorQuery {
    let query = t.vectorSearch(q.vector).column(VECTOR).distanceType(q.metric).limit(q.limit).select([...CANDIDATE_COLUMNS, '_distance']);
    if (q.where) query = query.where(q.where);
    if (q.exact) query = query.bypassVectorIndex();
    else if (q.params.kind === 'hnsw_sq') query = query.ef(Math.max(q.params.ef * q.limit, 64)).nprobes(q.params.nprobes);
    else query = query.nprobes(q.params.nprobes).refineFactor(q.params.refine);
    return query;
  }

  /** The vector index's statistics, undefined when there is none. */
  async indexStats(): Promise<{ indexed: number; unindexed: number; metric?: string; type: string } | undefined> {
    const idx = (await this.table.listIndices()).find((i) => i.columns.includes(VECTOR));
    if (!idx) return undefined;
    const s = await this.table.indexStats(idx.name);
    return s ? { indexed: s.numIndexedRows, unindexed: s.numUnindexedRows, metric: s.distanceType, type: s.indexType } : undefined;
  }

  /** Trains the vector index over the current rows (replacing one there). Slow: run in the background. */
  async buildIndex(metric: Metric, kind: IndexParams['kind'], rows: number): Promise<void> {
    // One partition per ~100k rows: each partition is its own HNSW graph; fewer partitions search better.
    const numPartitions = Math.max(1, Math.round(rows / 100_000));
    const config =
      kind === 'hnsw_sq'
        ? L().Index.hnswSq({ distanceType: metric, numPartitions })
        : L().Index.ivfPq({ distanceType: metric, numPartitions: Math.max(1, Math.round(Math.sqrt(rows))) });
    await this.table.createIndex(VECTOR, { config, replace: true });
  }

  async ensureKeyIndex(): Promise<void> {
    const has = (await this.table.listIndices()).some((i) => i.columns.includes('_asof_key'));
    if (!has) await this.table.createIndex('_asof_key', { config: L().Index.btree() });
  }

  /** Compacts small fragments and adds new rows to the indexes; removes versions older than `cleanupOlderThan`. */
  async optimize(cleanupOlderThan: Date): Promise<void> {
    await this.table.optimize({ cleanupOlderThan });
  }

  async versions(): Promise<number[]> {
    return (await this.table.listVersions()).map((v) => v.version);
  }

  close(): void {
    this.table.close();
  }
}
