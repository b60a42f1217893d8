import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { grpcAsof, call, asofError, defineFixture, defineKeyNamedFeatures, ROW_EDGES, TYPED_FEATURES, type GrpcAsof } from './grpc-helpers.js';
import { feastJson, feastPlain } from './wire-values.js';

const ids = (vals: unknown[]) => ({ val: vals.map((v) => (typeof v === 'string' ? { string_val: v } : { int64_val: v })) });
const tsMs = (t: any) => Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;

describe('feast.serving.ServingService over gRPC', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof();
    await defineFixture(asof);
    await asof.services.registry.defineView('typed2', { source: 'typed', entity: 'id', features: [{ name: 's', column: 's' }] });
  });
  after(() => asof.destroy());

  test('GetFeastServingInfo answers the asof version', async () => {
    const { res } = await call(asof.feast, 'GetFeastServingInfo', {});
    assert.match(res.version, /^\d+\.\d+\.\d+/);
  });

  test('values are typed from the column type, for every column type', async () => {
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: TYPED_FEATURES.map((f) => `typed:${f}`) }, entities: { id: ids(['a', 'n', 'zz']) } });
    assert.equal(err, undefined, err?.details);
    assert.deepEqual(res.metadata.feature_names.val, ['id', ...TYPED_FEATURES]);
    const col = (name: string) => res.results[res.metadata.feature_names.val.indexOf(name)];
    const a = Object.fromEntries(TYPED_FEATURES.map((f) => [f, feastPlain(col(f).values[0])]));
    assert.deepEqual(a, {
      b: { bool_val: true },
      i32: { int32_val: -7 },
      i64: { int64_val: '9007199254740993' },
      f32: { float_val: 0.5 },
      f64: { double_val: 2.25 },
      s: { string_val: 'x' },
      ts: { unix_timestamp_val: '1714557600' },
      j: { string_val: '{"k":[1,"v"]}' },
      lb: { bool_list_val: [true, false] },
      li32: { int32_list_val: [1, -2] },
      li64: { int64_list_val: ['3', '-4'] },
      lf32: { float_list_val: [0.25, NaN] },
      lf64: { double_list_val: [1.5, -0.5] },
      ls: { string_list_val: ['p', 'q'] },
      lts: { unix_timestamp_list_val: ['1', '2'] },
      lst: { map_list_val: [{ a: { int32_val: 1 } }, { a: { int32_val: 2 } }] },
      lj: { string_val: '[{"x":1},"y"]' },
      st: { map_val: { name: { string_val: 'n' }, n: { int64_val: '5' } } },
      v: { float_list_val: [0.5, 1, -1.5] },
    });
    for (const f of TYPED_FEATURES) {
      assert.deepEqual(col(f).statuses, ['PRESENT', 'NULL_VALUE', 'NOT_FOUND'], f);
      assert.deepEqual(feastPlain(col(f).values[1]), { null_val: 'NULL' }, `${f}: a null value is null_val`);
      assert.deepEqual(feastPlain(col(f).values[2]), { null_val: 'NULL' }, `${f}: a missing entity is null_val`);
      assert.equal(tsMs(col(f).event_timestamps[2]), 0, 'NOT_FOUND has the epoch as event timestamp');
    }
    // The pk table has no event-time column: a row happened when it was committed.
    const commit = (await asof.req('GET', '/tables/typed/changelog?from=0')).body.records[0].commitTime;
    assert.equal(tsMs(col('s').event_timestamps[0]), Date.parse(commit));
  });

  test('entity key columns come first, typed and PRESENT with the epoch; then features in request order', async () => {
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', {
      features: { val: ['typed:s', 'recent:amount', 'typed:b'] },
      // Map order does not decide the column order: views do, in request order.
      entities: { user: ids([1, 2]), id: ids(['a', 'n']) },
    });
    assert.equal(err, undefined, err?.details);
    assert.deepEqual(res.metadata.feature_names.val, ['id', 'user', 's', 'amount', 'b']);
    assert.deepEqual(res.results[0].values.map(feastPlain), [{ string_val: 'a' }, { string_val: 'n' }]);
    assert.deepEqual(res.results[1].values.map(feastPlain), [{ int64_val: '1' }, { int64_val: '2' }]);
    for (const c of res.results.slice(0, 2)) {
      assert.deepEqual(c.statuses, ['PRESENT', 'PRESENT']);
      assert.deepEqual(c.event_timestamps.map(tsMs), [0, 0]);
    }
    assert.deepEqual(res.results[2].values.map(feastPlain), [{ string_val: 'x' }, { null_val: 'NULL' }]);
    assert.deepEqual(res.results[3].statuses, ['PRESENT', 'OUTSIDE_MAX_AGE']);
    assert.deepEqual(res.results[3].values.map(feastPlain), [{ double_val: 3 }, { null_val: 'NULL' }]);
    assert.deepEqual(res.results[4].values.map(feastPlain), [{ bool_val: true }, { null_val: 'NULL' }]);
  });

  test('full_feature_names answers view__feature; collisions without it are refused', async () => {
    const on = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:s', 'typed2:s'] }, entities: { id: ids(['a']) }, full_feature_names: true });
    assert.deepEqual(on.res.metadata.feature_names.val, ['id', 'typed__s', 'typed2__s']);
    assert.deepEqual(on.res.results.slice(1).map((c: any) => feastPlain(c.values[0])), [{ string_val: 'x' }, { string_val: 'x' }]);
    const off = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:s', 'typed2:s'] }, entities: { id: ids(['a']) } });
    assert.equal(off.err?.code, 3);
    assert.match(off.err!.details, /collide.*full_feature_names/);
  });

  test('a feature named like an entity key column of the answer is refused without full_feature_names, answered as view__feature with it', async () => {
    await defineKeyNamedFeatures(asof);
    const cases = [
      { features: ['drv_v:city', 'drv_v:driver_id'], entities: { driver_id: ids([1001]) }, feature: 'drv_v:driver_id', key: 'driver_id', full: ['driver_id', 'drv_v__city', 'drv_v__driver_id'], values: [{ int64_val: '1001' }, { string_val: 'sf' }, { int64_val: '1001' }] },
      {
        features: ['usr_v:name', 'drv_v:user_id'],
        entities: { user_id: ids(['u1']), driver_id: ids([1001]) },
        feature: 'drv_v:user_id',
        key: 'user_id',
        full: ['user_id', 'driver_id', 'usr_v__name', 'drv_v__user_id'],
        values: [{ string_val: 'u1' }, { int64_val: '1001' }, { string_val: 'ann' }, { string_val: 'u2' }],
      },
    ];
    for (const c of cases) {
      const off = await call(asof.feast, 'GetOnlineFeatures', { features: { val: c.features }, entities: c.entities });
      assert.equal(off.err?.code, 3, JSON.stringify(off.res?.metadata));
      assert.ok(off.err!.details.includes(`"${c.feature}"`) && off.err!.details.includes(`"${c.key}"`), off.err!.details);
      assert.match(off.err!.details, /full_feature_names/);
      const on = await call(asof.feast, 'GetOnlineFeatures', { features: { val: c.features }, entities: c.entities, full_feature_names: true });
      assert.equal(on.err, undefined, on.err?.details);
      assert.deepEqual(on.res.metadata.feature_names.val, c.full);
      assert.deepEqual(on.res.results.map((r: any) => feastPlain(r.values[0])), c.values);
    }
  });

  test('feature_service: its features in its order, each view keyed by its own entity column', async () => {
    const { res, err, headers } = await call(asof.feast, 'GetOnlineFeatures', { feature_service: 'scoring', entities: { id: ids(['a']), user: ids([1]) } });
    assert.equal(err, undefined, err?.details);
    assert.deepEqual(res.metadata.feature_names.val, ['user', 'id', 'n', 's', 'amount']);
    assert.deepEqual(res.results.map((c: any) => feastPlain(c.values[0])), [{ int64_val: '1' }, { string_val: 'a' }, { int64_val: '1' }, { string_val: 'x' }, { double_val: 3 }]);
    assert.deepEqual(JSON.parse(String(headers?.get('asof-token')[0])), { events: 1, typed: 1 }, 'the token covers both source tables');
  });

  test('entity names must be the views\' entity key columns; unknown names map to the catalogue', async () => {
    const missing = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:s'] }, entities: { driver_id: ids(['a']) } });
    assert.equal(missing.err?.code, 3);
    assert.deepEqual(asofError(missing.err!).details.map((d: any) => d.field), ['entities.id']);
    const extra = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:s'] }, entities: { id: ids(['a']), foo: ids([1]) } });
    assert.equal(extra.err?.code, 3);
    assert.deepEqual(asofError(extra.err!).details.map((d: any) => d.field), ['entities.foo']);
    const lengths = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:s', 'recent:n'] }, entities: { id: ids(['a', 'n']), user: ids([1]) } });
    assert.equal(lengths.err?.code, 3);
    const badKey = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['recent:n'] }, entities: { user: { val: [{ string_val: 'x' }] } } });
    assert.equal(badKey.err?.code, 3);
    const unknownFeature = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:nope'] }, entities: { id: ids(['a']) } });
    assert.equal(unknownFeature.err?.code, 5);
    const unknownView = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['nope:s'] }, entities: { id: ids(['a']) } });
    assert.equal(unknownView.err?.code, 5);
    assert.equal(asofError(unknownView.err!).code, 'ASOF_FEATURE_VIEW_NOT_FOUND');
    const unknownService = await call(asof.feast, 'GetOnlineFeatures', { feature_service: 'nope', entities: { id: ids(['a']) } });
    assert.equal(unknownService.err?.code, 5);
    const neither = await call(asof.feast, 'GetOnlineFeatures', { entities: { id: ids(['a']) } });
    assert.equal(neither.err?.code, 3);
  });

  test('bytes in lists follow bytes_val: items are UTF-8 text, and one that is not UTF-8 is refused naming the item', async () => {
    const lookup = (v: Record<string, unknown>) => call(asof.feast, 'GetOnlineFeatures', { features: { val: ['typed:s'] }, entities: { id: { val: [v] } } });
    const bad = await lookup({ bytes_list_val: { val: [Buffer.from('a'), Buffer.from([0xff])] } });
    assert.equal(bad.err?.code, 3);
    assert.deepEqual(asofError(bad.err!).details, [{ field: 'entities.id[0][1]', reason: 'a bytes_list_val item is not valid UTF-8' }]);
    // Items of map_list_val are maps, read as map_val is (its bytes_val checked the same way).
    const badMap = await lookup({ map_list_val: { val: [{ val: { k: { bytes_val: Buffer.from([0xff]) } } }] } });
    assert.equal(badMap.err?.code, 3);
    assert.deepEqual(asofError(badMap.err!).details.map((d: any) => d.field), ['entities.id[0][0].k']);
    // In UTF-8, the items are text; a list is still no entity key (keys are scalars), and the refusal shows the text, not bytes.
    const good = await lookup({ bytes_list_val: { val: [Buffer.from('a')] } });
    assert.equal(good.err?.code, 3);
    assert.match(good.err!.details, /entity 0 \(\["a"\]\) is not a valid id/);
  });

  test('a unix_timestamp_val entity key reaches a timestamp entity column', async () => {
    await asof.req('PUT', '/tables/by_day', { kind: 'pk', primaryKey: ['day'], columns: [{ name: 'day', type: 'timestamp', nullable: false }, { name: 'total', type: 'float64' }] });
    await asof.req('POST', '/tables/by_day/rows', { rows: [{ day: '2024-05-01T00:00:00Z', total: 9.5 }] });
    await asof.services.registry.defineView('daily', { source: 'by_day', entity: 'day', features: [{ name: 'total', column: 'total' }] });
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['daily:total'] }, entities: { day: { val: [{ unix_timestamp_val: 1714521600 }] } } });
    assert.equal(err, undefined, err?.details);
    assert.deepEqual(res.results.map((c: any) => feastPlain(c.values[0])), [{ unix_timestamp_val: '1714521600' }, { double_val: 9.5 }]);
  });

  // Last: it writes a row, which moves the token the tests above expect.
  test('every value, status and event time equals the REST answer to the same request', async () => {
    const w = await asof.req('POST', '/tables/typed/rows', { rows: [ROW_EDGES] });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    for (const [features, entities] of [
      [TYPED_FEATURES.map((f) => `typed:${f}`), { id: ['a', 'n', 'zz', 'edges'] }],
      [['recent:n', 'typed:ts', 'recent:amount', 'typed:li64'], { id: ['edges', 'a', 'zz'], user: [2, 1, 3] }],
    ] as const) {
      const rest = await asof.req('POST', '/get-online-features', { features, entities, full_feature_names: true });
      assert.equal(rest.status, 200, JSON.stringify(rest.body));
      const pb = Object.fromEntries(Object.entries(entities).map(([k, vals]) => [k, ids(vals as unknown[])]));
      const { res, err, headers } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: features }, entities: pb, full_feature_names: true });
      assert.equal(err, undefined, err?.details);
      assert.deepEqual(res.metadata.feature_names.val, rest.body.metadata.feature_names);
      res.results.forEach((c: any, i: number) => {
        const expected = rest.body.results[i];
        const name = rest.body.metadata.feature_names[i];
        assert.deepEqual(c.values.map(feastJson), expected.values, name);
        assert.deepEqual(c.statuses, expected.statuses, name);
        assert.deepEqual(c.event_timestamps.map(tsMs), expected.event_timestamps.map(Date.parse), name);
      });
      assert.equal(String(headers?.get('asof-token')[0]), rest.headers['asof-token']);
    }
  });
});
