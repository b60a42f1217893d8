/**
 * One search over one vector column: the records in memory scored exactly,
 * merged with Lance's candidates, one latest version per key (pk tables).
 *
 * Lance is asked for more than k candidates (some may be stale versions of
 * keys rewritten in memory) and again with four times as many while too few
 * survive; an ANN answer shorter than asked, with fewer than k survivors,
 * is asked again by exact scan (a selective filter can starve an HNSW
 * search), so k results come back whenever k rows match. Every candidate's
 * distance is recomputed exactly (distance.ts): index and memory rows sort on
 * one scale, in the right order.
 */
import type { Row } from '../engine/schema.js';
import type { VectorColumn, VersionMark } from './column.js';
import { DISTANCE, type Metric } from './distance.js';
import type { CompiledFilter } from './filter.js';
import { scoreHot, Segment, type Scored } from './hot.js';
import type { VersionHandle } from './lance-client.js';
import type { IndexParams } from './lance-store.js';

export interface ColumnQuery {
  vector: Float32Array;
  k: number;
  metric: Metric;
  filter?: CompiledFilter;
  /** Epoch ms: search the table as the store knew it then. */
  asOf?: number;
}

export interface Hit {
  /** null: a log row whose key is null (it has no key, and no entity: schema.keyOf). */
  key: string | null;
  offset: number;
  distance: number;
  /** The row's JSON form. */
  row: Row;
}

export interface SearchPlan {
  /** ann: Lance's vector index (with rows not yet in it searched exactly); exact: every row scored. */
  index: 'ann' | 'exact';
  /** Why the search was exact, when it was. */
  reason?: string;
  /** asOf searches: `lance` (a Lance version at or before the time, plus the changelog up to it) or `changelog` (no kept version is old enough, or none was written yet: an exact scan of the changelog; empty before the table's first write). */
  asOfSource?: 'lance' | 'changelog';
  lanceVersion?: number;
}

export interface ColumnAnswer {
  hits: Hit[];
  /** The newest changelog offset the answer reflects. */
  offset: number;
  plan: SearchPlan;
}

export async function searchColumn(col: VectorColumn, q: ColumnQuery, params: IndexParams): Promise<ColumnAnswer> {
  await col.ready;
  const t = col.table;
  if (q.asOf !== undefined && q.asOf < t.lastCommit) return searchAsOf(col, q, params, q.asOf);
  // Read synchronously, before any await: see hot.ts.
  const offset = col.applied;
  const segments = col.segments();
  const plan = planOf(col, q.metric);
  const hits = await merge(col, segments, { version: undefined }, q, params, plan);
  return { hits, offset, plan };
}

function planOf(col: VectorColumn, metric: Metric): SearchPlan {
  if (col.indexMetric === undefined) return { index: 'exact', reason: 'no vector index yet (it is trained once the column has enough rows)' };
  if (metric !== col.indexMetric) return { index: 'exact', reason: `metric ${metric} differs from the index's ${col.indexMetric}` };
  return { index: 'ann' };
}

