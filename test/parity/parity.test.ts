/**
 * Adapter parity (STYLE.md rule 12): every operation of operations.ts, sent
 * over each adapter's form, gives the expected answer or the expected
 * catalogue error with the transport status the catalogue maps it to.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OPERATIONS } from './operations.js';
import { openWorld, type World } from './world.js';

describe('adapter parity', () => {
  let world: World;
  before(async () => {
    world = await openWorld();
  });
  after(() => world?.close());

  for (const op of OPERATIONS) {
    if (op.pending) {
      test(op.name, { todo: op.pending }, () => undefined);
      continue;
    }
    test(op.name, async (t) => {
      const { asof, release } = world.target(op.target);
      if (!asof) return t.skip('no Redis: a replica, or a primary sharing one, needs it (CI=true requires it)');
      t.after(() => release?.());
      assert.ok(Object.keys(op.forms).length > 0, 'an operation needs at least one form');
      for (const [form, run] of Object.entries(op.forms)) {
        const got = await run(asof, world);
        if ('error' in op.expect) {
          assert.ok('error' in got, `${form}: expected ${op.expect.error}, got an answer ${JSON.stringify(got).slice(0, 300)}`);
          assert.equal(got.error, op.expect.error, `${form}: ${got.message}`);
          assert.ok(got.transportOk, `${form}: ${got.error} came with a status other than the catalogue's`);
        } else {
          assert.ok('answer' in got, `${form}: expected an answer, got ${JSON.stringify(got).slice(0, 300)}`);
          assert.deepEqual(got.answer, op.expect.answer, form);
        }
      }
    });
  }
});
