/**
 * Fuzzing every REST route (issue 13, item 5): thousands of generated and
 * mutated requests through Fastify's inject, bounded in time. The properties:
 *   - never a 5xx (no backend is down here, so not even 503), never a crash;
 *   - every error is asof's `{"error": {code, message, details}}` with a
 *     catalogue code, and no message holds a server path;
 *   - the data written before the fuzzing reads back identical after it (the
 *     changelog is append-only, so its records up to then), also after a restart.
 * The seed and the request count are printed; `FUZZ_SEED=<n>` replays a run,
 * `FUZZ_MS` and `FUZZ_RUNS` change the bounds (30 s or 20,000 requests, whichever comes first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ERROR_CATALOGUE } from '../../src/errors.js';
import { tempDir, testAsof, type TestAsof } from '../helpers.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (process.pid << 16)) >>> 0;
// Bounded by time and by count: about 90 requests/s on a 2-core machine at load 28, several times that when quiet.
const TIME_MS = Number(process.env.FUZZ_MS ?? 30_000);
const MAX_REQUESTS = Number(process.env.FUZZ_RUNS ?? 20_000);

const P = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 's', type: 'string' },
    { name: 'j', type: 'json' },
    { name: 'ts', type: 'timestamp' },
    { name: 'f', type: 'float32' },
    { name: 'i', type: 'int32' },
    { name: 'b', type: 'bool' },
    { name: 'l', type: 'list<int64>' },
    { name: 'st', type: 'struct<a:string,n:float64>' },
    { name: 'v', type: 'vector<2>' },
  ],
};
const E = {
  kind: 'log',
  eventTime: 't',
  primaryKey: ['k'],
  columns: [
    { name: 'k', type: 'string', nullable: false },
    { name: 't', type: 'timestamp', nullable: false },
    { name: 'x', type: 'float64' },
  ],
};
const VIEW = { source: 'e', entity: 'k', features: [{ name: 'last_x', column: 'x' }, { name: 'n1h', agg: { fn: 'count', window: '1h' } }, { name: 'sum1d', agg: { fn: 'sum', column: 'x', window: '1d' } }] };
const PVIEW = { source: 'p', entity: 'id', features: [{ name: 's', column: 's' }, { name: 'j', column: 'j' }] };
const SERVICE = { features: ['ev:last_x', 'pv:s'] };

const T0 = Date.parse('2026-01-01T00:00:00Z');
const baselineP = Array.from({ length: 40 }, (_, i) => ({
  id: i,
  s: `row ${i} é€😀`,
  j: { i, nested: [i, { deep: [true, null, 'x'] }] },
  ts: T0 + i,
  f: i / 4,
  i: -i,
  b: i % 2 === 0,
  l: [i, '9007199254740993'],
  st: { a: `a${i}`, n: i * 1.5 },
  v: [i, -i],
}));
const baselineE = Array.from({ length: 60 }, (_, i) => ({ k: `k${i % 7}`, t: new Date(T0 + i * 60_000).toISOString(), x: i }));

/** Samples of valid bodies per route, which the fuzzer mutates. */
const SAMPLES: Record<string, unknown[]> = {
  'PUT /tables/{table}': [P, E, { kind: 'pk', columns: [{ name: 'a', type: 'int32', nullable: false }], primaryKey: ['a'] }],
  'POST /tables/{table}/rows': [{ rows: baselineP.slice(0, 3) }, { rows: baselineE.slice(0, 3) }, { rows: [{ id: 1 }], op: 'delete' }],
  'PUT /feature-views/{view}': [VIEW, PVIEW],
  'PUT /feature-services/{service}': [SERVICE],
  'POST /features': [{ entities: ['k1', 'k2'], view: 'ev' }, { entities: [1, 2], features: ['pv:s'] }, { entities: ['k1'], service: 'svc' }],
  'POST /get-online-features': [{ features: ['ev:last_x'], entities: { k: ['k1', 'k9'] } }, { feature_service: 'svc', entities: { k: ['k1'] }, full_feature_names: true }],
  'POST /training-sets': [{ entities: { rows: [{ k: 'k1', timestamp: '2026-01-01T00:30:00Z', label: 1 }] }, features: ['ev:last_x', 'ev:n1h'], pointInTime: 'event', format: 'json' }],
};