async function searchAsOf(col: VectorColumn, q: ColumnQuery, params: IndexParams, at: number): Promise<ColumnAnswer> {
  let mark: VersionMark | undefined;
  for (const m of col.marks) if (m.commitTime <= at) mark = m;
  let base: VersionHandle | undefined;
  // Why the changelog alone is searched, if it is.
  let why = col.marks.length === 0 ? 'no Lance version has been written yet' : 'no Lance version kept is that old (none was written from records committed by then, or compaction has removed it)';
  if (mark) base = await col.tableAt(mark.version).catch(() => undefined);
  if (mark && !base) why = `Lance version ${mark.version} did not open`;
  if (!base) mark = undefined;
  const overlay = new Segment();
  const from = mark ? mark.offset + 1 : 0;
  // A log table's records never replace one another: only the k nearest of those scanned can be among the answer's,
  // so the overlay is cut back to them as it grows (an old asOf may scan the whole history). A pk table's overlay
  // holds one entry per key, as the table itself does.
  const pruneAt = Math.max(4 * q.k, 4096);
  scan: for await (const b of col.table.scanBatches({ fromOffset: from })) {
    if (b.commitTime > at) break scan;
    for (let i = 0; i < b.count; i++) col.applier.apply(overlay, b.firstOffset + i, b.changes[i], b.commitTime, b.rows[i]);
    if (!col.pk && overlay.size >= pruneAt) keepNearest(col, overlay, q);
  }
  const offset = overlay.lastOffset >= 0 ? overlay.lastOffset : (mark?.offset ?? -1);
  if (!base) {
    // Before the table's first write it held no rows: the answer is empty, as the store knew it then.
    if (offset < 0) why = "asOf is before the table's first write: it held no rows then";
    const hits = await merge(col, [overlay], undefined, q, params, { index: 'exact' });
    return { hits, offset, plan: { index: 'exact', reason: `${why}: the changelog was scanned`, asOfSource: 'changelog' } };
  }
  const plan: SearchPlan = { ...planOf(col, q.metric), asOfSource: 'lance', lanceVersion: mark!.version };
  const hits = await merge(col, [overlay], { version: base }, q, params, plan);
  return { hits, offset, plan };
}

/** Drops every entry of a log table's segment but the k nearest that pass the filter (`lastOffset` stays). */
function keepNearest(col: VectorColumn, seg: Segment, q: ColumnQuery): void {
  const { scored } = scoreHot([seg], false, col.column, q.vector, DISTANCE[q.metric], q.filter?.test);
  scored.sort((a, b) => a.distance - b.distance || a.offset - b.offset);
  const keep = new Set(scored.slice(0, q.k).map((s) => s.offset));
  for (const offset of seg.entries.keys()) if (!keep.has(offset as number)) seg.entries.delete(offset);
}

/** `lance`: search the column's Lance dataset too, at its current version or at `version`; undefined: memory only. */
async function merge(col: VectorColumn, segments: Segment[], lance: { version: VersionHandle | undefined } | undefined, q: ColumnQuery, params: IndexParams, plan: SearchPlan): Promise<Hit[]> {
  const dist = DISTANCE[q.metric];
  const pk = col.pk;
  const { scored, newest } = scoreHot(segments, pk, col.column, q.vector, dist, q.filter?.test);
  // Only the k nearest rows in memory can be among the k nearest overall.
  scored.sort((a, b) => a.distance - b.distance || a.offset - b.offset);
  if (scored.length > q.k) scored.length = q.k;
  const all: Scored[] = scored;
  if (lance) {
    let exact = plan.index === 'exact';
    // Room for stale versions of keys rewritten in memory (none once flushed), and a few more candidates so the exact re-ranking below corrects the index's quantized distances.
    let limit = q.k + Math.min(newest.size, q.k) + Math.ceil(q.k / 2);
    // Cosine ignores length: Lance is asked with the unit vector, whose norm its float32 arithmetic can compute
    // (a query with elements below about 1e-23, or one above 1e19, has a squared norm of 0 or Infinity there, and Lance's distances are no order).
    const lanceQuery = q.metric === 'cosine' ? unit(q.vector) : q.vector;
    for (;;) {
      const cands = await col.lance.search(lance.version, { vector: lanceQuery, limit, metric: q.metric, where: q.filter?.sql, exact, params });
      // Log tables: a record both in Lance and still in memory (its flush landed and has not dropped the segment yet, or failed after landing) counts once.
      const useful = pk ? cands.filter((c) => (newest.get(c.key) ?? -1) < c.offset) : cands.filter((c) => !segments.some((s) => s.entries.has(c.offset)));
      if (useful.length < q.k && cands.length === limit) {
        limit *= 4;
        continue;
      }
      if (useful.length < q.k && !exact) {
        // The index found fewer than asked: a selective filter can starve it; the flat scan cannot miss.
        exact = true;
        continue;
      }
      for (const c of useful) all.push({ key: c.key, offset: c.offset, distance: dist(q.vector, c.vector), rowJson: c.rowJson, vector: c.vector });
      break;
    }
  }
  let out = latestOf(pk, all);
  // Zero vectors under cosine: distance 1 (distance.ts), which Lance never answers (its cosine of one is NaN, and the
  // row is dropped). Only needed when the answer is short or reaches distance 1: else every zero row sorts after it.
  if (lance && q.metric === 'cosine' && (out.length < q.k || out[q.k - 1].distance >= 1)) {
    const zeros = await zeroRows(col, segments, newest, lance.version, q, params, new Set(all.map((s) => s.offset)));
    if (zeros.length) out = latestOf(pk, [...all, ...zeros]);
  }
  return out.slice(0, q.k).map((s) => {
    const row = rowJson(col, s);
    return { key: hitKey(col, s.key, row), offset: s.offset, distance: s.distance, row };
  });
}

