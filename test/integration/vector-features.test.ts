/**
 * A vector search's `features`, on REST and gRPC: a keyless log table's hits
 * are keyed by their offset, which is no entity, so they get no features (as a
 * null-key hit gets none); a view whose entities this table's keys cannot be
 * is a 400 naming the reference and the view, told before the search, with
 * hits or without. Expected values are written out by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok } from '../helpers.js';
import { asofError, call, grpcAsof } from './grpc-helpers.js';

test('a keyless log table: hits keyed by offset get no features, on REST and gRPC', async () => {
  const asof = await grpcAsof({ vectorFlushMs: 3_600_000 });
  try {
    await ok(asof.req('PUT', '/tables/drivers', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'rating', type: 'float64' }] }), 201);
    await ok(asof.req('POST', '/tables/drivers/rows', { rows: [{ id: '0', rating: 4.5 }, { id: '1', rating: 3.5 }, { id: '2', rating: 5 }] }));
    await ok(asof.req('PUT', '/feature-views/driver', { source: 'drivers', entity: 'id', features: [{ name: 'rating', column: 'rating' }] }), 201);
    await ok(asof.req('PUT', '/tables/docs_l2', { kind: 'log', eventTime: 'at', columns: [{ name: 'at', type: 'timestamp', nullable: false }, { name: 'emb', type: 'vector<3>', metric: 'l2' }] }), 201);
    await ok(asof.req('POST', '/tables/docs_l2/rows', { rows: [{ at: 1000, emb: [1, 2, 3] }, { at: 2000, emb: [3, 2, 1] }] }));

    const r = await ok(asof.req('POST', '/vectors/search', { table: 'docs_l2', vector: [3, 2, 1], k: 2, features: ['driver:rating'] }));
    assert.deepEqual(
      r.results.map((h: any) => [h.key, h.offset, 'features' in h]),
      [
        ['1', 1, false],
        ['0', 0, false],
      ],
    );
    // An unknown reference is still refused, though no hit could have features.
    const unknown = await asof.req('POST', '/vectors/search', { table: 'docs_l2', vector: [3, 2, 1], k: 2, features: ['nope:x'] });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));

    const { res, err } = await call(asof.vectors, 'Search', { table: 'docs_l2', vector: [3, 2, 1], k: 2, features: ['driver:rating'] });
    assert.equal(err, undefined);
    assert.deepEqual(
      res.results.map((h: any) => [h.key, h.offset, h.features ?? null]),
      [
        ['1', '1', null],
        ['0', '0', null],
      ],
    );
  } finally {
    await asof.destroy();
  }
});

test("a view keyed by another type than the table's key: 400 naming the reference and the view, before the search, with hits or none", async () => {
  const asof = await grpcAsof({ vectorFlushMs: 3_600_000 });
  try {
    await ok(asof.req('PUT', '/tables/accounts', { kind: 'pk', primaryKey: ['n'], columns: [{ name: 'n', type: 'int64', nullable: false }, { name: 'score', type: 'float64' }] }), 201);
    await ok(asof.req('POST', '/tables/accounts/rows', { rows: [{ n: 1, score: 0.5 }] }));
    await ok(asof.req('PUT', '/feature-views/acct', { source: 'accounts', entity: 'n', features: [{ name: 'score', column: 'score' }] }), 201);
    await ok(asof.req('PUT', '/tables/docs', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'lang', type: 'string' }, { name: 'emb', type: 'vector<2>' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/byname', { source: 'docs', entity: 'id', features: [{ name: 'lang', column: 'lang' }] }), 201);

    const search = (body: Record<string, unknown>) => asof.req('POST', '/vectors/search', { table: 'docs', vector: [1, 0], k: 3, ...body });
    const refused = async (what: string, body: Record<string, unknown>) => {
      const s = await search(body);
      assert.equal(s.status, 400, `${what}: ${JSON.stringify(s.body)}`);
      assert.equal(s.body.error.code, 'ASOF_INVALID_ARGUMENT');
      const d = s.body.error.details[0];
      assert.equal(d.field, 'features[1]', what);
      assert.match(d.reason, /view "acct" is keyed by n \(int64\), but the hits of table "docs" are keyed by its key column id \(string\)/, what);
      assert.match(s.body.error.message, /features\[1\] \("acct:score"\)/, what);
    };
    // No rows yet: no hit, and still refused.
    await refused('no hits', { features: ['byname:lang', 'acct:score'] });
    await ok(asof.req('POST', '/tables/docs/rows', { rows: [{ id: 'k1', lang: 'en', emb: [1, 0] }, { id: '1', lang: 'fr', emb: [0, 1] }] }));
    await refused('hits', { features: ['byname:lang', 'acct:score'] });
    await refused('a filter that matches nothing', { features: ['byname:lang', 'acct:score'], filter: { lang: 'zz' } });
    const { err } = await call(asof.vectors, 'Search', { table: 'docs', vector: [1, 0], k: 3, features: ['byname:lang', 'acct:score'] });
    assert.equal(err?.code, 3, 'INVALID_ARGUMENT');
    assert.match(asofError(err!).message, /view "acct" is keyed by n \(int64\)/);

    // A view over the same key type: each hit's features, as GET /features/{key} answers them.
    const s = await ok(search({ features: ['byname:lang'] }));
    assert.deepEqual(
      s.results.map((h: any) => [h.key, h.features.features]),
      [
        ['k1', { 'byname:lang': 'en' }],
        ['1', { 'byname:lang': 'fr' }],
      ],
    );
  } finally {
    await asof.destroy();
  }
});
