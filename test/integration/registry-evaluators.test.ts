/**
 * The registry's evaluators (FeatureRegistry.evaluator): a view redefined
 * many times keeps a bounded number of them (each version's used to stay for
 * good), an old version's is still right when asked for, and a decision
 * recorded under the first version still replays as it was served.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OTHER_EVALUATORS } from '../../src/features/registry.js';
import { ok, testAsof } from '../helpers.js';

const RISK = {
  kind: 'pk',
  primaryKey: ['user_id'],
  columns: [
    { name: 'user_id', type: 'int64', nullable: false },
    { name: 'risk_score', type: 'float64', nullable: true },
    { name: 'spend', type: 'float64', nullable: true },
  ],
};
const V1 = { source: 'user_risk', entity: 'user_id', features: [{ name: 'risk_score', column: 'risk_score' }] };
/** Version i + 2: another ttl each time, and the spend feature too. */
const later = (i: number) => ({ ...V1, ttl: `${i + 1}h`, features: [...V1.features, { name: 'spend', column: 'spend' }] });

test('redefining a view many times keeps a bounded number of evaluators; an old version\'s is still right; an old decision still replays', async () => {
  const clock = { t: 1000 };
  const asof = await testAsof({}, { now: () => clock.t });
  const { registry } = asof.services;
  try {
    await ok(asof.req('PUT', '/tables/user_risk', RISK), 201);
    await ok(asof.req('PUT', '/feature-views/risk', V1), 201);
    const v1 = registry.view('risk');
    await ok(asof.req('POST', '/tables/user_risk/rows', { rows: [{ user_id: 123, risk_score: 0.47, spend: 120 }] }));
    clock.t = 2000;
    const served = await ok(asof.req('GET', '/features/123?view=risk&decision=loan-1'));
    assert.deepEqual(served.features, { 'risk:risk_score': 0.47 });

    const redefinitions = 3 * OTHER_EVALUATORS;
    for (let i = 0; i < redefinitions; i++) {
      clock.t += 1000;
      await ok(asof.req('PUT', '/feature-views/risk', later(i)));
      const now = await ok(asof.req('GET', '/features/123?view=risk'));
      assert.deepEqual(now.features, { 'risk:risk_score': 0.47, 'risk:spend': 120 });
    }
    assert.equal(registry.view('risk').version, redefinitions + 1);
    const held = registry.cachedEvaluators;
    assert.ok(held <= 1 + OTHER_EVALUATORS, `${held} evaluators held after ${redefinitions} redefinitions of one view`);

    // The first version fell out long ago: asked for, it is built again from its own definition.
    const old = registry.evaluator(v1);
    assert.equal(old.view, v1);
    assert.deepEqual(old.features.map((f) => f.name), ['risk_score']);
    assert.equal(old.ttlMs, undefined);
    assert.equal(registry.evaluator(v1), old, 'asked again, the same evaluator');
    const current = registry.evaluator('risk');
    assert.deepEqual(current.features.map((f) => f.name), ['risk_score', 'spend']);
    assert.equal(current.ttlMs, redefinitions * 3_600_000);
    assert.ok(registry.cachedEvaluators <= 1 + OTHER_EVALUATORS);

    const audit = await ok(asof.req('GET', '/audit/decisions/loan-1'));
    assert.deepEqual(audit.reconstructed.features, { 'risk:risk_score': 0.47 });
    assert.equal(audit.match, true);
  } finally {
    await asof.destroy();
  }
});
