/**
 * Vector search over every `vector<D>` column: the service REST and gRPC
 * call. It keeps one VectorColumn per vector column (opened at start, and when
 * a table is created or gains a vector column) and answers searches with the
 * hits, the token they reflect and, when asked, each hit's online features
 * exactly as the online service answers them for `GET /features/{key}`.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { UNRESTRICTED, type Caller } from '../access.js';
import { AsofError } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import { checkedTime, type TableSchema } from '../engine/schema.js';
import type { Logger } from '../logger.js';
import { toObjects, type EntityFeatures, type Evaluation } from '../online/evaluation.js';
import type { OnlineService, Plan } from '../online/service.js';
import { VectorColumn, type ColumnOptions } from './column.js';
import { DEFAULT_METRIC, type Metric } from './distance.js';
import { compileFilter, type Filter } from './filter.js';
import { lanceDisconnect } from './lance-client.js';
import type { VectorConn } from './lance-ops.js';
import type { IndexParams } from './lance-store.js';
import { searchColumn, type SearchPlan } from './search.js';

export interface VectorSearchRequest {
  table: string;
  column?: string;
  vector: number[];
  k: number;
  filter?: Filter;
  metric?: Metric;
  /** RFC 3339 text or epoch ms. */
  asOf?: string | number;
  /** `view:feature` references to add to each hit. */
  features?: string[];
}

export interface VectorHit {
  /** The row's canonical key; null for a log row whose key is null (no key, no entity: it gets no features). */
  key: string | null;
  /** The changelog offset that wrote this version of the row. */
  offset: number;
  distance: number;
  row: Record<string, unknown>;
  features?: EntityFeatures;
}

export interface VectorSearchAnswer {
  results: VectorHit[];
  token: Token;
  /** How the answer was found (index or exact; for asOf, from which source). */
  search: SearchPlan & { metric: Metric; column: string };
}

export interface VectorServiceOptions extends Omit<ColumnOptions, 'index'> {
  /** The Lance connection URI for vector datasets (a folder, or an object store URI). */
  uri: string;
  storageOptions?: Record<string, string>;
  /** Folder for each column's position file. */
  stateDir: string;
  index?: Partial<IndexParams>;
}

export const DEFAULT_INDEX: IndexParams = { kind: 'hnsw_sq', ef: 8, refine: 10, nprobes: 1 };

export class VectorService {
  private readonly columns = new Map<string, VectorColumn>();
  private readonly index: IndexParams;
  private unlisten?: () => void;
  /** The Lance connection, made in the LanceDB thread when the first vector column opens. */
  private readonly conn: VectorConn;

  private constructor(
    private readonly engine: Engine,
    private readonly online: Pick<OnlineService, 'plan' | 'evaluate'>,
    private readonly opts: VectorServiceOptions,
    private readonly logger: Logger,
  ) {
    this.index = { ...DEFAULT_INDEX, ...opts.index };
    this.conn = { id: randomUUID(), uri: opts.uri, storageOptions: opts.storageOptions };
  }

  static async open(engine: Engine, online: Pick<OnlineService, 'plan' | 'evaluate'>, opts: VectorServiceOptions, logger: Logger): Promise<VectorService> {
    const s = new VectorService(engine, online, opts, logger);
    for (const t of engine.list(UNRESTRICTED)) s.sync(t.name);
    s.unlisten = engine.onDefine((name) => s.sync(name));
    await Promise.all([...s.columns.values()].map((c) => c.ready.catch(() => undefined)));
    return s;
  }

  /** Opens a VectorColumn for each vector column of `table` not open yet. */
  private sync(table: string): void {
    const t = this.engine.table(table);
    for (const c of t.schema.columns) {
      if (c.type.kind !== 'vector' || this.columns.has(`${table}.${c.name}`)) continue;
      const metric = (t.schema.def.columns.find((d) => d.name === c.name)?.metric ?? DEFAULT_METRIC) as Metric;
      this.columns.set(`${table}.${c.name}`, new VectorColumn(t, c.name, metric, this.conn, this.opts.stateDir, { ...this.opts, index: this.index }, this.logger));
    }
  }

  /** The schema a search of `table` answers rows in (adapters type values by it). */
  schemaOf(table: string): TableSchema {
    return this.engine.table(table).schema;
  }

  /** The state of one column (tests and metrics). */
  column(table: string, column: string): VectorColumn | undefined {
    return this.columns.get(`${table}.${column}`);
  }

  get all(): VectorColumn[] {
    return [...this.columns.values()];
  }

