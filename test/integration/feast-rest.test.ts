import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { grpcAsof, defineFixture, defineKeyNamedFeatures, TYPED_FEATURES, type GrpcAsof } from './grpc-helpers.js';

const RFC3339_PROTO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;

describe('POST /get-online-features (Feast feature-server format)', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof();
    await defineFixture(asof);
  });
  after(() => asof.destroy());

  test('the Feast response shape: metadata.feature_names, then column-oriented results', async () => {
    const r = await asof.req('POST', '/get-online-features', { features: ['typed:s', 'recent:amount'], entities: { id: ['a', 'zz'], user: [1, 2] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body), ['metadata', 'results']);
    assert.deepEqual(r.body.metadata, { feature_names: ['id', 'user', 's', 'amount'] });
    assert.deepEqual(r.body.results[0], { values: ['a', 'zz'], statuses: ['PRESENT', 'PRESENT'], event_timestamps: ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'] });
    assert.deepEqual(r.body.results[1], { values: [1, 2], statuses: ['PRESENT', 'PRESENT'], event_timestamps: ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'] });
    assert.deepEqual(r.body.results[2].values, ['x', null]);
    assert.deepEqual(r.body.results[2].statuses, ['PRESENT', 'NOT_FOUND']);
    assert.match(r.body.results[2].event_timestamps[0], RFC3339_PROTO);
    assert.equal(r.body.results[2].event_timestamps[1], '1970-01-01T00:00:00Z');
    assert.deepEqual(r.body.results[3].values, [3, null]);
    assert.deepEqual(r.body.results[3].statuses, ['PRESENT', 'OUTSIDE_MAX_AGE']);
    assert.deepEqual(JSON.parse(String(r.headers['asof-token'])), { typed: 1, events: 1 });
  });

  test('values render as Feast renders them, for every column type', async () => {
    const r = await asof.req('POST', '/get-online-features', { features: TYPED_FEATURES.map((f) => `typed:${f}`), entities: { id: ['a', 'n'] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const byName = Object.fromEntries(r.body.metadata.feature_names.map((n: string, i: number) => [n, r.body.results[i]]));
    assert.deepEqual(Object.fromEntries(TYPED_FEATURES.map((f) => [f, byName[f].values[0]])), {
      b: true,
      i32: -7,
      i64: '9007199254740993',
      f32: 0.5,
      f64: 2.25,
      s: 'x',
      ts: 1714557600,
      j: '{"k":[1,"v"]}',
      lb: [true, false],
      li32: [1, -2],
      li64: [3, -4],
      lf32: [0.25, null],
      lf64: [1.5, -0.5],
      ls: ['p', 'q'],
      lts: [1, 2],
      lst: [{ a: 1 }, { a: 2 }],
      lj: '[{"x":1},"y"]',
      st: { name: 'n', n: 5 },
      v: [0.5, 1, -1.5],
    });
    for (const f of TYPED_FEATURES) {
      assert.equal(byName[f].values[1], null);
      assert.equal(byName[f].statuses[1], 'NULL_VALUE');
    }
    const commit = (await asof.req('GET', '/tables/typed/changelog?from=0')).body.records[0].commitTime;
    assert.equal(Date.parse(byName.s.event_timestamps[0]), Date.parse(commit));
    assert.match(byName.s.event_timestamps[0], RFC3339_PROTO);
  });

  test('full_feature_names, feature_service', async () => {
    const full = await asof.req('POST', '/get-online-features', { features: ['typed:s', 'recent:n'], entities: { id: ['a'], user: [1] }, full_feature_names: true });
    assert.deepEqual(full.body.metadata.feature_names, ['id', 'user', 'typed__s', 'recent__n']);
    const svc = await asof.req('POST', '/get-online-features', { feature_service: 'scoring', entities: { id: ['a'], user: [1] } });
    assert.equal(svc.status, 200, JSON.stringify(svc.body));
    assert.deepEqual(svc.body.metadata.feature_names, ['user', 'id', 'n', 's', 'amount']);
    assert.deepEqual(svc.body.results.map((c: any) => c.values[0]), [1, 'a', 1, 'x', 3]);
  });

  test('a feature named like an entity key column of the answer is refused without full_feature_names, answered as view__feature with it', async () => {
    await defineKeyNamedFeatures(asof);
    const cases = [
      { features: ['drv_v:city', 'drv_v:driver_id'], entities: { driver_id: [1001] }, feature: 'drv_v:driver_id', key: 'driver_id', full: ['driver_id', 'drv_v__city', 'drv_v__driver_id'], values: [1001, 'sf', 1001] },
      { features: ['usr_v:name', 'drv_v:user_id'], entities: { user_id: ['u1'], driver_id: [1001] }, feature: 'drv_v:user_id', key: 'user_id', full: ['user_id', 'driver_id', 'usr_v__name', 'drv_v__user_id'], values: ['u1', 1001, 'ann', 'u2'] },
    ];
    for (const c of cases) {
      const off = await asof.req('POST', '/get-online-features', { features: c.features, entities: c.entities });
      assert.equal(off.status, 400, JSON.stringify(off.body));
      assert.equal(off.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.ok(off.body.error.message.includes(`"${c.feature}"`) && off.body.error.message.includes(`"${c.key}"`), off.body.error.message);
      assert.match(off.body.error.message, /full_feature_names/);
      const on = await asof.req('POST', '/get-online-features', { features: c.features, entities: c.entities, full_feature_names: true });
      assert.equal(on.status, 200, JSON.stringify(on.body));
      assert.deepEqual(on.body.metadata.feature_names, c.full);
      assert.deepEqual(on.body.results.map((r: any) => r.values[0]), c.values);
    }
  });

  test('the body is read as JSON whatever the Content-Type (Feast\'s Python client sends none)', async () => {
    const body = JSON.stringify({ features: ['typed:s'], entities: { id: ['a'] } });
    for (const headers of [{}, { 'content-type': 'text/plain' }, { 'content-type': 'application/json; charset=utf-8' }] as Record<string, string>[]) {
      const r = await asof.req('POST', '/get-online-features', body, headers);
      assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body.results[1].values, ['x']);
    }
    // Over a real socket, exactly as Python's requests.post(url, data=json_text) sends it: no Content-Type at all.
    const raw = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const u = new URL('/get-online-features', asof.url);
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      assert.equal(req.getHeader('content-type'), undefined);
      req.end(body);
    });
    assert.equal(raw.status, 200, JSON.stringify(raw.body));
    assert.deepEqual(raw.body.metadata.feature_names, ['id', 's']);
    const bad = await asof.req('POST', '/get-online-features', '{not json', {});
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'ASOF_INVALID_ARGUMENT');
  });

  test('errors: 400 naming the field, 404 for unknown views and services', async () => {
    const wrongEntity = await asof.req('POST', '/get-online-features', { features: ['typed:s'], entities: { driver_id: ['a'] } });
    assert.equal(wrongEntity.status, 400);
    assert.deepEqual(wrongEntity.body.error.details.map((d: any) => d.field), ['entities.id']);
    const extra = await asof.req('POST', '/get-online-features', { features: ['typed:s'], entities: { id: ['a'], foo: [1] } });
    assert.equal(extra.status, 400);
    assert.deepEqual(extra.body.error.details.map((d: any) => d.field), ['entities.foo']);
    const noEntities = await asof.req('POST', '/get-online-features', { features: ['typed:s'] });
    assert.equal(noEntities.status, 400);
    assert.equal(noEntities.body.error.details[0].field, 'body.entities');
    const both = await asof.req('POST', '/get-online-features', { features: ['typed:s'], feature_service: 'scoring', entities: { id: ['a'] } });
    assert.equal(both.status, 400);
    assert.equal((await asof.req('POST', '/get-online-features', { features: ['typed:nope'], entities: { id: ['a'] } })).status, 404, 'an unknown feature of a known view is not found');
    const view = await asof.req('POST', '/get-online-features', { features: ['nope:s'], entities: { id: ['a'] } });
    assert.deepEqual([view.status, view.body.error.code], [404, 'ASOF_FEATURE_VIEW_NOT_FOUND']);
    const svc = await asof.req('POST', '/get-online-features', { feature_service: 'nope', entities: { id: ['a'] } });
    assert.deepEqual([svc.status, svc.body.error.code], [404, 'ASOF_FEATURE_SERVICE_NOT_FOUND']);
    const badKey = await asof.req('POST', '/get-online-features', { features: ['recent:n'], entities: { user: ['x'] } });
    assert.equal(badKey.status, 400);
  });

  test('the route is in the OpenAPI document with its request and response schemas', async () => {
    const spec = (await asof.req('GET', '/openapi.json')).body;
    const op = spec.paths['/get-online-features'].post;
    assert.ok(op.requestBody.content['application/json'].schema.$ref.endsWith('FeastGetOnlineFeaturesRequest'));
    assert.ok(op.responses['200'].content['application/json'].schema.$ref.endsWith('FeastGetOnlineFeaturesResponse'));
  });
});
