/**
 * Plans are cached by selection, and a selection's size is the caller's
 * choice: the cache is bounded by the features in it as well as by count, and
 * a feature listed twice is refused (each repeat made the plan larger). The
 * adapters' answers to a repeat are held together by the parity suite.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AsofError } from '../../src/errors.js';
import type { FeatureSelection } from '../../src/features/registry.js';
import { ok, testAsof, type TestAsof } from '../helpers.js';

const FEATURES = 200;
let asof: TestAsof;

before(async () => {
  asof = await testAsof();
  await ok(asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'x', type: 'float64', nullable: true }] }), 201);
  await ok(asof.req('PUT', '/feature-views/v', { source: 't', entity: 'id', features: Array.from({ length: FEATURES }, (_, i) => ({ name: `f${i}`, column: 'x' })) }), 201);
});

after(() => asof.destroy());

/** The view's features in rotation k: a different selection of the same size for each k. */
const rotation = (k: number): FeatureSelection => ({ features: Array.from({ length: FEATURES }, (_, i) => `v:f${(i + k) % FEATURES}`) });

test('the plan cache holds at most 50,000 features: selections of 200 features are rebuilt after 250 others', async () => {
  const online = asof.services.online;
  const first = await online.plan(rotation(0));
  assert.equal(await online.plan(rotation(0)), first, 'a new selection object with the same features finds the cached plan');
  for (let k = 1; k < 200; k++) await online.plan(rotation(k));
  assert.equal(await online.plan(rotation(0)), first, '200 plans of 200 features (40,000) are all kept');
  for (let k = 0; k < 100; k++) await online.plan({ features: rotation(k).features!.slice(0, 150) });
  assert.notEqual(await online.plan(rotation(0)), first, 'past 50,000 features the cache starts over (a count of 1,000 plans alone kept it)');
});

test('a feature listed twice is refused by the service, naming it', async () => {
  await assert.rejects(
    async () => asof.services.online.plan({ features: ['v:f1', 'v:f2', 'v:f1'] }),
    (e: unknown) => e instanceof AsofError && e.code === 'ASOF_INVALID_ARGUMENT' && /feature "v:f1" is listed twice/.test(e.message),
  );
  const r = await asof.req('GET', '/features/1?features=v:f3,v:f3');
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
});

test('a feature service listing a feature twice is refused, naming it', async () => {
  const r = await asof.req('PUT', '/feature-services/s', { features: ['v:f1', 'v:f2', 'v:f1'] });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'ASOF_INVALID_DEFINITION');
  assert.match(r.body.error.message, /feature "v:f1" is listed twice/);
  await ok(asof.req('PUT', '/feature-services/s', { features: ['v:f1', 'v:f2'] }), 201);
});
