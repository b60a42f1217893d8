/**
 * Every error carries `details` (README, Errors): a 400's list of {row?,
 * field, reason}, any other error's object of facts, `{}` when there are
 * none. Before, a 401, an unmatched route's 404 and others had no `details`.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';

describe('every error carries details', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof({ apiKeys: 'kr:read' } as never);
  });
  after(() => asof.destroy());

  test('401, 403, an unmatched route, a body that is not JSON: details present, [] or the facts', async () => {
    const none = await asof.req('GET', '/tables');
    assert.deepEqual([none.status, none.body.error.code, none.body.error.details], [401, 'ASOF_UNAUTHENTICATED', {}]);
    const wrong = await asof.req('GET', '/tables', undefined, { authorization: 'Bearer nope' });
    assert.deepEqual([wrong.status, wrong.body.error.details], [401, {}]);
    const denied = await asof.req('PUT', '/tables/x', { kind: 'pk', primaryKey: ['a'], columns: [{ name: 'a', type: 'string', nullable: false }] }, { authorization: 'Bearer kr' });
    assert.deepEqual([denied.status, denied.body.error.details.scope], [403, 'admin']);
    const lost = await asof.req('GET', '/nowhere', undefined, { authorization: 'Bearer kr' });
    assert.deepEqual([lost.status, lost.body.error.code, lost.body.error.details], [404, 'ASOF_NOT_FOUND', {}]);
    const garbled = await asof.req('POST', '/features', '{"entities": [', { authorization: 'Bearer kr', 'content-type': 'application/json' });
    assert.equal(garbled.status, 400);
    assert.ok(Array.isArray(garbled.body.error.details) && garbled.body.error.details.length > 0, JSON.stringify(garbled.body));
  });
});
