/**
 * The figures every adapter and service reports into, for /metrics
 * (http/metrics.ts renders them). Plain counters and fixed-bucket
 * histograms: recording one costs a few additions, no allocation once the
 * series exists.
 */

/** Latency buckets, milliseconds (upper bounds). */
export const BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

export interface Series {
  count: number;
  sumMs: number;
  buckets: number[];
}

export const newSeries = (): Series => ({ count: 0, sumMs: 0, buckets: new Array(BUCKETS_MS.length).fill(0) });

export function observe(s: Series, ms: number): void {
  s.count++;
  s.sumMs += ms;
  for (let i = 0; i < BUCKETS_MS.length; i++) if (ms <= BUCKETS_MS[i]) s.buckets[i]++;
}

/** gRPC calls: label text (`method="...",code="..."`) → series. */
export const grpcCalls = new Map<string, Series>();
const grpcByMethod = new Map<string, Series[]>();

/** One finished gRPC call: its full method name (`asof.v1.OnlineService/GetOnlineFeatures`) and status code. */
export function observeGrpc(method: string, code: number, ms: number): void {
  let byCode = grpcByMethod.get(method);
  if (!byCode) grpcByMethod.set(method, (byCode = []));
  let s = byCode[code];
  if (!s) {
    s = byCode[code] = newSeries();
    grpcCalls.set(`method="${method}",code="${code}"`, s);
  }
  observe(s, ms);
}

/** Rows acknowledged by ingest (all adapters), per table. */
export const rowsIngested = new Map<string, number>();
export function countRowsIngested(table: string, rows: number): void {
  rowsIngested.set(table, (rowsIngested.get(table) ?? 0) + rows);
}

/** JSON write bodies sent to an ingest thread (ingest/parse-pool.ts): parsed there, or handed back to the main thread (declined, or the thread died). */
export const offThreadBodies = { parsed: 0, declined: 0 };

/** Requests answered ASOF_BACKEND_UNAVAILABLE because the online store failed (all adapters). */
export const onlineStoreErrors = { count: 0 };
