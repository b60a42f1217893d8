/**
 * Training sets: for each entity row (entity keys, a time, labels), the value
 * of each requested feature at that time, by the rules of DESIGN.md ("Feature
 * values at time t"), computed from the source changelogs as of the moment the
 * request was prepared (its token).
 *
 * Execution streams: entity rows are read in chunks of `chunkRows`; for each
 * chunk and each view, the view's changelog is scanned once (or in several
 * passes by entity partition when the chunk's records would exceed
 * `memoryBytes`), joined (pit.ts), and the chunk's output rows are written in
 * input order. Memory is bounded by the chunk size and the budget, not by the
 * size of the tables.
 */
import type { Caller } from '../access.js';
import { AsofError } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import { shownJson } from '../engine/coerce.js';
import { fromText, parseTimestamp, timestampProblem, type CompiledColumn } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureViewDef } from '../features/definitions.js';
import type { PointInTime, ViewEvaluator } from '../features/evaluator.js';
import type { FeatureRegistry } from '../features/registry.js';
import { keyOfValue, type EntityKey } from './columns.js';
import { EntityIndex } from './entity-index.js';
import { openEntityRows, refuseBentInFile, type EntityRows, type EntitySource } from './entity-rows.js';
import type { ColumnBatch, FileColumn } from './files.js';
import { evaluatorJoin, LastValueJoin, lastValueApplies, orderRows, type RowKeys } from './pit.js';
import { RecordCollector, recordBytes, scanSource } from './scan.js';
import { newColumn, sliceColumn, type Column } from './out-columns.js';
import { openWriter, type OutputFormat } from './writers.js';

export interface TrainingSetRequest {
  entities: EntitySource;
  features?: string[];
  service?: string;
  /** Default "event": everything that had happened by each row's time. */
  pointInTime?: PointInTime;
  /** Name features `view__feature` instead of `feature`. */
  fullFeatureNames?: boolean;
  format?: OutputFormat;
}

/** Knobs for tests: force the evaluator path; compact last-value candidates past this many values. */
export interface Internal {
  forceEvaluator?: boolean;
  compactAt?: number;
}

export interface OfflineOptions {
  /** Entity rows joined per pass over the sources. */
  chunkRows: number;
  /** Source records kept in memory by one pass, bytes; beyond it a chunk is joined in several passes. */
  memoryBytes: number;
  /** An NDJSON entity file's longest line, bytes (ASOF_MAX_BODY_BYTES; default ndjson.ts's). */
  maxLineBytes?: number;
}

export interface Progress {
  rows: number;
  total: number;
}

