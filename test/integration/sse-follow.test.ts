/**
 * The SSE changelog follow answers like every other route, although Fastify
 * does not write it (hijacked): the caller's x-request-id comes back, the
 * request is counted in asof_http_requests_total, and a failed follow ends
 * with the catalogue's error (an unexpected failure as ASOF_INTERNAL, its
 * cause in the log, not in the answer). An EventSource that reconnects with
 * `Last-Event-ID` resumes after that record.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { testAsof, type TestAsof } from '../helpers.js';
import { AsofError } from '../../src/errors.js';
import type { Table } from '../../src/engine/table.js';

/** An SSE follow on a real socket: the head, and the text received until the server ends the stream (or `close`). */
function sse(url: string, headers: Record<string, string> = {}) {
  const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } });
  req.on('error', () => {});
  let text = '';
  const head = new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
  const ended = head.then((res) => new Promise<string>((resolve) => res.on('data', (d) => (text += d)).on('end', () => resolve(text)).on('close', () => resolve(text))));
  return { head, ended, text: () => text, close: () => req.destroy() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `id:` of each event received so far. */
const ids = (text: string): number[] => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));

/** Waits until the stream has received the event with `id: offset` (a bound on waiting, not a speed target). */
async function untilId(f: ReturnType<typeof sse>, offset: number): Promise<number[]> {
  for (let i = 0; i < 500 && !ids(f.text()).includes(offset); i++) await sleep(10);
  return ids(f.text());
}

/** Makes the table's reads fail with `err` (until restored). */
function failingScans(t: Table, err: Error): () => void {
  const scan = t.scan;
  t.scan = async function* () {
    throw err;
  };
  return () => void (t.scan = scan);
}

describe('SSE changelog follow', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof({}, { listen: true });
    assert.equal((await asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }] })).status, 201);
    assert.equal((await asof.req('POST', '/tables/t/rows', { rows: [{ id: 'a' }] })).status, 200);
  });
  after(() => asof.destroy());

  test("carries the caller's x-request-id, and is counted in asof_http_requests_total once it ends", async () => {
    const f = sse(`${asof.url}/tables/t/changelog?from=0`, { 'x-request-id': 'my-sse-id' });
    const res = await f.head;
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-request-id'], 'my-sse-id');
    f.close();
    const line = 'asof_http_requests_total{route="/tables/:table/changelog",method="GET",status="200"} 1';
    let metrics = '';
    for (let i = 0; i < 100 && !metrics.includes(line); i++) {
      await sleep(10);
      metrics = (await asof.req('GET', '/metrics')).body as string;
    }
    assert.ok(metrics.includes(line), metrics.split('\n').filter((l) => l.startsWith('asof_http_requests_total')).join('\n'));
  });

  test('Last-Event-ID resumes after that offset, whatever from says; empty is no header; one that is not an offset is a 400', async (t) => {
    const def = { kind: 'log', eventTime: 'at', columns: [{ name: 'at', type: 'timestamp', nullable: false }] };
    assert.equal((await asof.req('PUT', '/tables/p', def)).status, 201);
    assert.equal((await asof.req('POST', '/tables/p/rows', { rows: [{ at: 1 }, { at: 2 }, { at: 3 }] })).status, 200);

    // A reconnect after id 1 (the first URL said from=0): 2, then what is committed next, and not 0 or 1 again.
    const resumed = sse(`${asof.url}/tables/p/changelog?from=0`, { 'last-event-id': '1' });
    t.after(resumed.close);
    assert.equal((await resumed.head).statusCode, 200);
    assert.deepEqual(await untilId(resumed, 2), [2]);
    assert.equal((await asof.req('POST', '/tables/p/rows', { rows: [{ at: 4 }] })).status, 200);
    assert.deepEqual(await untilId(resumed, 3), [2, 3]);
    resumed.close();

    const fresh = sse(`${asof.url}/tables/p/changelog?from=2`, { 'last-event-id': '' });
    t.after(fresh.close);
    assert.deepEqual(await untilId(fresh, 3), [2, 3]);
    fresh.close();

    for (const bad of ['x', '-1', '1.5', '99999999999999999']) {
      const f = sse(`${asof.url}/tables/p/changelog?from=0`, { 'last-event-id': bad });
      const res = await f.head;
      assert.equal(res.statusCode, 400, bad);
      const body = JSON.parse(await f.ended);
      assert.equal(body.error.code, 'ASOF_INVALID_ARGUMENT', bad);
      assert.equal(body.error.details[0].field, 'headers.last-event-id', bad);
    }
  });

  test("a failed follow ends with the catalogue's error: its own code, or ASOF_INTERNAL without the cause", async () => {
    const t = asof.services.engine.table('t');
    let restore = failingScans(t, new AsofError('ASOF_TABLE_UNAVAILABLE', 'table "t" is damaged'));
    try {
      const text = await sse(`${asof.url}/tables/t/changelog?from=0`).ended;
      const data = JSON.parse(/event: error\ndata: (.*)\n/.exec(text)![1]);
      assert.deepEqual(data, { error: { code: 'ASOF_TABLE_UNAVAILABLE', message: 'table "t" is damaged', details: {} } });
    } finally {
      restore();
    }
    restore = failingScans(t, new Error('EIO: read /srv/secret/segment-0001.log'));
    try {
      const text = await sse(`${asof.url}/tables/t/changelog?from=0`).ended;
      const data = JSON.parse(/event: error\ndata: (.*)\n/.exec(text)![1]);
      assert.deepEqual(data, { error: { code: 'ASOF_INTERNAL', message: 'internal error', details: {} } });
    } finally {
      restore();
    }
  });
});