const NAMES = ['p', 'e', 'golden', 'ev', 'pv', 'svc', 'nope', 'x', '_asof_internal', 'a'.repeat(128), 'a'.repeat(129)];
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'application/x-ndjson', 'application/vnd.apache.arrow.stream', 'text/csv', 'application/vnd.apache.parquet', 'application/octet-stream', 'text/plain', 'application/xml', 'multipart/form-data', ''];

/** Characters that break naive handling: lone surrogates, NUL, quotes, separators, multi-byte text. */
const nastyChar = fc.oneof(
  fc.constantFrom('\ud800', '\udfff', '\u0000', '"', '\\', ',', '\n', '\r', '/', '%', '?', '#', '&', '=', '__proto__', 'constructor', 'é', '😀', '\u2028', '\ufeff'),
  fc.string({ maxLength: 3 }),
);
const nastyString = fc.array(nastyChar, { maxLength: 8 }).map((a) => a.join(''));

/** Every byte of the text's UTF-8 %-escaped (encodeURIComponent throws on a lone surrogate). */
const pctEncode = (s: string): string => [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

/** A JSON-ish value, deep or extreme now and then. */
const extremeValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -(2 ** 63), 1.5, -0, 0.1, '9223372036854775808', '-9223372036854775809', '', 'NaN', '1e999', true, null) },
  { weight: 2, arbitrary: nastyString },
  { weight: 1, arbitrary: fc.integer({ min: 90, max: 3000 }).map((d) => JSON.parse('['.repeat(d) + ']'.repeat(d))) },
  { weight: 1, arbitrary: fc.integer({ min: 90, max: 3000 }).map((d) => JSON.parse('{"a":'.repeat(d) + '1' + '}'.repeat(d))) },
  { weight: 1, arbitrary: fc.constantFrom('2026-01-01T00:00:00Z', '2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', 8.64e15 + 1, -8.64e15) },
);

/** Replaces the value at a random path of `v` (or returns a replacement for the root). */
function mutateAt(v: unknown, path: number[], replacement: unknown): unknown {
  if (path.length === 0 || v === null || typeof v !== 'object') return replacement;
  const keys = Object.keys(v as object);
  if (keys.length === 0) return replacement;
  const k = keys[path[0] % keys.length];
  const copy: any = Array.isArray(v) ? [...v] : { ...(v as object) };
  copy[k] = mutateAt(copy[k], path.slice(1), replacement);
  return copy;
}

interface Req {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
}

