/**
 * Observability: request ids on every answer, the Prometheus figures an
 * operator watches (per-route and per-gRPC-method latency, rows ingested,
 * changelog offsets, per-view freshness, 429s, online store health), and
 * /readyz following Redis.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { call, grpcAsof } from './grpc-helpers.js';
import { testAsof } from '../helpers.js';
import { deletePrefix, PrivateRedis, redisServerInstalled, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

/** The value of one sample in Prometheus text, or undefined. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

test('request ids: every answer carries x-request-id (a sane one the caller sent, or a new one), errors included', async () => {
  const a = await testAsof();
  try {
    const r1 = await a.req('GET', '/tables');
    const r2 = await a.req('GET', '/tables');
    assert.match(String(r1.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.notEqual(r1.headers['x-request-id'], r2.headers['x-request-id']);
    assert.equal((await a.req('GET', '/tables/nope', undefined, { 'x-request-id': 'trace-42.a' })).headers['x-request-id'], 'trace-42.a');
    assert.notEqual((await a.req('GET', '/tables', undefined, { 'x-request-id': 'bad id\n{}' })).headers['x-request-id'], 'bad id\n{}');
  } finally {
    await a.destroy();
  }
});

test('a path no route matches gets the hooks every route has: request id, key check, metrics', async () => {
  const a = await testAsof({ apiKeys: 'k1' } as never);
  try {
    const stranger = await a.req('GET', '/no/such/route', undefined, { 'x-request-id': 'probe-1' });
    assert.equal(stranger.status, 401, 'an unmatched path reveals nothing without a key');
    assert.equal(stranger.headers['x-request-id'], 'probe-1');
    const known = await a.req('GET', '/no/such/route', undefined, { authorization: 'Bearer k1' });
    assert.equal(known.status, 404);
    assert.equal(known.body.error.code, 'ASOF_NOT_FOUND');
    assert.match(String(known.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const text = (await a.req('GET', '/metrics', undefined, { authorization: 'Bearer k1' })).body as string;
    assert.equal(sample(text, 'asof_http_requests_total{route="unmatched",method="GET",status="404"}'), 1);
    assert.equal(sample(text, 'asof_http_requests_total{route="unmatched",method="GET",status="401"}'), 1);
  } finally {
    await a.destroy();
  }
});

test('metrics: per-route and per-gRPC-method latency, rows ingested, offsets, freshness per view, 429s, online store', async () => {
  const asof = await grpcAsof({ maxInFlightWrites: 1, maxQueuedWrites: 0 } as never, { now: () => NOW });
  try {
    await asof.req('PUT', '/tables/trips', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'driver', type: 'int64', nullable: false }] });
    await asof.req('PUT', '/feature-views/tv', { source: 'trips', entity: 'driver', features: [{ name: 'n', agg: { fn: 'count', window: '1h' } }] });
    const w = await asof.req('POST', '/tables/trips/rows', { rows: [{ ts: NOW - 90_000, driver: 1 }, { ts: NOW - 30_000, driver: 1 }, { ts: NOW - 60_000, driver: 2 }] });
    assert.equal(w.status, 200);
    assert.equal((await call(asof.online, 'GetOnlineFeatures', { entities: [{ int64_value: 1 }], view: 'tv' })).err, undefined);
    const held = asof.admission.gates.writes.enter() as () => void;
    const refused = await asof.req('POST', '/tables/trips/rows', { rows: [{ ts: NOW, driver: 3 }] });
    held();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '1');
    const text = (await asof.req('GET', '/metrics')).body as string;
    assert.equal(sample(text, 'asof_rows_ingested_total{table="trips"}'), 3);
    assert.equal(sample(text, 'asof_changelog_offset{table="trips"}'), 2);
    // The last record's event time is NOW - 60 s (the newest record, not the greatest time).
    assert.equal(sample(text, 'asof_view_freshness_seconds{view="tv"}'), 60);
    assert.equal(sample(text, 'asof_overloaded_total{kind="writes"}'), 1);
    assert.equal(sample(text, 'asof_online_store_up{store="embedded"}'), 1);
    assert.equal(sample(text, 'asof_http_request_duration_ms_count{route="/tables/:table/rows",method="POST",status="429"}'), 1);
    assert.equal(sample(text, 'asof_grpc_call_duration_ms_count{method="asof.v1.OnlineService/GetOnlineFeatures",code="0"}'), 1);
    assert.ok(sample(text, 'asof_grpc_call_duration_ms_bucket{method="asof.v1.OnlineService/GetOnlineFeatures",code="0",le="+Inf"}') === 1);
    assert.ok(text.includes('asof_online_store_errors_total'));
  } finally {
    await asof.destroy();
  }
});

test('the example Grafana dashboard is valid JSON and charts only series /metrics exports', () => {
  const dash = JSON.parse(readFileSync(new URL('../../ops/grafana-dashboard.json', import.meta.url), 'utf8'));
  const exprs: string[] = dash.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));
  assert.ok(exprs.length >= 6);
  const metrics = new Set(exprs.flatMap((e) => e.match(/asof_[a-z_]+/g) ?? []).map((m) => m.replace(/_(bucket|sum|count)$/, '')));
  const known = ['asof_http_request_duration_ms', 'asof_http_requests_total', 'asof_grpc_call_duration_ms', 'asof_rows_ingested_total', 'asof_changelog_offset', 'asof_view_freshness_seconds', 'asof_overloaded_total', 'asof_online_store_errors_total', 'asof_online_store_up', 'asof_work_in_flight', 'asof_work_queued', 'asof_process_memory_bytes'];
  for (const m of metrics) assert.ok(known.includes(m), `the dashboard charts ${m}, which /metrics does not export`);
});

test('/readyz answers 503 while Redis is away and 200 once it is back', { skip: !redisServerInstalled() && process.env.CI !== 'true' ? 'redis-server not installed' : false }, async () => {
  const redis = await PrivateRedis.start();
  const a = await testAsof({ redisUrl: redis.url, redisPrefix: uniquePrefix('readyz') });
  try {
    assert.equal((await a.req('GET', '/readyz')).status, 200);
    await redis.stop();
    const until = async (status: number) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = await a.req('GET', '/readyz');
        if (r.status === status) return r;
        assert.ok(Date.now() < deadline, `/readyz never answered ${status}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    const down = await until(503);
    assert.equal(down.body.error.code, 'ASOF_BACKEND_UNAVAILABLE');
    assert.match(String((await a.req('GET', '/metrics')).body), /asof_online_store_up\{store="redis"\} 0/);
    await redis.restart();
    await until(200);
  } finally {
    await a.destroy();
    await redis.stop().catch(() => undefined);
  }
});

test('/readyz answers 503 while the lookup connection cannot use Redis (a password Redis refuses), though writes go through', async (t) => {
  if (!(await sharedRedisOrSkip())) return t.skip('redis not reachable');
  const prefix = uniquePrefix('readyz-auth');
  // The shared Redis has no password: AUTH is refused. ioredis goes on without it; the lookup connection does not.
  const url = new URL(SHARED_REDIS_URL);
  url.password = 'not-the-password';
  const a = await testAsof({ redisUrl: url.toString(), redisPrefix: prefix });
  try {
    const ready = await a.req('GET', '/readyz');
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.equal(ready.body.error.code, 'ASOF_BACKEND_UNAVAILABLE');
    assert.match(String((await a.req('GET', '/metrics')).body), /asof_online_store_up\{store="redis"\} 0/);
  } finally {
    await a.destroy();
    await deletePrefix(SHARED_REDIS_URL, prefix);
  }
});