/** A checked request, ready to write. Cheap to make: nothing is joined until `write`. */
export interface PreparedTrainingSet {
  total: number;
  columns: FileColumn[];
  format: OutputFormat;
  pointInTime: PointInTime;
  /** The changelog positions the training set reads (sources and a labels table). */
  token: Token;
  /**
   * The tables the request named (its entity rows' table, if any), which
   * `prepare`'s caller had to be allowed to read: a job keeps them, and shows
   * itself only to callers allowed the same (jobs.ts). Views' sources are not
   * among them: a view serves its source to every read key by design.
   */
  tables: string[];
  /** Writes the whole training set to `path` (the caller renames it into place); `signal` stops it between batches. */
  write(path: string, onProgress?: (p: Progress) => void, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

interface ViewPlan {
  def: FeatureViewDef;
  ev: ViewEvaluator;
  toOffset: number;
  /** Requested features: indexes into the view's features, and their output columns. */
  features: number[];
  outputs: number[];
  /** Index of the view's entity column among the entity rows' columns. */
  entityIndex: number;
  entityColumn: CompiledColumn;
}

const invalid = (message: string, field: string, row?: number): AsofError =>
  new AsofError('ASOF_INVALID_ARGUMENT', message, [{ ...(row === undefined ? {} : { row }), field, reason: message }]);

export class TrainingSets {
  constructor(
    private readonly engine: Engine,
    private readonly registry: FeatureRegistry,
    private readonly opts: OfflineOptions,
  ) {}

  /**
   * Checks a request and opens its entity rows; 400/404 for anything wrong that
   * can be seen before joining, 403 for an entity-rows table `caller` may not
   * read (engine.readable). In process (`asof export --data-dir`): UNRESTRICTED.
   */
  async prepare(req: TrainingSetRequest, caller: Caller, internal: Internal = {}): Promise<PreparedTrainingSet> {
    const pointInTime = req.pointInTime ?? 'event';
    const format = req.format ?? 'json';
    const resolved = this.registry.resolve({ features: req.features, service: req.service });
    const views = new Map<string, ViewPlan>();
    const names = new Map<string, string>();
    const featureColumns: FileColumn[] = [];
    for (const r of resolved) {
      let plan = views.get(r.view);
      if (!plan) {
        const def = this.registry.view(r.view);
        const ev = this.registry.evaluator(def);
        const entityColumn = ev.schema.byName.get(def.entity)!;
        plan = { def, ev, toOffset: this.engine.table(def.source).endOffset, features: [], outputs: [], entityIndex: -1, entityColumn };
        views.set(r.view, plan);
      }
      const name = req.fullFeatureNames ? `${r.view}__${r.feature}` : r.feature;
      const clash = names.get(name);
      if (clash === r.ref) throw invalid(`feature "${r.ref}" is requested twice`, 'features');
      if (clash) throw invalid(`features "${clash}" and "${r.ref}" are both named "${name}" in the output; set fullFeatureNames: true to name them view__feature`, 'fullFeatureNames');
      names.set(name, r.ref);
      plan.features.push(r.index);
      plan.outputs.push(featureColumns.length);
      featureColumns.push({ name, type: plan.ev.features[r.index].type });
    }
    const keyColumns = [...new Set([...views.values()].map((v) => v.def.entity))];
    const rows = await openEntityRows(req.entities, this.engine, caller, keyColumns, this.opts.maxLineBytes);
    try {
      const columns = rows.columns.map((c) => ({ ...c }));
      const timeIndex = timeColumnOf(rows);
      columns[timeIndex].type = { kind: 'timestamp' };
      const typed = new Set<number>();
      for (const v of views.values()) {
        v.entityIndex = columns.findIndex((c) => c.name === v.def.entity);
        if (v.entityIndex < 0) throw invalid(`the entity rows have no column "${v.def.entity}", the entity of feature view "${v.def.name}"`, 'entities');
        if (v.entityIndex === timeIndex) throw invalid(`column "${v.def.entity}" cannot be both the entity and the time of the entity rows`, 'entities');
        // The output shows entity keys as the first view that uses the column reads them.
        if (!typed.has(v.entityIndex)) columns[v.entityIndex].type = v.entityColumn.type;
        typed.add(v.entityIndex);
      }
      for (const f of featureColumns) {
        if (columns.some((c) => c.name === f.name)) throw invalid(`feature "${names.get(f.name)}" would be named "${f.name}", which is already a column of the entity rows; set fullFeatureNames: true or rename the column`, 'features');
      }
      const token: Token = { ...rows.token };
      for (const v of views.values()) token[v.def.source] = v.toOffset - 1;
      const plans = [...views.values()];
      if ('rows' in req.entities) {
        // Inline rows are already in memory: check them now, so a bad one is the same 400 whether the request
        // is answered at once or becomes a job (files and tables are checked as the job reads them).
        // batches() builds fresh columns on each read, so normalizing them here leaves the rows as sent.
        let base = 0;
        for await (const batch of rows.batches()) {
          normalize(batch, base, timeIndex, plans);
          base += batch.n;
        }
      }
      return {
        total: rows.total,
        columns: [...columns, ...featureColumns],
        format,
        pointInTime,
        token,
        tables: 'table' in req.entities ? [req.entities.table] : [],
        write: (path, onProgress, signal) => this.write(path, { rows, plans, timeIndex, columns, featureColumns, format, pointInTime, token, internal }, onProgress, signal),
        close: () => rows.close(),
      };
    } catch (e) {
      await rows.close();
      throw e;
    }
  }

  private async write(
    path: string,
    p: { rows: EntityRows; plans: ViewPlan[]; timeIndex: number; columns: FileColumn[]; featureColumns: FileColumn[]; format: OutputFormat; pointInTime: PointInTime; token: Token; internal: Internal },
    onProgress?: (p: Progress) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const writer = await openWriter(p.format, path, [...p.columns, ...p.featureColumns], { token: p.token });
    let done = 0;
    try {
      let chunk: Normalized[] = [];
      let chunkRows = 0;
      const flush = async (): Promise<void> => {
        if (chunkRows === 0) return;
        const features = await this.joinChunk(chunk, chunkRows, p.plans, p.featureColumns.map((c) => c.type.kind), p.pointInTime, p.internal);
        let base = 0;
        for (const b of chunk) {
          const columns = [...b.batch.columns, ...features.map((f) => sliceColumn(f, base, base + b.batch.n))];
          await writer.write({ n: b.batch.n, columns });
          base += b.batch.n;
          done += b.batch.n;
          onProgress?.({ rows: done, total: p.rows.total });
          signal?.throwIfAborted();
        }
        chunk = [];
        chunkRows = 0;
      };
      for await (const batch of p.rows.batches()) {
        signal?.throwIfAborted();
        // A file's number a float64 bent (NDJSON, Parquet nested values) is refused, not written out altered.
        refuseBentInFile(batch, p.rows.columns, done + chunkRows);
        chunk.push(normalize(batch, done + chunkRows, p.timeIndex, p.plans));
        chunkRows += batch.n;
        if (chunkRows >= this.opts.chunkRows) await flush();
      }
      await flush();
      await writer.close();
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }

  /** Joins one chunk of entity rows with every view: per output feature, its values in row order. */
  private async joinChunk(chunk: Normalized[], n: number, plans: ViewPlan[], kinds: string[], mode: PointInTime, internal: Internal): Promise<Column[]> {
    const out = kinds.map((k) => newColumn(k, n));
    const t = new Float64Array(n);
    let base = 0;
    for (const b of chunk) {
      t.set(b.t, base);
      base += b.t.length;
    }
    for (let v = 0; v < plans.length; v++) {
      const plan = plans[v];
      const ent = new Int32Array(n);
      const ids = EntityIndex.build(chunk.length === 1 ? chunk[0].keys[v] : chunk.flatMap((b) => b.keys[v]), ent);
      const keys: RowKeys = { n, t, ent, entities: ids.size };
      const viewOut = plan.outputs.map((o) => out[o]);
      const columns = sourceColumns(plan);
      const scan = { table: this.engine.table(plan.def.source), toOffset: plan.toOffset, entityColumn: plan.def.entity, entityType: plan.entityColumn.type, eventTimeColumn: plan.ev.schema.def.eventTime, ids };
      if (lastValueApplies(plan.ev, plan.features) && !internal.forceEvaluator) {
        const join = new LastValueJoin(plan.ev, mode, plan.features, orderRows(keys), columns, plan.toOffset, internal.compactAt);
        await scanSource({ ...scan, partition: { count: 1, index: 0 } }, join);
        join.finish(viewOut);
        continue;
      }
      let cap = Math.max(1024, Math.floor(this.opts.memoryBytes / recordBytes(columns)));
      let parts = 1;
      for (let part = 0; part < parts; part++) {
        const partition = { count: parts, index: part };
        const collector = new RecordCollector(columns, cap);
        await scanSource({ ...scan, partition }, collector);
        if (collector.overflowed) {
          // Too many records for the budget: split the entities into more partitions and start over.
          parts = Math.ceil((parts * collector.counted * 1.25) / cap);
          if (parts >= ids.size) {
            parts = ids.size;
            cap = Infinity; // one entity per pass: cannot split further
          }
          part = -1;
          continue;
        }
        evaluatorJoin(plan.ev, mode, plan.features, orderRows(keys, partition), collector.set, viewOut);
      }
    }
    return out;
  }
}

/** The source columns the requested features of a view read, with their types. */
function sourceColumns(plan: ViewPlan): { name: string; type: ColumnType }[] {
  const names = new Set<string>();
  for (const i of plan.features) {
    const f = plan.def.features[i];
    if ('column' in f) names.add(f.column);
    else if (f.agg.column !== undefined) names.add(f.agg.column);
  }
  return [...names].map((name) => ({ name, type: plan.ev.schema.byName.get(name)!.type }));
}

/** The entity rows' time column: `timestamp`, or Feast's `event_timestamp`, or a labels table's event time. */
function timeColumnOf(rows: EntityRows): number {
  const ts = rows.columns.findIndex((c) => c.name === 'timestamp');
  const ets = rows.columns.findIndex((c) => c.name === 'event_timestamp');
  if (ts >= 0 && ets >= 0) throw invalid('the entity rows have both "timestamp" and "event_timestamp"; keep one as the time column', 'entities');
  if (ts >= 0 || ets >= 0) return Math.max(ts, ets);
  const fallback = rows.eventTime ? rows.columns.findIndex((c) => c.name === rows.eventTime) : -1;
  if (fallback >= 0) return fallback;
  throw invalid('the entity rows need a "timestamp" (or "event_timestamp") column: when each row\'s features are wanted', 'entities');
}

interface Normalized {
  batch: ColumnBatch;
  t: Float64Array;
  /** Per view: entity keys of the rows. */
  keys: (EntityKey | null)[][];
}

/**
 * Times to epoch ms and entity keys to each view's key type, in place (the
 * output shows the canonical values). A bad value is a 400 naming the row.
 */
function normalize(batch: ColumnBatch, rowBase: number, timeIndex: number, plans: ViewPlan[]): Normalized {
  const times = batch.columns[timeIndex];
  const t = new Float64Array(batch.n);
  for (let i = 0; i < batch.n; i++) {
    const ms = parseTimestamp(times[i]);
    if (ms === undefined) {
      const v = times[i];
      throw invalid(`entity row ${rowBase + i}: ${v === null || v === undefined ? 'no time' : `time: ${timestampProblem(v, typeof v === 'number' ? shownJson(v) : JSON.stringify(String(v)))}`}`, 'timestamp', rowBase + i);
    }
    t[i] = ms;
    times[i] = ms;
  }
  const keys = plans.map(() => [] as (EntityKey | null)[]);
  const canonical = new Map<number, unknown[]>();
  plans.forEach((plan, v) => {
    const raw = batch.columns[plan.entityIndex];
    const col = plan.entityColumn;
    const values = canonical.has(plan.entityIndex) ? undefined : new Array(batch.n);
    for (let i = 0; i < batch.n; i++) {
      const x = raw[i];
      if (x === null || x === undefined) throw invalid(`entity row ${rowBase + i}: no value for "${col.name}"`, col.name, rowBase + i);
      let c: unknown;
      try {
        c = col.coerce(typeof x === 'string' && col.type.kind !== 'string' ? fromText(col.type, x) : typeof x === 'number' && col.type.kind === 'string' ? String(x) : x);
      } catch (e) {
        const reason = (e as { reason?: string }).reason ?? String(e);
        throw invalid(`entity row ${rowBase + i}: "${col.name}": ${reason}`, col.name, rowBase + i);
      }
      keys[v].push(keyOfValue(c));
      if (values) values[i] = c;
    }
    if (values) canonical.set(plan.entityIndex, values);
  });
  for (const [index, values] of canonical) batch.columns[index] = values;
  return { batch, t, keys };
}