function requestArb(routes: { method: string; path: string }[]): fc.Arbitrary<Req> {
  const pathParam = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...NAMES, '1', '0', '-1', '39', 'k1', '9007199254740993') }, { weight: 2, arbitrary: nastyString.map(pctEncode) }, { weight: 1, arbitrary: fc.constantFrom('%FF', '%E0%A4%A', '%', 'a%2Fb', 'x'.repeat(5000)) });
  const query = fc.dictionary(fc.constantFrom('view', 'features', 'service', 'from', 'limit', 'key', 'op', 'fileFormat', 'format', 'at', 'pointInTime', 'decision', 'x'), fc.oneof(fc.constantFrom('ev', 'pv', 'svc', 'ev:last_x,ev:n1h', 'pv:s', '0', '-1', '1e9', '5', 'delete', 'csv', 'parquet', 'ndjson', '{"id":1}', '{', 'event', 'known'), nastyString), { maxKeys: 3 });
  return fc
    .record({
      route: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...routes) }, { weight: 1, arbitrary: fc.record({ method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'), path: fc.constantFrom('/', '/tables/{table}/rows/{key}/x', '/nope', '//tables', '/tables/') }) }),
      params: fc.array(pathParam, { minLength: 3, maxLength: 3 }),
      query,
      ct: fc.constantFrom(...CONTENT_TYPES),
      sample: fc.nat(),
      mutation: fc.oneof(
        { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
        { weight: 5, arbitrary: fc.record({ kind: fc.constant('value' as const), path: fc.array(fc.nat(), { maxLength: 5 }), value: extremeValue }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('bytes' as const), seed: fc.nat() }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('any' as const), value: fc.oneof(fc.jsonValue(), fc.string()) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: fc.oneof(nastyString, fc.constantFrom('id,s\n1,"x', 'id\n1\n2,3\n', '{"id":1}\n{"id":', 'PAR1garbagePAR1', 'k,t,x\nk1,2026-01-01T00:00:00Z,1\n')) }) },
      ),
      bytes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    })
    .map(({ route, params, query, ct, sample, mutation, bytes }) => {
      let i = 0;
      const path = route.path.replace(/\{[^}]+\}/g, () => params[i++ % params.length]);
      const qs = new URLSearchParams(query).toString();
      const samples = SAMPLES[`${route.method.toUpperCase()} ${route.path}`] ?? [{}];
      const base = samples[sample % samples.length];
      let payload: string | Buffer | undefined;
      if (route.method === 'GET' || route.method === 'HEAD' || route.method === 'DELETE') payload = mutation.kind === 'text' ? mutation.text : undefined;
      else if (mutation.kind === 'none') payload = JSON.stringify(base);
      else if (mutation.kind === 'value') payload = JSON.stringify(mutateAt(base, mutation.path, mutation.value));
      else if (mutation.kind === 'any') payload = JSON.stringify(mutation.value) ?? '';
      else if (mutation.kind === 'text') payload = mutation.text;
      else {
        // Byte-level damage: set or insert bytes (an odd position inserts), then maybe cut.
        let b = Buffer.from(JSON.stringify(base));
        for (const [at, byte] of bytes) {
          const i = b.length ? at % b.length : 0;
          if (at % 2 === 1) b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
          else if (b.length) b[i] = byte;
        }
        if (mutation.seed % 3 === 0) b = b.subarray(0, mutation.seed % (b.length + 1));
        payload = b;
      }
      const headers: Record<string, string> = {};
      if (ct && payload !== undefined) headers['content-type'] = ct;
      return { method: route.method.toUpperCase(), url: path + (qs ? `?${qs}` : ''), headers, payload };
    });
}

const CODES = new Set(Object.keys(ERROR_CATALOGUE));

