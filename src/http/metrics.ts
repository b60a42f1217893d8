/**
 * Prometheus text exposition for the few figures an operator watches:
 * requests by route and status with a latency histogram, and per-table sizes.
 * Per-table series are given only of the tables the scraping caller may read
 * (Engine.mayRead, as GET /tables lists them): asof's internal tables
 * (`_asof_decisions`) to keys with the audit scope.
 */
import { UNRESTRICTED, type Caller } from '../access.js';
import type { Admission } from '../admission.js';
import { BUCKETS_MS, grpcCalls, newSeries, observe, offThreadBodies, onlineStoreErrors, rowsIngested, type Series } from '../metrics.js';
import type { Services } from '../services.js';
/** Label text → series, for the exposition. */
const requests = new Map<string, Series>();
/** Per route and method: the series of each status code (an array indexed by status), found per request without building label text. */
const byRoute = new Map<string, (Series | undefined)[]>();

/**
 * The observer of one route and method: `(status, ms)` records a request.
 * Routes resolve theirs once (server.ts), so a request costs an array read
 * and the histogram's additions, no label text or map lookup.
 */
export function requestObserver(route: string, method: string): (status: number, ms: number) => void {
  const key = `${method} ${route}`;
  let byStatus = byRoute.get(key);
  if (!byStatus) byRoute.set(key, (byStatus = []));
  const series = byStatus;
  return (status, ms) => {
    let s = series[status];
    if (s === undefined) {
      s = series[status] = newSeries();
      requests.set(`route="${route}",method="${method}",status="${status}"`, s);
    }
    observe(s, ms);
  };
}

function histogram(out: string[], name: string, help: string, series: Map<string, Series>): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const [k, s] of series) {
    BUCKETS_MS.forEach((b, i) => out.push(`${name}_bucket{${k},le="${b}"} ${s.buckets[i]}`));
    out.push(`${name}_bucket{${k},le="+Inf"} ${s.count}`, `${name}_sum{${k}} ${s.sumMs}`, `${name}_count{${k}} ${s.count}`);
  }
}

/**
 * Seconds from the newest event time of each view's source (its last
 * changelog record: what a lookup serves, read-your-writes) to now. Read at
 * scrape time, so lookups pay nothing for it.
 */
async function freshness(services: Services): Promise<string[]> {
  const out: string[] = [];
  const now = services.now();
  for (const view of services.registry.listViews()) {
    if (!services.engine.has(view.source)) continue;
    const table = services.engine.table(view.source);
    const info = services.engine.describe(view.source, UNRESTRICTED);
    if (info.latestOffset < 0) continue;
    const column = info.eventTime;
    for await (const b of table.scanBatches({ fromOffset: info.latestOffset, columns: column ? [column] : [] })) {
      const i = info.latestOffset - b.firstOffset;
      const v = column ? b.rows[i]?.[column] : undefined;
      const t = typeof v === 'number' ? v : v instanceof Date ? v.getTime() : typeof v === 'string' ? Date.parse(v) : b.commitTime;
      if (Number.isFinite(t)) out.push(`asof_view_freshness_seconds{view="${view.name}"} ${((now - t) / 1000).toFixed(3)}`);
      break;
    }
  }
  return out;
}

