/**
 * Prometheus text exposition for the few figures an operator watches:
 * requests by route and status with a latency histogram, and per-table sizes.
 */
import type { Services } from '../services.js';

const BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

interface Series {
  count: number;
  sumMs: number;
  buckets: number[];
}
/** Label text → series; found per request through `byRoute` without building the label text. */
const requests = new Map<string, Series>();
const byRoute = new Map<string, Map<string, Series>>();
export function observeRequest(route: string, method: string, status: number, ms: number): void {
  let routeSeries = byRoute.get(route);
  if (!routeSeries) byRoute.set(route, (routeSeries = new Map()));
  const methodStatus = method + status;
  let s = routeSeries.get(methodStatus);
  if (!s) {
    s = { count: 0, sumMs: 0, buckets: new Array(BUCKETS_MS.length).fill(0) };
    routeSeries.set(methodStatus, s);
    requests.set(`route="${route}",method="${method}",status="${status}"`, s);
  }
  s.count++;
  s.sumMs += ms;
  for (let i = 0; i < BUCKETS_MS.length; i++) if (ms <= BUCKETS_MS[i]) s.buckets[i]++;
}

export function metricsText(services: Services): string {
  const out: string[] = [];
  out.push('# HELP asof_http_requests_total HTTP requests by route, method and status.', '# TYPE asof_http_requests_total counter');
  for (const [k, s] of requests) out.push(`asof_http_requests_total{${k}} ${s.count}`);
  out.push('# HELP asof_http_request_duration_ms HTTP request latency in milliseconds.', '# TYPE asof_http_request_duration_ms histogram');
  for (const [k, s] of requests) {
    BUCKETS_MS.forEach((b, i) => out.push(`asof_http_request_duration_ms_bucket{${k},le="${b}"} ${s.buckets[i]}`));
    out.push(`asof_http_request_duration_ms_bucket{${k},le="+Inf"} ${s.count}`, `asof_http_request_duration_ms_sum{${k}} ${s.sumMs}`, `asof_http_request_duration_ms_count{${k}} ${s.count}`);
  }
  const cache = services.online.cache;
  out.push('# HELP asof_lookup_cache_total Online lookups of one entity in one view, answered from the lookup cache (hit) or evaluated afresh (miss).', '# TYPE asof_lookup_cache_total counter');
  out.push(`asof_lookup_cache_total{result="hit"} ${cache.hits}`, `asof_lookup_cache_total{result="miss"} ${cache.misses}`);
  const mem = process.memoryUsage();
  out.push('# HELP asof_process_memory_bytes Memory of this process: resident set, V8 heap used and reserved, memory outside the heap (typed arrays, buffers).', '# TYPE asof_process_memory_bytes gauge');
  out.push(`asof_process_memory_bytes{kind="rss"} ${mem.rss}`, `asof_process_memory_bytes{kind="heap_used"} ${mem.heapUsed}`, `asof_process_memory_bytes{kind="heap_total"} ${mem.heapTotal}`, `asof_process_memory_bytes{kind="external"} ${mem.external}`, `asof_process_memory_bytes{kind="array_buffers"} ${mem.arrayBuffers}`);
  out.push('# HELP asof_table_records Changelog records per table.', '# TYPE asof_table_records gauge');
  const tables = services.engine.list();
  for (const t of tables) out.push(`asof_table_records{table="${t.name}"} ${t.latestOffset + 1}`);
  out.push('# HELP asof_table_rows Live rows (pk tables) or records (log tables).', '# TYPE asof_table_rows gauge');
  for (const t of tables) out.push(`asof_table_rows{table="${t.name}"} ${t.rowCount}`);
  return out.join('\n') + '\n';
}