test(`fuzz: generated and mutated requests over every route (seed ${SEED})`, { timeout: TIME_MS + 120_000 }, async () => {
  const dir = await tempDir('asof-fuzz-');
  let asof: TestAsof | undefined = await testAsof({}, { dataDir: dir.path });
  try {
    const ok = async (method: string, url: string, body: unknown): Promise<void> => {
      const r = await asof!.req(method, url, body);
      assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    await ok('PUT', '/tables/p', P);
    await ok('PUT', '/tables/e', E);
    await ok('PUT', '/tables/golden', P);
    await ok('POST', '/tables/p/rows', { rows: baselineP });
    await ok('POST', '/tables/e/rows', { rows: baselineE });
    await ok('POST', '/tables/golden/rows', { rows: baselineP });
    await ok('PUT', '/feature-views/ev', VIEW);
    await ok('PUT', '/feature-views/pv', PVIEW);
    await ok('PUT', '/feature-services/svc', SERVICE);

    /**
     * What was written before the fuzzing: each table's changelog up to here
     * (append-only: later writes add after it), golden's rows and description.
     * Definitions are not data: the fuzzer may legitimately redefine a view.
     */
    const snapshot = async (a: TestAsof): Promise<unknown> => {
      const out: Record<string, unknown> = {};
      for (const t of ['p', 'e', 'golden']) out[t] = (await a.req('GET', `/tables/${t}/changelog?from=0&limit=${t === 'e' ? baselineE.length : baselineP.length}`)).body.records;
      out.goldenRows = await Promise.all(baselineP.map(async (r) => (await a.req('GET', `/tables/golden/rows/${r.id}`)).body.row));
      const info = (await a.req('GET', '/tables/golden')).body;
      out.goldenInfo = { columns: info.columns, latestOffset: info.latestOffset, rowCount: info.rowCount };
      return out;
    };
    const before = await snapshot(asof);

    const spec = asof.http.swagger() as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(spec.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => ({ method: m.toUpperCase(), path })));
    // Golden is written only above: the fuzzer sends its writes elsewhere (it still reads it).
    const arb = requestArb(routes).filter((r) => !(r.url.startsWith('/tables/golden') && r.method !== 'GET'));

    let count = 0;
    const byStatus = new Map<number, number>();
    const dataDir = asof.dataDir;
    const a = asof;
    await fc.assert(
      fc.asyncProperty(arb, async (req) => {
        const res = await a.http.inject({ method: req.method as 'GET', url: req.url, headers: req.headers, payload: req.payload });
        count++;
        byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1);
        const sent = req.payload === undefined ? '' : JSON.stringify(String(req.payload).slice(0, 300));
        const what = `${req.method} ${req.url.slice(0, 200)} [${req.headers['content-type'] ?? ''}] ${sent} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
        assert.ok(res.statusCode < 500, what);
        if (res.statusCode >= 400 && req.method !== 'HEAD') {
          const body = JSON.parse(res.body) as { error?: { code?: string; message?: unknown } };
          assert.deepEqual(Object.keys(body), ['error'], what);
          assert.ok(CODES.has(body.error!.code!), what);
          assert.equal(typeof body.error!.message, 'string', what);
          // details always: a 400's list of {row?, field, reason}, another status's object of facts.
          const details = (body.error as { details?: unknown }).details;
          if (res.statusCode === 400) assert.ok(Array.isArray(details) && details.every((d) => typeof d.field === 'string' && typeof d.reason === 'string'), what);
          else assert.ok(details !== null && typeof details === 'object' && !Array.isArray(details), what);
          assert.ok(!res.body.includes(dataDir) && !res.body.includes('/tmp/'), `a server path in: ${what}`);
        }
      }),
      { seed: SEED, numRuns: MAX_REQUESTS, interruptAfterTimeLimit: TIME_MS, markInterruptAsFailure: false, endOnFailure: true },
    );
    const statuses = [...byStatus].sort(([x], [y]) => x - y).map(([s, n]) => `${s}:${n}`).join(' ');
    console.log(`fuzz: ${count} requests (bounds ${TIME_MS} ms, ${MAX_REQUESTS} requests), seed ${SEED} (replay: FUZZ_SEED=${SEED}); statuses ${statuses}`);
    // A floor that even a saturated machine reaches: the fuzzer ran, not just started.
    assert.ok(count >= Math.min(500, MAX_REQUESTS), `only ${count} requests in ${TIME_MS} ms`);
    assert.ok((byStatus.get(200) ?? 0) + (byStatus.get(201) ?? 0) > 0 && [...byStatus.keys()].some((s) => s >= 400), 'the fuzzer reached both answers and refusals');

    assert.deepEqual(await snapshot(asof), before, 'data written before the fuzzing reads back identical');
    await asof.close();
    asof = undefined;
    asof = await testAsof({}, { dataDir });
    assert.deepEqual(await snapshot(asof), before, 'and after a restart');
  } finally {
    await asof?.close();
    await dir.cleanup();
  }
});