/** The exposition for `caller` (UNRESTRICTED with auth off): per-table series of the tables it may read. */
export async function metricsText(services: Services, caller: Caller, admission?: Admission): Promise<string> {
  const mayRead = (table: string): boolean => services.engine.mayRead(table, caller);
  const out: string[] = [];
  out.push('# HELP asof_http_requests_total HTTP requests by route, method and status.', '# TYPE asof_http_requests_total counter');
  for (const [k, s] of requests) out.push(`asof_http_requests_total{${k}} ${s.count}`);
  histogram(out, 'asof_http_request_duration_ms', 'HTTP request latency in milliseconds, by route, method and status.', requests);
  histogram(out, 'asof_grpc_call_duration_ms', 'gRPC call latency in milliseconds, by full method name and status code (0 OK).', grpcCalls);
  out.push('# HELP asof_rows_ingested_total Rows acknowledged by ingest (REST, gRPC, imports), by table.', '# TYPE asof_rows_ingested_total counter');
  for (const [t, n] of rowsIngested) if (mayRead(t)) out.push(`asof_rows_ingested_total{table="${t}"} ${n}`);
  out.push('# HELP asof_ingest_thread_bodies_total JSON write bodies sent to an ingest thread: parsed there, or declined (parsed on the main thread).', '# TYPE asof_ingest_thread_bodies_total counter');
  out.push(`asof_ingest_thread_bodies_total{outcome="parsed"} ${offThreadBodies.parsed}`, `asof_ingest_thread_bodies_total{outcome="declined"} ${offThreadBodies.declined}`);
  out.push('# HELP asof_online_store_errors_total Requests answered ASOF_BACKEND_UNAVAILABLE because the online store failed.', '# TYPE asof_online_store_errors_total counter');
  out.push(`asof_online_store_errors_total ${onlineStoreErrors.count}`);
  const healthy = services.onlineStore.healthy?.() ?? true;
  out.push('# HELP asof_online_store_up 1 while the online store answers (always 1 for the embedded store).', '# TYPE asof_online_store_up gauge', `asof_online_store_up{store="${services.onlineStore.kind}"} ${healthy ? 1 : 0}`);
  if (admission) {
    const gates = Object.values(admission.gates);
    out.push('# HELP asof_overloaded_total Requests refused with 429 ASOF_OVERLOADED, by kind of work.', '# TYPE asof_overloaded_total counter');
    for (const g of gates) out.push(`asof_overloaded_total{kind="${g.kind}"} ${g.refused}`);
    out.push('# HELP asof_work_in_flight Requests being worked on, by kind.', '# TYPE asof_work_in_flight gauge');
    for (const g of gates) out.push(`asof_work_in_flight{kind="${g.kind}"} ${g.active}`);
    out.push('# HELP asof_work_queued Requests waiting for a slot, by kind.', '# TYPE asof_work_queued gauge');
    for (const g of gates) out.push(`asof_work_queued{kind="${g.kind}"} ${g.queued}`);
    out.push('# HELP asof_work_in_flight_bytes Bytes of the write byte budget held by the bodies in flight.', '# TYPE asof_work_in_flight_bytes gauge', `asof_work_in_flight_bytes{kind="writes"} ${admission.gates.writes.activeBytes}`);
    out.push('# HELP asof_body_timeouts_total Admitted requests ended 408 ASOF_REQUEST_TIMEOUT (gRPC DEADLINE_EXCEEDED) because their body stalled (idle), came below the least rate (slow) or took too long in all (too_long).', '# TYPE asof_body_timeouts_total counter');
    for (const [reason, n] of Object.entries(admission.bodyTimeouts)) out.push(`asof_body_timeouts_total{reason="${reason}"} ${n}`);
  }
  const cache = services.online.cache;
  out.push('# HELP asof_lookup_cache_total Online lookups of one entity in one view, answered from the lookup cache (hit) or evaluated afresh (miss).', '# TYPE asof_lookup_cache_total counter');
  out.push(`asof_lookup_cache_total{result="hit"} ${cache.hits}`, `asof_lookup_cache_total{result="miss"} ${cache.misses}`);
  const mem = process.memoryUsage();
  out.push('# HELP asof_process_memory_bytes Memory of this process: resident set, V8 heap used and reserved, memory outside the heap (typed arrays, buffers).', '# TYPE asof_process_memory_bytes gauge');
  out.push(`asof_process_memory_bytes{kind="rss"} ${mem.rss}`, `asof_process_memory_bytes{kind="heap_used"} ${mem.heapUsed}`, `asof_process_memory_bytes{kind="heap_total"} ${mem.heapTotal}`, `asof_process_memory_bytes{kind="external"} ${mem.external}`, `asof_process_memory_bytes{kind="array_buffers"} ${mem.arrayBuffers}`);
  out.push('# HELP asof_table_records Changelog records per table.', '# TYPE asof_table_records gauge');
  // Counts and offsets, of the tables GET /tables would list to this caller.
  const tables = services.engine.list(caller);
  for (const t of tables) out.push(`asof_table_records{table="${t.name}"} ${t.latestOffset + 1}`);
  out.push('# HELP asof_table_rows Live rows (pk tables) or records (log tables).', '# TYPE asof_table_rows gauge');
  for (const t of tables) out.push(`asof_table_rows{table="${t.name}"} ${t.rowCount}`);
  out.push('# HELP asof_changelog_offset Newest changelog offset per table (-1: empty).', '# TYPE asof_changelog_offset gauge');
  for (const t of tables) out.push(`asof_changelog_offset{table="${t.name}"} ${t.latestOffset}`);
  out.push('# HELP asof_view_freshness_seconds Now minus the newest event time a lookup of the view can serve (its source\'s last changelog record).', '# TYPE asof_view_freshness_seconds gauge');
  out.push(...(await freshness(services)));
  out.push(
    '# HELP asof_vector_rows Rows of each vector column by where a search finds them: in the ANN index, in Lance but not yet indexed (scanned exactly), in memory not yet written to Lance (scored exactly).',
    '# TYPE asof_vector_rows gauge',
  );
  for (const c of services.vectors.all) {
    if (!mayRead(c.table.name)) continue;
    const l = `table="${c.table.name}",column="${c.column}"`;
    out.push(`asof_vector_rows{${l},state="indexed"} ${c.coverage.indexed}`, `asof_vector_rows{${l},state="unindexed"} ${c.coverage.lance - c.coverage.indexed}`, `asof_vector_rows{${l},state="memory"} ${c.hotRows}`);
  }
  tieringMetrics(services, tables, out);
  return out.join('\n') + '\n';
}

