/**
 * Idempotency keys survive restarts: they are written in the frame that holds
 * the records they answered (engine/idempotency.ts). A real asof process is
 * killed with SIGKILL (and later stopped cleanly, so the keys come back from
 * the snapshot too); retries with the same keys, over REST and gRPC, return
 * the first answers and write nothing. A key in a torn (never acknowledged)
 * frame goes with it, so its retry writes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { killAll, startChild, type ChildServer } from '../child-server.js';
import { asofError, clientsFor, stream } from './grpc-helpers.js';
import { tempDir, testAsof } from '../helpers.js';

after(killAll);

const ACCOUNTS = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'name', type: 'string' }] };
const EVENTS = { kind: 'log', eventTime: 'ts', columns: [{ name: 'user', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] };

async function call(child: ChildServer, method: string, path: string, body?: unknown, key?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (key) headers['idempotency-key'] = key;
  const res = await fetch(child.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

async function changelog(child: ChildServer, table: string): Promise<unknown[]> {
  const r = await call(child, 'GET', `/tables/${table}/changelog?limit=10000`);
  assert.equal(r.status, 200);
  return r.body.records;
}

const grpcRow = (id: number, name: string) => ({ columns: { id: { int64_value: id }, name: { string_value: name } } });

test('after kill -9, and after a clean restart, a retry with the same Idempotency-Key returns the first answer and writes nothing (REST and gRPC)', async () => {
  const dir = await tempDir();
  let child = await startChild(dir.path);
  try {
    await child.ready();
    assert.equal((await call(child, 'PUT', '/tables/accounts', ACCOUNTS)).status, 201);
    assert.equal((await call(child, 'PUT', '/tables/events', EVENTS)).status, 201);
    await call(child, 'POST', '/tables/accounts/rows', { rows: [{ id: 1, name: 'before' }] });

    // The first answers: an append, an update (two records), a delete of an absent key (no record), and a gRPC message.
    const requests: [string, string, unknown][] = [
      ['rest-events', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }, { user: 2, ts: 2 }, { user: 3, ts: 3 }] }],
      ['rest-update', '/tables/accounts/rows', { rows: [{ id: 1, name: 'after' }] }],
      ['rest-delete', '/tables/accounts/rows', { rows: [{ id: 7 }], op: 'delete' }],
    ];
    const first: Record<string, any> = {};
    for (const [key, path, body] of requests) {
      const r = await call(child, 'POST', path, body, key);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      first[key] = r.body;
    }
    assert.equal(first['rest-update'].count, 2);
    assert.deepEqual([first['rest-delete'].count, first['rest-delete'].firstOffset], [0, null]);
    const grpcMsg = { table: 'accounts', rows: [grpcRow(2, 'grpc')], idempotency_key: 'grpc-1' };
    const g = await stream(clientsFor(`127.0.0.1:${child.grpcPort}`).ingest, 'WriteRows', [grpcMsg]);
    assert.ok(g.res, String(g.err));
    // Key 7 now exists: a delete retried as a new request would remove it.
    await call(child, 'POST', '/tables/accounts/rows', { rows: [{ id: 7, name: 'seven' }] });
    const logs = { accounts: await changelog(child, 'accounts'), events: await changelog(child, 'events') };

    for (const how of ['SIGKILL', 'SIGTERM'] as const) {
      await child.kill(how);
      child = await startChild(dir.path);
      await child.ready();
      for (const [key, path, body] of requests) {
        const r = await call(child, 'POST', path, body, key);
        assert.equal(r.status, 200, `${how} ${key}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(r.body, first[key], `after ${how}, ${key} answers as the first time`);
      }
      const again = await stream(clientsFor(`127.0.0.1:${child.grpcPort}`).ingest, 'WriteRows', [grpcMsg]);
      assert.deepEqual(again.res, g.res, `after ${how}, the gRPC message answers as the first time`);
      assert.deepEqual({ accounts: await changelog(child, 'accounts'), events: await changelog(child, 'events') }, logs, `after ${how}, the retries wrote nothing`);
      assert.equal((await call(child, 'GET', '/tables/accounts/rows/7')).body.row.name, 'seven');

      const other = await call(child, 'POST', '/tables/events/rows', { rows: [{ user: 9, ts: 9 }] }, 'rest-events');
      assert.equal(other.status, 409, 'the same key with another body');
      assert.equal(other.body.error.code, 'ASOF_CONFLICT');
      const elsewhere = await call(child, 'POST', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }] }, 'grpc-1');
      assert.equal(elsewhere.status, 409, 'a key is one name across tables');
      const otherGrpc = await stream(clientsFor(`127.0.0.1:${child.grpcPort}`).ingest, 'WriteRows', [{ ...grpcMsg, rows: [grpcRow(2, 'changed')] }]);
      assert.equal(asofError(otherGrpc.err!).code, 'ASOF_CONFLICT');
    }
  } finally {
    await child.kill();
    await dir.cleanup();
  }
});

test('a key in a torn frame (never acknowledged) is cut with it: the retry writes; keys past their lifetime are forgotten', async () => {
  const dir = await tempDir();
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const now = () => clock;
  let asof = await testAsof({}, { dataDir: dir.path, now });
  try {
    await asof.req('PUT', '/tables/events', EVENTS);
    const old = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }] }, { 'idempotency-key': 'old' });
    clock += 23 * 3600_000;
    const torn = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 2, ts: 2 }] }, { 'idempotency-key': 'torn' });
    assert.deepEqual([old.body.firstOffset, torn.body.firstOffset], [0, 1]);
    await asof.close();
    // As if the last frame had never reached the disk whole: cut its last byte, and let the start-up not use the snapshot.
    const path = join(dir.path, 'tables', 'events', 'changelog-00000000000000000000.log');
    const buf = await readFile(path);
    await rm(join(dir.path, 'tables', 'events', 'state.snapshot'));
    await rm(path);
    await appendFile(path, buf.subarray(0, buf.length - 1));
    asof = await testAsof({}, { dataDir: dir.path, now });
    const retry = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 2, ts: 2 }] }, { 'idempotency-key': 'torn' });
    assert.equal(retry.status, 200);
    assert.equal(retry.body.firstOffset, 1, 'written again, at the offset the torn frame had');
    const same = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }] }, { 'idempotency-key': 'old' });
    assert.deepEqual(same.body, old.body, 'within its lifetime (24 h) the key still answers');
    clock += 1 * 3600_000 + 1;
    const expired = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }] }, { 'idempotency-key': 'old' });
    assert.equal(expired.body.firstOffset, 2, 'past 24 h the key is forgotten and the request writes');
    const long = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }] }, { 'idempotency-key': 'k'.repeat(257) });
    assert.equal(long.status, 400);
    assert.equal(long.body.error.details[0].field, 'Idempotency-Key');
  } finally {
    await asof.close();
    await dir.cleanup();
  }
});

test('a keyed request that writes no record leaves a frame of none for its key, outside the hash chain: the chain verifies from every offset', async () => {
  const asof = await testAsof();
  try {
    await asof.req('PUT', '/tables/accounts', ACCOUNTS);
    await asof.req('POST', '/tables/accounts/rows', { rows: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }] });
    const none = await asof.req('POST', '/tables/accounts/rows', { rows: [{ id: 9 }], op: 'delete' }, { 'idempotency-key': 'nothing' });
    assert.deepEqual([none.body.count, none.body.token], [0, { accounts: 1 }]);
    await asof.req('POST', '/tables/accounts/rows', { rows: [{ id: 3, name: 'c' }] });
    for (const from of [0, 1, 2]) {
      const v = await asof.req('GET', `/audit/verify?table=accounts&from=${from}`);
      assert.equal(v.status, 200, JSON.stringify(v.body));
      assert.equal(v.body.ok, true, `verified from offset ${from}: ${JSON.stringify(v.body)}`);
      assert.equal(v.body.head.offset, 2);
    }
    assert.deepEqual((await asof.req('POST', '/tables/accounts/rows', { rows: [{ id: 9 }], op: 'delete' }, { 'idempotency-key': 'nothing' })).body, none.body);
  } finally {
    await asof.destroy();
  }
});