/** pk tables: the newest version of each key; sorted nearest first (ties: the lower offset). */
function latestOf(pk: boolean, all: Scored[]): Scored[] {
  let out = all;
  if (pk) {
    const best = new Map<string, Scored>();
    for (const s of all) {
      const b = best.get(s.key);
      if (!b || b.offset < s.offset) best.set(s.key, s);
    }
    out = [...best.values()];
  }
  return out.sort((a, b) => a.distance - b.distance || a.offset - b.offset);
}

/**
 * The Lance rows (at `version`, filtered, not stale) whose vector is all
 * zeros, scored by the cosine rule (distance 1). Lance's cosine search never
 * answers them, so they are found by an exact l2 scan from the origin, which
 * answers rows by squared norm: zero rows first. It is asked again with four
 * times the limit while its last row may still have norm 0 in float32 (tiny
 * rows round to it: below 1e-30, far beyond that, counts as maybe), so every
 * zero row is found, whatever its offset (ties at distance 1 go by offset).
 */
async function zeroRows(col: VectorColumn, segments: Segment[], newest: Map<string, number>, version: VersionHandle | undefined, q: ColumnQuery, params: IndexParams, seen: Set<number>): Promise<Scored[]> {
  const origin = new Float32Array(q.vector.length);
  let limit = q.k + Math.min(newest.size, q.k);
  for (;;) {
    const cands = await col.lance.search(version, { vector: origin, limit, metric: 'l2', where: q.filter?.sql, exact: true, params });
    if (cands.length === limit && squaredNorm(cands[cands.length - 1].vector) < 1e-30) {
      limit *= 4;
      continue;
    }
    const stale = (c: { key: string; offset: number }) => (col.pk ? (newest.get(c.key) ?? -1) >= c.offset : segments.some((s) => s.entries.has(c.offset)));
    return cands
      .filter((c) => squaredNorm(c.vector) === 0 && !seen.has(c.offset) && !stale(c))
      .map((c) => ({ key: c.key, offset: c.offset, distance: DISTANCE.cosine(q.vector, c.vector), rowJson: c.rowJson, vector: c.vector }));
  }
}

/** `v` scaled to length 1, its norm taken in doubles (which hold the square of any float32); `v` is not all zeros (service.ts refuses such a cosine query). */
function unit(v: Float32Array): Float32Array {
  const n = Math.sqrt(squaredNorm(v));
  return v.map((x) => x / n);
}

function squaredNorm(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return s;
}

/**
 * A hit's key: as stored, except for a log row with a null key column, which
 * has none (schema.keyOf). Read from the row, because the hot segment and Lance
 * store such a row's key as "null" (Lance datasets written before this was
 * told apart hold it so), which is also the key of the string "null".
 */
function hitKey(col: VectorColumn, stored: string, row: Row): string | null {
  const kc = col.table.schema.keyColumns;
  if (col.pk || kc.length === 0) return stored;
  for (const c of kc) if (c.nullable && row[c.name] === null) return null;
  return stored;
}

/** A hit's row in JSON form: every current column (null for one added after it was written), the vector as stored (float32). */
function rowJson(col: VectorColumn, s: Scored): Row {
  const schema = col.table.schema;
  const base = s.row ? schema.rowToJson(s.row) : (JSON.parse(s.rowJson!) as Row);
  const out: Row = {};
  for (const c of schema.columns) out[c.name] = base[c.name] ?? null;
  out[col.column] = Array.from(s.vector);
  return out;
}
