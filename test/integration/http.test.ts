import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { testAsof } from '../helpers.js';
import { loadConfig } from '../../src/config.js';
import { startAsof } from '../../src/app.js';
import { silentLogger } from '../../src/logger.js';

const LOG = { kind: 'log', eventTime: 'ts', primaryKey: ['k'], columns: [{ name: 'k', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'n', type: 'int32' }] };

test('operations routes: healthz, readyz, docs, openapi.json, metrics', async () => {
  const a = await testAsof();
  try {
    assert.deepEqual((await a.req('GET', '/healthz')).body, { status: 'ok' });
    assert.deepEqual((await a.req('GET', '/readyz')).body, { status: 'ready' });
    const docs = await a.req('GET', '/docs/');
    assert.equal(docs.status, 200);
    assert.match(String(docs.body), /swagger/i);
    const spec = await a.req('GET', '/openapi.json');
    assert.equal(spec.body.openapi, '3.1.0');
    assert.ok(spec.body.paths['/tables/{table}/rows']);
    await a.req('PUT', '/tables/m', LOG);
    const metrics = await a.req('GET', '/metrics');
    assert.match(String(metrics.body), /asof_table_records\{table="m"\} 0/);
    assert.match(String(metrics.body), /asof_http_requests_total\{route="\/tables\/:table",method="PUT",status="201"\} 1/);
    // The process's own memory, as the OS sees it (an independent reading: /proc).
    const rss = Number(/^asof_process_memory_bytes\{kind="rss"\} (\d+)$/m.exec(String(metrics.body))?.[1]);
    const procRss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
    assert.ok(Math.abs(rss - procRss) < 0.2 * procRss, `rss ${rss} against /proc ${procRss}`);
    const missing = await a.req('GET', '/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ASOF_NOT_FOUND');
  } finally {
    await a.destroy();
  }
});

test('limits: a body over the byte limit and a batch over the row limit are 413 and write nothing', async () => {
  const a = await testAsof({ maxBodyBytes: 2000, maxBatchRows: 3 });
  try {
    await a.req('PUT', '/tables/m', LOG);
    const big = { rows: Array.from({ length: 2 }, (_, i) => ({ k: 'x'.repeat(1500), ts: i })) };
    const r1 = await a.req('POST', '/tables/m/rows', big);
    assert.equal(r1.status, 413);
    assert.equal(r1.body.error.code, 'ASOF_PAYLOAD_TOO_LARGE');
    const r2 = await a.req('POST', '/tables/m/rows', { rows: Array.from({ length: 4 }, (_, i) => ({ k: 'a', ts: i })) });
    assert.equal(r2.status, 413);
    assert.equal(r2.body.error.details.maxRows, 3);
    assert.equal((await a.req('GET', '/tables/m')).body.latestOffset, -1);
    assert.equal((await a.req('POST', '/tables/m/rows', { rows: [{ k: 'a', ts: 1 }] })).status, 200);
  } finally {
    await a.destroy();
  }
});

test('auth: with API keys every data route needs a valid bearer key; health stays open', async () => {
  const a = await testAsof({ apiKeys: 's3cret,other' as never });
  try {
    assert.equal((await a.req('GET', '/healthz')).status, 200);
    const none = await a.req('GET', '/tables');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'ASOF_UNAUTHENTICATED');
    assert.equal((await a.req('GET', '/tables', undefined, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await a.req('GET', '/tables', undefined, { authorization: 'Bearer other' })).status, 200);
  } finally {
    await a.destroy();
  }
});

test('configuration: env and flags, flags win; bad values and unknown flags are refused; no auth off loopback', async () => {
  const c = loadConfig({ PORT: '9000', ASOF_API_KEYS: 'a, b', LOG_LEVEL: 'warn' }, ['--port', '9001', '--data-dir=/tmp/x']);
  assert.equal(c.port, 9001);
  assert.equal(c.dataDir, '/tmp/x');
  assert.deepEqual(c.apiKeys, [{ key: 'a', scopes: ['read', 'write', 'decide', 'admin', 'audit'] }, { key: 'b', scopes: ['read', 'write', 'decide', 'admin', 'audit'] }]);
  assert.equal(c.grpcPort, 50051);
  assert.equal(c.host, '127.0.0.1');
  assert.throws(() => loadConfig({ PORT: 'eighty' }), /PORT/);
  assert.throws(() => loadConfig({}, ['--prot', '1']), /unknown option --prot/);
  // A value is everything after the first '=': a padded base64 key keeps its padding and its scope (cut at the second
  // '=', it was a shorter key with every scope), a URL its query.
  const keyed = loadConfig({}, ['--api-keys=c2VjcmV0a2V5==:read', '--redis-url=redis://h:1/0?a=b']);
  assert.deepEqual(keyed.apiKeys, [{ key: 'c2VjcmV0a2V5==', scopes: ['read'] }]);
  assert.equal(keyed.redisUrl, 'redis://h:1/0?a=b');
  assert.throws(() => loadConfig({}, ['--port']), /option --port needs a value/);
  await assert.rejects(startAsof(loadConfig({ HOST: '0.0.0.0', ASOF_DATA_DIR: '/tmp/never' }), silentLogger, { listen: false }), /ASOF_API_KEYS/);
});

/** Reads server-sent events from a real socket until `want` records arrived. */
function readEvents(url: string, want: number): Promise<{ records: any[]; close: () => void }> {
  return new Promise((resolve, reject) => {
    const records: any[] = [];
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = event.split('\n').find((l) => l.startsWith('data: '));
          if (data && event.includes('event: record')) records.push(JSON.parse(data.slice(6)));
          if (records.length >= want) resolve({ records, close: () => req.destroy() });
        }
      });
    });
    req.on('error', (e) => (records.length >= want ? undefined : reject(e)));
    req.end();
  });
}

test('changelog follow over server-sent events: existing records, then live ones, no gap and no duplicate', async () => {
  const a = await testAsof({}, { listen: true });
  try {
    await a.req('PUT', '/tables/m', LOG);
    await a.req('POST', '/tables/m/rows', { rows: [{ k: 'a', ts: 1, n: 0 }, { k: 'b', ts: 2, n: 1 }] });
    const stream = readEvents(`${a.url}/tables/m/changelog?from=1`, 6);
    // Writes racing with the catch-up read.
    for (let i = 2; i < 7; i++) await a.req('POST', '/tables/m/rows', { rows: [{ k: i % 2 ? 'b' : 'a', ts: i, n: i }] });
    const { records, close } = await stream;
    close();
    assert.deepEqual(records.map((r) => r.offset), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(records.map((r) => r.row.n), [1, 2, 3, 4, 5, 6]);
    const byKey = readEvents(`${a.url}/tables/m/changelog?from=0&key=b`, 4);
    await a.req('POST', '/tables/m/rows', { rows: [{ k: 'a', ts: 9, n: 9 }, { k: 'b', ts: 10, n: 10 }] });
    const keyed = await byKey;
    keyed.close();
    assert.deepEqual(keyed.records.map((r) => r.row.n), [1, 3, 5, 10]);
  } finally {
    await a.destroy();
  }
});