  /** Checks a request against the table; 403 a table the caller may not read, 404 unknown table, 400 anything else wrong, naming the field. */
  private resolve(req: VectorSearchRequest, caller: Caller): VectorColumn {
    const t = this.engine.readable(req.table, caller);
    const vectors = t.schema.columns.filter((c) => c.type.kind === 'vector');
    const bad = (field: string, reason: string): never => {
      throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid ${field}: ${reason}`, [{ field, reason }]);
    };
    let name = req.column;
    if (name === undefined) {
      if (vectors.length === 0) bad('table', `table "${req.table}" has no vector column`);
      if (vectors.length > 1) bad('column', `table "${req.table}" has several vector columns (${vectors.map((c) => c.name).join(', ')}); name one`);
      name = vectors[0].name;
    }
    const c = t.schema.byName.get(name);
    if (!c) bad('column', `unknown column "${name}" (table "${req.table}" has ${t.schema.columns.map((x) => x.name).join(', ')})`);
    if (c!.type.kind !== 'vector') bad('column', `column "${name}" has type ${c!.type.kind}, not vector<D>`);
    const dim = (c!.type as { dim: number }).dim;
    if (req.vector.length !== dim) bad('vector', `column "${name}" holds vector<${dim}>; the query has ${req.vector.length} values`);
    // The search runs in float32: a number beyond its range would become Infinity and every distance NaN.
    for (let i = 0; i < req.vector.length; i++) if (!Number.isFinite(Math.fround(req.vector[i]))) bad(`vector[${i}]`, Number.isFinite(req.vector[i]) ? 'beyond the float32 range' : 'not a finite number');
    this.sync(req.table);
    return this.columns.get(`${req.table}.${name}`)!;
  }

  /** `caller`: who asks (engine.readable: asof's internal tables need the audit scope); UNRESTRICTED in process. */
  async search(req: VectorSearchRequest, caller: Caller): Promise<VectorSearchAnswer> {
    const col = this.resolve(req, caller);
    const metric = req.metric ?? col.metric;
    const vector = Float32Array.from(req.vector);
    if (metric === 'cosine' && vector.every((x) => x === 0)) {
      throw new AsofError('ASOF_INVALID_ARGUMENT', 'invalid vector: a zero vector has no cosine distance', [{ field: 'vector', reason: 'all zeros with metric cosine' }]);
    }
    const filter = req.filter === undefined ? undefined : compileFilter(col.table.schema, req.filter);
    const asOf = req.asOf === undefined ? undefined : checkedTime('asOf', req.asOf);
    // Resolved and checked before searching, hits or none: an unknown reference (404), or a view whose entities
    // this table's keys cannot be (400), did no work.
    const plan = req.features?.length ? await this.online.plan({ features: req.features }) : undefined;
    // A keyless log table's hits are keyed by their offset: like a null-key row's, theirs is no entity.
    const entities = !(col.table.schema.kind === 'log' && col.table.schema.keyColumns.length === 0);
    if (plan && entities) checkEntities(col.table.schema, plan);
    const answer = await searchColumn(col, { vector, k: req.k, metric, filter, asOf }, this.index);
    const results: VectorHit[] = answer.hits.map((h) => ({ key: h.key, offset: h.offset, distance: h.distance, row: h.row }));
    if (plan && entities && results.length > 0) {
      // A hit whose key is null has no entity, so no features (the lookup of the key "null" is another entity's).
      const keyed = results.filter((r): r is VectorHit & { key: string } => r.key !== null);
      const keys = keyed.map((r) => r.key);
      const objects = keys.length ? toObjects(keys, await this.evaluate(keys, plan, keyed.map((r) => results.indexOf(r)))) : [];
      keyed.forEach((r, i) => (r.features = objects[i]));
    }
    return { results, token: { [req.table]: answer.offset }, search: { ...answer.plan, metric, column: col.column } };
  }

  /**
   * The features of `keys`, those of the hits numbered `hits`. A key a view refuses (checkEntities makes it
   * unlikely) is named as its hit, not as the lookup's entity.
   */
  private async evaluate(keys: string[], plan: Plan, hits: number[]): Promise<Evaluation> {
    try {
      return await this.online.evaluate(keys, plan);
    } catch (e) {
      const d = e instanceof AsofError && Array.isArray(e.details) ? (e.details[0] as { row?: number; field?: string; reason?: string } | undefined) : undefined;
      if (d?.field !== 'entity' || d.row === undefined) throw e;
      const hit = hits[d.row];
      const reason = `the key ${JSON.stringify(keys[d.row])} is not an entity of the views of "features": ${d.reason}`;
      throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid features: hit ${hit}: ${reason}`, [{ field: `results[${hit}].key`, reason }]);
    }
  }

  async close(): Promise<void> {
    this.unlisten?.();
    await Promise.all([...this.columns.values()].map((c) => c.close()));
    await lanceDisconnect(this.conn).catch(() => undefined);
  }
}

/**
 * A 400 unless every view of `plan` takes this table's keys as its entities: its entity column is a string (any
 * key text is one), or of the type of the table's one key column (int32 keys for an int64 entity too). Else no
 * hit could have features (or only those whose key happened to convert), which is told before any search.
 */
function checkEntities(schema: TableSchema, plan: Plan): void {
  const kc = schema.keyColumns;
  const keyType = kc.length === 1 ? kc[0].type.kind : undefined;
  for (const g of plan.groups) {
    const e = g.entityColumn.type.kind;
    if (e === 'string' || e === keyType || (e === 'int64' && keyType === 'int32')) continue;
    const pos = g.positions[0];
    const ref = plan.features[pos].ref;
    const keys = kc.length === 1 ? `its key column ${kc[0].name} (${keyType})` : `its composite key (${kc.map((c) => c.name).join(', ')}, as JSON text)`;
    const reason = `view "${g.def.name}" is keyed by ${g.def.entity} (${e}), but the hits of table "${schema.name}" are keyed by ${keys}: a hit's key is not an entity of that view`;
    throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid features[${pos}] ("${ref}"): ${reason}`, [{ field: `features[${pos}]`, reason }]);
  }
}

/** Where vector state lives by default: `<lance uri>/_asof_vectors` for datasets, `<data dir>/vectors` for positions. */
export function vectorLocations(dataDir: string, lanceUri: string | undefined): { uri: string; stateDir: string } {
  const base = lanceUri ?? join(dataDir, 'lance');
  return { uri: `${base.replace(/\/+$/, '')}/_asof_vectors`, stateDir: join(dataDir, 'vectors') };
}
