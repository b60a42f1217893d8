/**
 * The SSE changelog follow answers like every other route, although Fastify
 * does not write it (hijacked): the caller's x-request-id comes back, the
 * request is counted in asof_http_requests_total, and a failed follow ends
 * with the catalogue's error (an unexpected failure as ASOF_INTERNAL, its
 * cause in the log, not in the answer).
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

  test("a failed follow ends with the catalogue's error: its own code, or ASOF_INTERNAL without the cause", async () => {
    const t = asof.services.engine.table('t');
    let restore = failingScans(t, new AsofError('ASOF_TABLE_UNAVAILABLE', 'table "t" is damaged'));
    try {
      const text = await sse(`${asof.url}/tables/t/changelog?from=0`).ended;
      const data = JSON.parse(/event: error\ndata: (.*)\n/.exec(text)![1]);
      assert.deepEqual(data, { error: { code: 'ASOF_TABLE_UNAVAILABLE', message: 'table "t" is damaged' } });
    } finally {
      restore();
    }
    restore = failingScans(t, new Error('EIO: read /srv/secret/segment-0001.log'));
    try {
      const text = await sse(`${asof.url}/tables/t/changelog?from=0`).ended;
      const data = JSON.parse(/event: error\ndata: (.*)\n/.exec(text)![1]);
      assert.deepEqual(data, { error: { code: 'ASOF_INTERNAL', message: 'internal error' } });
    } finally {
      restore();
    }
  });
});
