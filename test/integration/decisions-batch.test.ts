/**
 * A batch lookup recording several decisions is all or nothing: answered 409
 * (an id recorded for another lookup, by a request running alongside), it
 * records none of its decisions. DESIGN: "A request that is rejected writes nothing."
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, testAsof } from '../helpers.js';

test('a batch answered 409 records none of its decisions, however its requests interleave', async () => {
  const asof = await testAsof();
  try {
    await ok(asof.req('PUT', '/tables/drivers', { kind: 'pk', primaryKey: ['driver'], columns: [{ name: 'driver', type: 'int64', nullable: false }, { name: 'trips', type: 'int64', nullable: true }] }), 201);
    await ok(asof.req('PUT', '/feature-views/drv_v', { source: 'drivers', entity: 'driver', features: [{ name: 'trips', column: 'trips' }] }), 201);
    await ok(asof.req('POST', '/tables/drivers/rows', { rows: [{ driver: 1001, trips: 3 }, { driver: 1002, trips: 4 }] }));
    let conflicts = 0;
    for (let i = 0; i < 60; i++) {
      const first = asof.req('POST', '/features', { entities: [1001], view: 'drv_v', decisions: [`x-${i}`] });
      if (i % 3 === 1) await new Promise((r) => setImmediate(r));
      const second = asof.req('POST', '/features', { entities: [1001, 1002], view: 'drv_v', decisions: [`a-${i}`, `x-${i}`] });
      const [r1, r2] = await Promise.all([first, second]);
      assert.equal(r1.status, 200, JSON.stringify(r1.body));
      if (r2.status === 409) {
        conflicts++;
        assert.equal((await asof.req('GET', `/audit/decisions/a-${i}`)).status, 404, `try ${i}: a-${i} was recorded by a request answered 409`);
      } else {
        assert.equal(r2.status, 200, JSON.stringify(r2.body));
      }
    }
    assert.ok(conflicts > 0, 'no try conflicted');
  } finally {
    await asof.destroy();
  }
});
