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
import { call, grpcAsof, type GrpcAsof } from './grpc-helpers.js';
import { DECISIONS_TABLE, type Decision } from '../../src/audit/decisions.js';

/** A protobuf Timestamp as proto-loader gives it → RFC 3339 UTC, or null when unset. */
const pbTime = (t: { seconds: string | number; nanos: number } | null | undefined): string | null => (t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString() : null);

/** `iso` (UTC) written with a +01:00 offset: the same instant, other text. */
const plusOne = (iso: string): string => `${new Date(Date.parse(iso) + 3_600_000).toISOString().slice(0, -1)}+01:00`;

describe('a posted decision\'s served values', () => {
  let asof: GrpcAsof;
  /** What a lookup of entity a serves: the values and event times to post. */
  let served: { features: Record<string, unknown>; eventTimes: Record<string, string> };
  let n = 0;
  const post = (body: Record<string, unknown>) => asof.req('POST', '/decisions', { entity: 'a', view: 'u', outcome: 'ok', ...body });
  const grpcAudit = async (id: string) => {
    const { res, err } = await call(asof.audit, 'GetDecision', { id });
    assert.ifError(err);
    // An empty repeated field arrives unset.
    return { ...res, differences: res.differences ?? [], compared: res.compared ?? [] };
  };

  before(async () => {
    asof = await grpcAsof();
    await ok(asof.req('PUT', '/tables/users', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64' }, { name: 'name', type: 'string' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/u', { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }, { name: 'name', column: 'name' }] }), 201);
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 0.5, name: 'x' }] }));
    served = await ok(asof.req('GET', '/features/a?view=u'));
    assert.match(served.eventTimes['u:score'], /Z$/);
  });
  after(() => asof.destroy());

  test('an event time with an offset or as epoch ms is the instant: stored as RFC 3339 UTC, and matches', async () => {
    const at = served.eventTimes['u:score'];
    // Before: +01:00 was stored as sent and compared as text (match false); epoch ms was a 400 "expected string".
    for (const given of [plusOne(at), Date.parse(at)]) {
      const id = `et-${++n}`;
      const r = await post({ id, served: { features: served.features, eventTimes: { 'u:score': given, 'u:name': served.eventTimes['u:name'] } } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.deepEqual(r.body.served.eventTimes, { 'u:score': at, 'u:name': served.eventTimes['u:name'] });
      const a = await ok(asof.req('GET', `/audit/decisions/${id}`));
      assert.deepEqual([a.match, a.differences], [true, []], `${given}: ${JSON.stringify(a.differences)}`);
      const g = await grpcAudit(id);
      assert.equal(g.match, true);
      const s = new Map<string, any>(g.served.map((f: any) => [f.ref, f]));
      assert.deepEqual([pbTime(s.get('u:score').event_time), pbTime(s.get('u:name').event_time)], [a.served.eventTimes['u:score'], a.served.eventTimes['u:name']], 'gRPC answers the event times REST does');
    }
  });

  test('an event time that is no timestamp: 400 naming served.eventTimes.<ref>, nothing recorded', async () => {
    // Before: 201, stored "not a time"; REST echoed it and gRPC answered 1970-01-01.
    const cases: [unknown, string][] = [
      ['not a time', 'served.eventTimes.u:score'],
      ['2026-13-01T00:00:00Z', 'served.eventTimes.u:score'],
      [253_402_300_800_000, 'served.eventTimes.u:score'],
      [1.5, 'served.eventTimes.u:score'],
    ];
    for (const [given, field] of cases) {
      const id = `bad-et-${++n}`;
      const r = await post({ id, served: { features: served.features, eventTimes: { 'u:name': null, 'u:score': given } } });
      assert.equal(r.status, 400, `${given}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.deepEqual(r.body.error.details.map((d: { field: string }) => d.field), [field]);
      assert.match(r.body.error.message, /served\.eventTimes\.u:score/);
      assert.equal((await asof.req('GET', `/audit/decisions/${id}`)).status, 404, 'nothing recorded');
    }
  });

  test('a decision stored before event times were checked keeps its text, and is compared by instant', async () => {
    const at = served.eventTimes['u:score'];
    const table = asof.services.engine.table(DECISIONS_TABLE);
    const write = async (id: string, eventTime: string) => {
      await ok(post({ id, served: { features: served.features, eventTimes: { 'u:score': at } } }), 201);
      const d = structuredClone(table.get(id)!.decision) as Decision;
      d.served!.eventTimes['u:score'] = eventTime;
      await table.write([{ id, entity: d.entity, outcome: d.outcome, decidedAt: d.decidedAt, decision: d }], 'upsert');
    };
    await write('old-offset', plusOne(at));
    const a = await ok(asof.req('GET', '/audit/decisions/old-offset'));
    assert.equal(a.served.eventTimes['u:score'], plusOne(at), 'answered as stored');
    assert.deepEqual([a.match, a.differences], [true, []]);
    const g = await grpcAudit('old-offset');
    assert.equal(pbTime(g.served.find((f: any) => f.ref === 'u:score').event_time), at);
    // Text that is no time cannot be the replayed one: a difference; gRPC leaves its time unset rather than answering 1970.
    await write('old-garbage', 'not a time');
    const b = await ok(asof.req('GET', '/audit/decisions/old-garbage'));
    assert.deepEqual([b.match, b.differences.map((d: any) => [d.feature, d.served.eventTime])], [false, [['u:score', 'not a time']]]);
    const h = await grpcAudit('old-garbage');
    assert.deepEqual([h.match, h.differences, h.served.find((f: any) => f.ref === 'u:score').event_time ?? null], [false, ['u:score'], null]);
  });

  test('a served value a float64 does not hold as sent: 400 naming served.features.<ref>, nothing recorded', async () => {
    // Before: 201, stored and answered as 12345678901234567000.
    const cases: [string, string[]][] = [
      ['{"u:score":12345678901234567890}', ['served.features.u:score']],
      ['{"u:score":1.5,"u:name":{"deep":[1,0.1000000000000000055511151231257827]}}', ['served.features.u:name.deep.1']],
    ];
    for (const [features, fields] of cases) {
      const id = `bent-${++n}`;
      const raw = `{"id":"${id}","entity":"a","view":"u","outcome":"ok","served":{"features":${features}}}`;
      const r = await asof.req('POST', '/decisions', raw, { 'content-type': 'application/json' });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.deepEqual(r.body.error.details.map((d: { field: string }) => d.field), fields);
      assert.match(r.body.error.message, /^served\.features hold a number a float64 does not keep/);
      assert.equal((await asof.req('GET', `/audit/decisions/${id}`)).status, 404, 'nothing recorded');
    }
    // As a string it is kept as sent.
    const kept = await post({ id: `bent-${++n}`, served: { features: { 'u:score': '12345678901234567890' } } });
    assert.equal(kept.status, 201, JSON.stringify(kept.body));
    assert.deepEqual(kept.body.served.features, { 'u:score': '12345678901234567890' });
  });

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

  test('a subset is compared as posted: a feature not reported is not a difference, and the answer names those compared', async () => {
    // Before: u:name, left out, was compared as served null and made match false.
    const id = `subset-${++n}`;
    await ok(post({ id, features: ['u:score', 'u:name'], view: undefined, served: { features: { 'u:score': served.features['u:score'] } } }), 201);
    const a = await ok(asof.req('GET', `/audit/decisions/${id}`));
    assert.deepEqual([a.match, a.differences, a.compared], [true, [], ['u:score']]);
    const g = await grpcAudit(id);
    assert.deepEqual([g.match, g.differences, g.compared], [true, [], ['u:score']]);

    // A status alone is reported too: compared (the value is not), and a wrong one is a difference.
    const id2 = `subset-${++n}`;
    await ok(post({ id: id2, served: { features: { 'u:score': served.features['u:score'] }, statuses: { 'u:name': 'NOT_FOUND' } } }), 201);
    const b = await ok(asof.req('GET', `/audit/decisions/${id2}`));
    assert.deepEqual([b.match, b.compared], [false, ['u:score', 'u:name']]);
    assert.deepEqual(b.differences, [{ feature: 'u:name', served: { status: 'NOT_FOUND' }, reconstructed: { value: served.features['u:name'], status: 'PRESENT', eventTime: served.eventTimes['u:name'] } }]);
    const h = await grpcAudit(id2);
    assert.deepEqual([h.match, h.differences, h.compared], [false, ['u:name'], ['u:score', 'u:name']]);

    // A recorded lookup served every feature: all are compared.
    await ok(asof.req('GET', `/features/a?view=u&decision=rec-${n}`));
    const c = await ok(asof.req('GET', `/audit/decisions/rec-${n}`));
    assert.deepEqual([c.match, c.compared], [true, ['u:score', 'u:name']]);
    // Nothing served: nothing compared.
    await ok(post({ id: `none-${n}` }), 201);
    const d = await ok(asof.req('GET', `/audit/decisions/none-${n}`));
    assert.deepEqual([d.match, d.compared], [null, []]);
  });
});
