/**
 * A posted decision's `served` values: event times are timestamps (RFC 3339 or
 * epoch ms, stored as RFC 3339 UTC, compared as instants), values are stored
 * as sent or refused, the selection names exactly one form, and the audit
 * compares what was reported, no more. REST and gRPC GetDecision answer the
 * same.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ok } from '../helpers.js';
import { grpcAsof, type GrpcAsof } from './grpc-helpers.js';

describe('a posted decision\'s served values', () => {
  let asof: GrpcAsof;
  /** What a lookup of entity a serves: the values and event times to post. */
  let served: { features: Record<string, unknown>; eventTimes: Record<string, string> };
  let n = 0;

  before(async () => {
    asof = await grpcAsof();
    await ok(asof.req('PUT', '/tables/users', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64' }, { name: 'name', type: 'string' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/u', { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }, { name: 'name', column: 'name' }] }), 201);
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 0.5, name: 'x' }] }));
    served = await ok(asof.req('GET', '/features/a?view=u'));
    assert.match(served.eventTimes['u:score'], /Z$/);
  });
  after(() => asof.destroy());

  test('more than one of features, view and service: 400 as every other selection, nothing recorded', async () => {
    const lookup = await asof.req('GET', '/features/a?features=u:score&view=u');
    assert.equal(lookup.status, 400);
    // Before: 201, the selection keeping features (or the view) and dropping the rest.
    for (const selection of [{ features: ['u:score'], view: 'u' }, { view: 'u', service: 'svc' }, { features: ['u:score'], service: 'svc' }]) {
      const id = `sel-${++n}`;
      const r = await asof.req('POST', '/decisions', { id, entity: 'a', ...selection, outcome: 'ok' });
      assert.equal(r.status, 400, `${JSON.stringify(selection)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual([r.body.error.code, r.body.error.message, r.body.error.details], [lookup.body.error.code, lookup.body.error.message, lookup.body.error.details]);
      assert.equal((await asof.req('GET', `/audit/decisions/${id}`)).status, 404, 'nothing recorded');
    }
  });

});
