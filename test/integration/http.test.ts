import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { countScans, heapAfterGc, ok, recordWaiters, testAsof } from '../helpers.js';
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

interface EventFollower {
  /** The records received so far (the `data` of each `record` event), in arrival order. */
  records: any[];
  /** Resolves once the response's headers arrived: the server follows from then on. */
  connected: Promise<void>;
  /** Resolves once `n` records arrived (rejects if the connection fails first). */
  until(n: number, timeoutMs?: number): Promise<any[]>;
  /** Stops taking data off the socket (the server's writes then back up), and takes it again. */
  pause(): void;
  resume(): void;
  close(): void;
}

/** Follows a changelog over server-sent events on a real socket; with `paused`, nothing is read until `resume`. */
function followEvents(url: string, opts: { paused?: boolean } = {}): EventFollower {
  const records: any[] = [];
  const waiting = recordWaiters(records);
  let paused = opts.paused ?? false;
  let response: IncomingMessage | undefined;
  let connect!: () => void;
  const connected = new Promise<void>((resolve) => (connect = resolve));
  const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
    assert.equal(res.headers['content-type'], 'text/event-stream');
    response = res;
    // Paused before 'data' is listened to: the response stays paused, and the socket stops being read once its buffer is full.
    if (paused) res.pause();
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
      }
      waiting.arrived();
    });
    connect();
  });
  req.on('error', (e) => waiting.failed(e));
  req.end();
  return {
    records,
    connected,
    until: waiting.until,
    pause: () => ((paused = true), response?.pause()),
    resume: () => ((paused = false), response?.resume()),
    close: () => req.destroy(),
  };
}

/** Reads server-sent events from a real socket until `want` records arrived. */
async function readEvents(url: string, want: number): Promise<{ records: any[]; close: () => void }> {
  const f = followEvents(url);
  await f.until(want);
  return { records: f.records, close: f.close };
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

/** A log table of wide records (`s` pads each to about 600 bytes of JSON) with no key columns: the engine keeps almost nothing per record. */
const WIDE = { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'n', type: 'int32' }, { name: 's', type: 'string' }] };
const PAD = 'x'.repeat(500);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes records n = from..from+count-1 to `table`, `batch` per request. */
async function writeWide(a: { req: (m: string, u: string, b?: unknown) => Promise<any> }, table: string, from: number, count: number, batch = 10_000): Promise<void> {
  for (let b = from; b < from + count; b += batch) {
    const n = Math.min(batch, from + count - b);
    await ok(a.req('POST', `/tables/${table}/rows`, { rows: Array.from({ length: n }, (_, i) => ({ ts: b + i, n: b + i, s: PAD })) }));
  }
}

/** The first place `records` is not offsets from, from+1, ... (with n = offset), or undefined. */
function firstGap(records: any[], from: number, count: number): string | undefined {
  if (records.length !== count) return `${records.length} records, not ${count}`;
  const i = records.findIndex((r, i) => r.offset !== from + i || r.row.n !== from + i);
  return i < 0 ? undefined : `record ${i} has offset ${records[i].offset} (n ${records[i].row.n}), not ${from + i}`;
}

test('a follower that stops reading holds no records on the server; reading again, it gets every record once, in order', async () => {
  const a = await testAsof({}, { listen: true });
  try {
    await a.req('PUT', '/tables/wide', WIDE);
    const total = 100_000;
    // 10,000 to catch up on; the other 90,000 committed while the follower is behind (catching up, then not reading).
    await writeWide(a, 'wide', 0, 10_000);
    const before = heapAfterGc();
    const f = followEvents(`${a.url}/tables/wide/changelog?from=0`, { paused: true });
    await f.connected;
    await writeWide(a, 'wide', 10_000, total - 10_000);
    await sleep(200);
    const grown = heapAfterGc() - before;
    // The records are about 60 MB of events; a follower that held them (in its socket's buffer or its own) grew the heap by more than that.
    assert.ok(grown < 12 << 20, `the server's heap grew by ${(grown / 2 ** 20).toFixed(1)} MB for a follower that reads nothing`);
    f.resume();
    // Commits keep coming while it reads again: it goes from reading back to live, and back whenever its socket is full.
    await writeWide(a, 'wide', total, 10_000, 500);
    await f.until(total + 10_000, 60_000);
    await sleep(100);
    f.close();
    assert.equal(firstGap(f.records, 0, total + 10_000), undefined);
  } finally {
    await a.destroy();
  }
});

test('a follower that goes away mid catch-up stops the read: nothing more is read for it', async () => {
  const a = await testAsof({}, { listen: true });
  try {
    await a.req('PUT', '/tables/wide', WIDE);
    const total = 50_000;
    await writeWide(a, 'wide', 0, total);
    const scans = countScans(a.services.engine.table('wide'));
    const f = followEvents(`${a.url}/tables/wide/changelog?from=0`, { paused: true });
    await f.connected;
    // The server fills the socket's buffers, then waits for the client.
    await sleep(300);
    f.close();
    await sleep(200);
    const atClose = scans.read();
    await sleep(300);
    assert.ok(scans.ended(), 'the catch-up scan was ended');
    assert.equal(scans.read(), atClose, 'no record read after the client went away');
    // What the socket's buffers hold (a few MB at most), not the 30 MB changelog.
    assert.ok(atClose < total / 2, `${atClose} of ${total} records read for a client that took none`);
  } finally {
    await a.destroy();
  }
});
