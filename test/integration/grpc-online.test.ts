import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { grpcAsof, call, stream, asofError, defineFixture, ROW_EDGES, TYPED_FEATURES, type GrpcAsof } from './grpc-helpers.js';
import { asofJson, asofPlain } from './wire-values.js';

describe('asof.v1.OnlineService over gRPC', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof();
    await defineFixture(asof);
  });
  after(() => asof.destroy());

  test('every column type comes back in its typed Value field', async () => {
    const { res, err } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], view: 'typed' });
    assert.equal(err, undefined);
    assert.deepEqual(
      res.features.map((f: any) => [f.ref, f.type]),
      [
        ['typed:b', 'bool'], ['typed:i32', 'int32'], ['typed:i64', 'int64'], ['typed:f32', 'float32'], ['typed:f64', 'float64'],
        ['typed:s', 'string'], ['typed:ts', 'timestamp'], ['typed:j', 'json'], ['typed:lb', 'list<bool>'], ['typed:li32', 'list<int32>'],
        ['typed:li64', 'list<int64>'], ['typed:lf32', 'list<float32>'], ['typed:lf64', 'list<float64>'], ['typed:ls', 'list<string>'],
        ['typed:lts', 'list<timestamp>'], ['typed:lst', 'list<struct<a:int32>>'], ['typed:lj', 'list<json>'],
        ['typed:st', 'struct<name:string,n:int64>'], ['typed:v', 'vector<3>'],
      ],
    );
    const got = Object.fromEntries(res.results[0].features.map((f: any, i: number) => [TYPED_FEATURES[i], asofPlain(f.value)]));
    assert.deepEqual(got, {
      b: { bool_value: true },
      i32: { int32_value: -7 },
      i64: { int64_value: '9007199254740993' },
      f32: { float_value: 0.5 },
      f64: { double_value: 2.25 },
      s: { string_value: 'x' },
      ts: { timestamp_value: Date.UTC(2024, 4, 1, 10, 0, 0, 250) },
      j: { json_value: '{"k":[1,"v"]}' },
      lb: { list_value: [{ bool_value: true }, { bool_value: false }] },
      li32: { list_value: [{ int32_value: 1 }, { int32_value: -2 }] },
      li64: { list_value: [{ int64_value: '3' }, { int64_value: '-4' }] },
      lf32: { list_value: [{ float_value: 0.25 }, { null_value: 'NULL_VALUE' }] },
      lf64: { list_value: [{ double_value: 1.5 }, { double_value: -0.5 }] },
      ls: { list_value: [{ string_value: 'p' }, { string_value: 'q' }] },
      lts: { list_value: [{ timestamp_value: 1000 }, { timestamp_value: 2000 }] },
      lst: { list_value: [{ struct_value: { a: { int32_value: 1 } } }, { struct_value: { a: { int32_value: 2 } } }] },
      lj: { list_value: [{ json_value: '{"x":1}' }, { json_value: '"y"' }] },
      st: { struct_value: { name: { string_value: 'n' }, n: { int64_value: '5' } } },
      v: { vector_value: [0.5, 1, -1.5] },
    });
    assert.ok(res.results[0].features.every((f: any) => f.status === 'PRESENT'));
    assert.deepEqual(res.results[0].entity, { string_value: 'a', kind: 'string_value' });
    assert.deepEqual(res.results[0].token, { typed: '1' }, 'the token is the offset of the last record the values reflect');
  });

  test('every feature status: PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE', async () => {
    const t = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'n' }, { string_value: 'zz' }], features: { refs: ['typed:s', 'typed:ts'] } });
    const [n, zz] = t.res.results;
    assert.deepEqual(n.features.map((f: any) => [f.status, f.value.kind]), [['NULL_VALUE', 'null_value'], ['NULL_VALUE', 'null_value']]);
    assert.ok(n.features[0].event_time, 'a NULL_VALUE of a known row still has the row\'s event time');
    assert.deepEqual(zz.features.map((f: any) => [f.status, f.value.kind, f.event_time]), [['NOT_FOUND', 'null_value', undefined], ['NOT_FOUND', 'null_value', undefined]]);

    const r = await call(asof.online, 'GetOnlineFeatures', { entities: [{ int64_value: '1' }, { string_value: '2' }], view: 'recent' });
    assert.equal(r.err, undefined, r.err?.details);
    const [u1, u2] = r.res.results;
    assert.deepEqual(u1.features.map((f: any) => [f.status, asofPlain(f.value)]), [['PRESENT', { double_value: 3 }], ['PRESENT', { int64_value: '1' }]]);
    assert.equal(u2.features[0].status, 'OUTSIDE_MAX_AGE');
    assert.equal(u2.features[0].value.kind, 'null_value');
    assert.deepEqual([u2.features[1].status, asofPlain(u2.features[1].value)], ['PRESENT', { int64_value: '0' }], 'a count over an empty window is 0');
  });

  test('every value, status and event time equals the REST answer for the same entities', async () => {
    const w = await asof.req('POST', '/tables/typed/rows', { rows: [ROW_EDGES] });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    // The last case is a large answer: the writer's buffer grows on the way.
    const many = Array.from({ length: 1500 }, (_, i) => ['a', 'n', 'zz', 'edges'][i % 4]);
    for (const [view, entities] of [
      ['typed', ['a', 'n', 'zz', 'edges']],
      ['recent', [1, 2, 3]],
      ['typed', many],
    ] as const) {
      const rest = await asof.req('POST', '/features', { entities, view });
      assert.equal(rest.status, 200, JSON.stringify(rest.body));
      const pb = entities.map((e) => (typeof e === 'string' ? { string_value: e } : { int64_value: String(e) }));
      const { res, err } = await call(asof.online, 'GetOnlineFeatures', { entities: pb, view });
      assert.equal(err, undefined, err?.details);
      assert.equal(res.results.length, entities.length);
      res.results.forEach((r: any, i: number) => {
        const expected = rest.body.results[i];
        assert.deepEqual(r.entity, { ...pb[i], kind: Object.keys(pb[i])[0] }, 'the entity as sent');
        res.features.forEach((f: any, k: number) => {
          const got = r.features[k];
          const at = `${f.ref} of ${entities[i]}`;
          assert.deepEqual(asofJson(got.value), expected.features[f.ref], at);
          assert.equal(got.status, expected.statuses[f.ref], at);
          // To the millisecond: the Timestamp's nanos carry the milliseconds REST writes.
          assert.equal(got.event_time ? new Date(Number(got.event_time.seconds) * 1000 + got.event_time.nanos / 1e6).toISOString() : null, expected.eventTimes[f.ref], at);
        });
        assert.deepEqual(Object.fromEntries(Object.entries(r.token).map(([t, o]) => [t, Number(o)])), expected.token);
      });
    }
    // The edge row itself, as the wire carries it: int64 at its limits, float32 as stored, a time before the epoch.
    const { res } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'edges' }], features: { refs: ['typed:i64', 'typed:li64', 'typed:st', 'typed:f32', 'typed:ts'] } });
    assert.deepEqual(
      res.results[0].features.map((f: any) => asofPlain(f.value)),
      [
        { int64_value: '-9223372036854775808' },
        { list_value: [{ int64_value: '9223372036854775807' }, { int64_value: '-1' }, { int64_value: '9007199254740993' }] },
        { struct_value: { name: { null_value: 'NULL_VALUE' }, n: { int64_value: '9007199254740993' } } },
        { float_value: Math.fround(0.1) },
        { timestamp_value: -1 },
      ],
    );
  });

  test('a store that answers only asynchronously (Redis) gives the same answer; pk views never read it', async () => {
    // "typed" is over a pk table: with the embedded store it is read from the table's state, not the store.
    // "recent" is over a log table: its states live in the store.
    const requests = [
      { entities: [{ string_value: 'a' }, { string_value: 'zz' }], view: 'typed' },
      { entities: [{ int64_value: '1' }, { int64_value: '2' }, { int64_value: '3' }], view: 'recent' },
    ];
    const sync = await Promise.all(requests.map((r) => call(asof.online, 'GetOnlineFeatures', r)));
    const store = asof.services.onlineStore;
    const { readEncoded, readEncodedSync } = store;
    const reads: string[] = [];
    store.readEncodedSync = undefined;
    store.readEncoded = async (ns, keys) => {
      reads.push(ns);
      return readEncodedSync!.call(store, ns, keys);
    };
    try {
      for (const [i, request] of requests.entries()) {
        const async = await call(asof.online, 'GetOnlineFeatures', request);
        assert.equal(async.err, undefined, async.err?.details);
        assert.deepEqual(async.res, sync[i].res);
      }
      assert.deepEqual(reads.map((ns) => ns.split('@')[0]), ['recent']);
      assert.equal(sync[1].res.results[0].features[0].status, 'PRESENT');
    } finally {
      store.readEncodedSync = readEncodedSync;
      store.readEncoded = readEncoded;
    }
  });

  test('a feature service answers its features in its order; entities in request order', async () => {
    const { res } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ int64_value: '2' }, { int64_value: '1' }], features: { refs: ['recent:amount', 'recent:n'] } });
    assert.deepEqual(res.results.map((r: any) => r.entity.int64_value), ['2', '1']);
    const svc = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], service: 'scoring' });
    // "scoring" mixes views keyed by different columns; asof.v1 takes one key per entity, so the user view must reject "a".
    assert.equal(svc.err?.code, 3);
    assert.match(svc.err!.details, /entity 0 .*"a".* is not a valid user/);
  });

  test('unknown names and bad input map to the catalogue status', async () => {
    const unknownFeature = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], features: { refs: ['typed:nope'] } });
    assert.equal(unknownFeature.err?.code, 5, 'unknown feature of a known view: NOT_FOUND');
    assert.equal(asofError(unknownFeature.err!).code, 'ASOF_NOT_FOUND');
    const unknownView = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], features: { refs: ['nope:x'] } });
    assert.equal(unknownView.err?.code, 5, 'unknown view: NOT_FOUND');
    assert.equal(asofError(unknownView.err!).code, 'ASOF_FEATURE_VIEW_NOT_FOUND');
    const unknownService = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], service: 'nope' });
    assert.equal(unknownService.err?.code, 5);
    assert.equal(asofError(unknownService.err!).code, 'ASOF_FEATURE_SERVICE_NOT_FOUND');
    const noSelection = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }] });
    assert.equal(noSelection.err?.code, 3);
    const badRef = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], features: { refs: ['no-colon'] } });
    assert.equal(badRef.err?.code, 3);
    const badEntity = await call(asof.online, 'GetOnlineFeatures', { entities: [{ int64_value: '1' }, { string_value: 'x1' }], view: 'recent' });
    assert.equal(badEntity.err?.code, 3);
    const e = asofError(badEntity.err!);
    assert.equal(e.code, 'ASOF_INVALID_ARGUMENT');
    assert.deepEqual([e.details[0].row, e.details[0].field], [1, 'entity']);
  });

  test('a row written over gRPC ingest is visible to the next read', async () => {
    const w = await stream(asof.ingest, 'WriteRows', [{ table: 'typed', rows: [{ columns: { id: { string_value: 'new' }, s: { string_value: 'fresh' } } }] }]);
    assert.equal(w.err, undefined, w.err?.details);
    const { res } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'new' }], features: { refs: ['typed:s'] } });
    assert.deepEqual(asofPlain(res.results[0].features[0].value), { string_value: 'fresh' });
    assert.equal(res.results[0].token.typed, w.res.token.typed, 'the read reflects the write\'s token');
  });
});