/** The cold tier: how far each table is tiered and how far behind that is. Absent when tiering is off. */
function tieringMetrics(services: Services, tables: ReturnType<Services['engine']['list']>, out: string[]): void {
  const tiering = services.engine.tiering;
  if (!tiering) return;
  out.push('# HELP asof_tiered_offset Highest changelog offset in the cold tier (Lance); -1 while nothing is tiered.', '# TYPE asof_tiered_offset gauge');
  for (const t of tables) out.push(`asof_tiered_offset{table="${t.name}"} ${t.tieredOffset}`);
  const lags = tables.map((t) => [t.name, services.engine.tieringLag(t.name)!] as const);
  out.push('# HELP asof_tiering_lag_records Changelog records not yet in the cold tier.', '# TYPE asof_tiering_lag_records gauge');
  for (const [name, lag] of lags) out.push(`asof_tiering_lag_records{table="${name}"} ${lag.records}`);
  out.push('# HELP asof_tiering_lag_seconds Age of the oldest record not yet in the cold tier (0 when none).', '# TYPE asof_tiering_lag_seconds gauge');
  for (const [name, lag] of lags) out.push(`asof_tiering_lag_seconds{table="${name}"} ${lag.ms / 1000}`);
  out.push('# HELP asof_tiered_records_total Records this process copied into the cold tier.', '# TYPE asof_tiered_records_total counter');
  out.push(`asof_tiered_records_total ${tiering.stats.records}`);
  out.push('# HELP asof_tiering_steps_total Commits into the cold tier (each copies whole frames, several MiB where the load allows).', '# TYPE asof_tiering_steps_total counter');
  out.push(`asof_tiering_steps_total ${tiering.stats.steps}`);
  out.push('# HELP asof_tiering_failures_total Tiering steps that failed (retried on the next round).', '# TYPE asof_tiering_failures_total counter');
  out.push(`asof_tiering_failures_total ${tiering.stats.failures}`);
  out.push('# HELP asof_hot_segments_deleted_total Sealed changelog segments deleted once tiered and past ASOF_HOT_RETENTION.', '# TYPE asof_hot_segments_deleted_total counter');
  out.push(`asof_hot_segments_deleted_total ${tiering.stats.segmentsDeleted}`);
}
