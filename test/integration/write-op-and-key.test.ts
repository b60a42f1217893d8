/**
 * A write's `op` and Idempotency-Key are each said once: `?op=` and a body's
 * `op` that disagree are a 400 (the query won before, so a delete sent with
 * `?op=upsert` blanked the rows it named), and an Idempotency-Key header
 * sent twice is a 400 (Node joined the two into one key, "a, b").
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { testAsof, type TestAsof } from '../helpers.js';
import { OFF_THREAD_MIN_BYTES } from '../../src/ingest/ingest.js';

const KV = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'v', type: 'string' }] };

/** A POST with headers given as raw name/value pairs, so one may be sent twice. */
function post(port: number, path: string, body: string, headers: [string, string][]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    // Given as a list, headers are sent as they are: Host too must be (Node's server refuses a request without one).
    const raw = [['host', `127.0.0.1:${port}`], ['content-type', 'application/json'], ...headers].flat();
    const req = request({ port, host: '127.0.0.1', method: 'POST', path, headers: raw }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('one op and one Idempotency-Key per write', () => {
  let asof: TestAsof;
  let port: number;
  before(async () => {
    asof = await testAsof({ ingestThreads: 1 }, { listen: true });
    port = (asof.http.server.address() as AddressInfo).port;
    assert.equal((await asof.req('PUT', '/tables/kv', KV)).status, 201);
    assert.equal((await asof.req('POST', '/tables/kv/rows', { rows: [{ id: 1, v: 'keep' }, { id: 2, v: 'two' }] })).status, 200);
  });
  after(() => asof.destroy());

  const latest = async () => (await asof.req('GET', '/tables/kv')).body.latestOffset as number;

  test('?op= and a body op that disagree are a 400 naming op, and write nothing', async () => {
    const before = await latest();
    for (const [query, op] of [['upsert', 'delete'], ['delete', 'upsert']]) {
      const r = await asof.req('POST', `/tables/kv/rows?op=${query}`, { op, rows: [{ id: 1 }] });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.deepEqual(r.body.error.details.map((d: any) => d.field), ['op']);
    }
    assert.equal(await latest(), before, 'nothing was written');
    assert.deepEqual((await asof.req('GET', '/tables/kv/rows/1')).body.row, { id: 1, v: 'keep' });
    // Agreeing, or said once, the op is taken.
    assert.equal((await asof.req('POST', '/tables/kv/rows?op=delete', { op: 'delete', rows: [{ id: 2 }] })).status, 200);
    assert.equal((await asof.req('GET', '/tables/kv/rows/2')).status, 404);
    assert.equal((await asof.req('POST', '/tables/kv/rows', { op: 'upsert', rows: [{ id: 2, v: 'back' }] })).status, 200);
    assert.equal((await asof.req('POST', '/tables/kv/rows?op=delete', { rows: [{ id: 2 }] })).status, 200);
    assert.equal((await asof.req('GET', '/tables/kv/rows/2')).status, 404);
    // A large body is parsed on an ingest thread: its op is checked the same way.
    const big = Array.from({ length: 2000 }, (_, i) => ({ id: 1000 + i, v: 'x'.repeat(20) }));
    assert.ok(JSON.stringify(big).length > OFF_THREAD_MIN_BYTES);
    const r = await asof.req('POST', '/tables/kv/rows?op=delete', { op: 'upsert', rows: big });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(r.body.error.details.map((d: any) => d.field), ['op']);
    assert.equal((await asof.req('POST', '/tables/kv/rows', { op: 'upsert', rows: big })).status, 200);
    assert.equal((await asof.req('POST', '/tables/kv/rows?op=upsert', { op: 'upsert', rows: big })).status, 200);
  });

  test('an Idempotency-Key sent twice is a 400 and writes nothing; one key holding a comma is one key', async () => {
    const before = await latest();
    const body = JSON.stringify({ rows: [{ id: 3, v: 'three' }] });
    const twice = await post(port, '/tables/kv/rows', body, [['idempotency-key', 'a'], ['Idempotency-Key', 'b']]);
    assert.equal(twice.status, 400, JSON.stringify(twice.body));
    assert.deepEqual(twice.body.error.details.map((d: any) => d.field), ['Idempotency-Key']);
    assert.equal(await latest(), before, 'nothing was written');
    const once = await post(port, '/tables/kv/rows', body, [['idempotency-key', 'a, b']]);
    assert.equal(once.status, 200, JSON.stringify(once.body));
    const again = await post(port, '/tables/kv/rows', body, [['idempotency-key', 'a, b']]);
    assert.deepEqual(again.body, once.body, 'the retry answers the first answer');
    assert.equal(await latest(), before + 1);
  });
});
