/**
 * Bodies and values that say nothing are refused, not read as "nothing":
 * an Arrow body that is not one Arrow IPC stream (or is empty, or has bytes
 * after the stream's end) is a 400, and uses up no Idempotency-Key; an asof.v1.Value or google.protobuf.Value with
 * no kind set is INVALID_ARGUMENT, not null. Feast's Value keeps Feast's
 * reading (no val set is None).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import { asofError, call, stream, grpcAsof, type GrpcAsof } from './grpc-helpers.js';
import { ok } from '../helpers.js';

const ARROW = { 'content-type': 'application/vnd.apache.arrow.stream' };

const DOCS = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'lang', type: 'string' },
    { name: 'tags', type: 'list<string>' },
    { name: 'emb', type: 'vector<2>' },
  ],
};

const ipc = (ids: string[]): Buffer => Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray(ids, new A.Utf8()) }), 'stream'));

describe('refusing bodies and values that carry nothing', () => {
  let asof: GrpcAsof;
  const end = async () => (await asof.req('GET', '/tables/docs')).body.latestOffset + 1;

  before(async () => {
    asof = await grpcAsof({ vectorFlushMs: 3_600_000 });
    await ok(asof.req('PUT', '/tables/docs', DOCS), 201);
    await ok(asof.req('POST', '/tables/docs/rows', { rows: [{ id: 'en', lang: 'en', emb: [1, 0] }, { id: 'none', lang: null, emb: [1, 0.1] }] }));
  });
  after(() => asof.destroy());

  test('REST: a body that is not an Arrow IPC stream, or an empty one, is a 400 naming the body; its Idempotency-Key stays unused', async () => {
    const before = await end();
    for (const [what, body] of [
      ['garbage', Buffer.from('garbage')],
      ['empty', Buffer.alloc(0)],
      ['an end-of-stream marker only', Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])],
    ] as const) {
      const r = await asof.req('POST', '/tables/docs/rows', body, { ...ARROW, 'idempotency-key': 'ik-1' });
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT', what);
      assert.equal(r.body.error.details[0].field, 'body', what);
      assert.match(r.body.error.message, what === 'empty' ? /the body is empty/ : /not an Arrow IPC stream: it does not begin with a schema message/, what);
    }
    // Bytes after a stream's end: Arrow's reader stopped there, and a second stream's rows were dropped without a word.
    for (const [what, body] of [
      ['two streams', Buffer.concat([ipc(['t1']), ipc(['t2', 't3'])])],
      ['trailing bytes', Buffer.concat([ipc(['t1']), Buffer.from('garbage!')])],
    ] as const) {
      const r = await asof.req('POST', '/tables/docs/rows', body, { ...ARROW, 'idempotency-key': 'ik-1' });
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.details[0].field, 'body', what);
      assert.match(r.body.error.message, /bytes follow the end of the Arrow IPC stream/, what);
    }
    assert.equal(await end(), before, 'nothing was written');
    // The key was not taken by the refused requests: the real write with it is answered, not 409.
    const real = await asof.req('POST', '/tables/docs/rows', ipc(['a1']), { ...ARROW, 'idempotency-key': 'ik-1' });
    assert.equal(real.status, 200, JSON.stringify(real.body));
    assert.equal(real.body.count, 1);
    // A stream with a schema and no batches is a real, empty write.
    const empty = await asof.req('POST', '/tables/docs/rows', Buffer.from(A.tableToIPC(new A.Table(new A.Schema([new A.Field('id', new A.Utf8())])), 'stream')), ARROW);
    assert.equal(empty.status, 200, JSON.stringify(empty.body));
    assert.equal(empty.body.count, 0);
  });

  test('gRPC WriteRows: arrow_ipc that is not an Arrow IPC stream is INVALID_ARGUMENT; its idempotency_key stays unused', async () => {
    const before = await end();
    const bad = await stream(asof.ingest, 'WriteRows', [{ table: 'docs', arrow_ipc: Buffer.from('garbage'), idempotency_key: 'gk-1' }]);
    assert.equal(bad.err?.code, 3, JSON.stringify(bad.res));
    assert.equal(asofError(bad.err!).code, 'ASOF_INVALID_ARGUMENT');
    assert.match(bad.err!.details, /not an Arrow IPC stream/);
    assert.equal(await end(), before);
    const real = await stream(asof.ingest, 'WriteRows', [{ table: 'docs', arrow_ipc: ipc(['g1']), idempotency_key: 'gk-1' }]);
    assert.equal(real.err, undefined, real.err?.details);
    assert.equal(real.res.count, '1');
  });

  test('gRPC WriteRows: a cell or list item Value with no kind set is a bad row naming row and column; nothing is written', async () => {
    const before = await end();
    const id = (s: string) => ({ string_value: s });
    for (const [column, value] of [
      ['emb', {}],
      ['lang', {}],
      ['tags', { list_value: { values: [{ string_value: 'x' }, {}] } }],
    ] as const) {
      const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 'docs', rows: [{ columns: { id: id('ok') } }, { columns: { id: id('v'), [column]: value } }] }]);
      assert.equal(err?.code, 3, column);
      const e = asofError(err!);
      assert.equal(e.code, 'ASOF_INVALID_ROW', column);
      assert.deepEqual([e.details.details[0].row, e.details.details[0].field], [1, column]);
      assert.match(e.details.details[0].reason, /no kind set \(send a null as null_value\)/);
    }
    assert.equal(await end(), before, 'nothing was written');
    // null_value is how a null is sent.
    const nul = await stream(asof.ingest, 'WriteRows', [{ table: 'docs', rows: [{ columns: { id: id('n1'), emb: { null_value: 'NULL_VALUE' } } }] }]);
    assert.equal(nul.err, undefined, nul.err?.details);
  });

  test('gRPC Search: a filter Value with no kind set is INVALID_ARGUMENT naming it; null_value filters on null', async () => {
    const search = (lang: object) => call(asof.vectors, 'Search', { table: 'docs', vector: [1, 0], k: 5, metric: 'L2', filter: { fields: { lang } } });
    const unset = await search({});
    assert.equal(unset.err?.code, 3, JSON.stringify(unset.res));
    const e = asofError(unset.err!);
    assert.equal(e.code, 'ASOF_INVALID_ARGUMENT');
    assert.equal(e.details[0].field, 'filter.lang');
    const nested = await call(asof.vectors, 'Search', { table: 'docs', vector: [1, 0], k: 5, filter: { fields: { lang: { listValue: { values: [{ stringValue: 'en' }, {}] } } } } });
    assert.equal(nested.err?.code, 3);
    assert.equal(asofError(nested.err!).details[0].field, 'filter.lang[1]');
    // A field named __proto__ beside a real condition: before, it was dropped and the search answered unfiltered by it.
    const proto = await call(asof.vectors, 'Search', { table: 'docs', vector: [1, 0], k: 5, filter: { fields: JSON.parse('{"__proto__":{"stringValue":"x"},"lang":{"stringValue":"en"}}') } });
    assert.equal(proto.err?.code, 3, JSON.stringify(proto.res));
    assert.equal(asofError(proto.err!).details[0].field, 'filter.__proto__');
    const nul = await search({ nullValue: 'NULL_VALUE' });
    assert.equal(nul.err, undefined, nul.err?.details);
    assert.deepEqual(nul.res.results.map((h: any) => h.key), ['none']);
  });

  test('gRPC GetOnlineFeatures and Follow: an entity or key Value with no kind set is INVALID_ARGUMENT', async () => {
    await ok(asof.req('PUT', '/feature-views/dv', { source: 'docs', entity: 'id', features: [{ name: 'lang', column: 'lang' }] }), 201);
    const online = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'en' }, {}], view: 'dv' });
    assert.equal(online.err?.code, 3, JSON.stringify(online.res));
    assert.deepEqual([asofError(online.err!).details[0].row, asofError(online.err!).details[0].field], [1, 'entity']);
    assert.match(online.err!.details, /entity 1 .*no kind set/);
    const follow = asof.changelog.Follow({ table: 'docs', from_offset: '0', key: {} });
    const err = await new Promise<any>((resolve) => {
      follow.on('data', () => undefined);
      follow.on('error', resolve);
      follow.on('end', () => resolve(undefined));
    });
    assert.equal(err?.code, 3);
    assert.equal(asofError(err).details[0].field, 'key');
    assert.match(err.details, /no kind set/);
  });

  test('Feast GetOnlineFeatures: an entity Value with no val set reads as null, as Feast reads it (type_map: no val is None)', async () => {
    const ask = (v: object) => call(asof.feast, 'GetOnlineFeatures', { features: { val: ['dv:lang'] }, entities: { id: { val: [{ string_val: 'en' }, v] } } });
    const unset = await ask({});
    const nul = await ask({ null_val: 'NULL' });
    // A null entity key is no key: both are refused alike, as a null (not as a Value asof could not read).
    assert.equal(nul.err?.code, 3);
    assert.equal(unset.err?.code, 3);
    assert.equal(unset.err!.details, nul.err!.details);
    assert.match(unset.err!.details, /entity 1 \(null\)/);
  });
});
