/**
 * A lookup recorded as a decision (`?decision=`, `decisions`, `decision_ids`,
 * `asof-decision-id`) and sent again with the same id: it answers what it
 * answered the first time (values, statuses, event times, token), over every
 * adapter and for every column type, writes nothing, and an id recorded for
 * another lookup is 409. The row is changed between the two, so an answer
 * evaluated afresh differs from the first.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { UNRESTRICTED } from '../../src/access.js';
import { asof as pb } from '../../src/grpc/generated/protos.js';
import * as generated from '../../src/grpc/online-codec.js';
import * as hand from '../../src/grpc/online-wire.js';
import { renderMany } from '../../src/http/features-json.js';
import { toObjects } from '../../src/online/service.js';
import { call, defineFixture, grpc, grpcAsof, ROW_A, ROW_EDGES, TYPED_FEATURES, type GrpcAsof } from './grpc-helpers.js';

const REFS = TYPED_FEATURES.map((f) => `typed:${f}`);
const md = (id: string): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set('asof-decision-id', id);
  return m;
};

describe('a recorded lookup sent again', () => {
  let asof: GrpcAsof;
  const decisionsOffset = async (): Promise<number> => (await asof.req('GET', '/tables/_asof_decisions')).body.latestOffset;
  before(async () => {
    asof = await grpcAsof();
    await defineFixture(asof);
    const r = await asof.req('POST', '/tables/typed/rows', { rows: [ROW_EDGES] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(() => asof.destroy());

  test('answers its first answer over every adapter, every column type, after the row changed; nothing is written', async () => {
    // First answers, each adapter under its own id, for the row "edges" (values at every type's edges).
    const get1 = await asof.req('GET', '/features/edges?view=typed&decision=rep-get');
    const post1 = await asof.req('POST', '/features', { entities: ['edges', 'a'], view: 'typed', decisions: ['rep-post', null] });
    const grpc1 = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'edges' }], view: 'typed', decision_ids: ['rep-grpc'] });
    const feastRest1 = await asof.req('POST', '/get-online-features', { features: REFS, entities: { id: ['edges'] } }, { 'asof-decision-id': 'rep-feast-rest' });
    const feastGrpc1 = await call(asof.feast, 'GetOnlineFeatures', { features: { val: REFS }, entities: { id: { val: [{ string_val: 'edges' }] } } }, md('rep-feast-grpc'));
    const feastMix1 = await asof.req('POST', '/get-online-features', { features: REFS, entities: { id: ['edges', 'a'] } }, { 'asof-decision-id': 'rep-feast-mix,' });
    for (const r of [get1, post1, feastRest1, feastMix1]) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(grpc1.err ?? feastGrpc1.err, undefined);
    assert.deepEqual(get1.body.token, { typed: 2 });

    // "edges" takes row a's values (and a changes too): a fresh read now answers otherwise.
    assert.equal((await asof.req('POST', '/tables/typed/rows', { rows: [{ ...ROW_A, id: 'edges' }, { ...ROW_A, s: 'changed' }] })).status, 200);
    const fresh = await asof.req('GET', '/features/edges?view=typed');
    assert.notDeepEqual(fresh.body.features, get1.body.features);
    assert.deepEqual(fresh.body.token, { typed: 6 });
    const written = await decisionsOffset();

    const get2 = await asof.req('GET', '/features/edges?view=typed&decision=rep-get');
    assert.equal(get2.status, 200);
    assert.deepEqual(get2.body, get1.body, 'REST GET: the first answer, token included');

    // A batch: the recorded entity answers its first answer; the other one, not recorded, is read afresh.
    const post2 = await asof.req('POST', '/features', { entities: ['edges', 'a'], view: 'typed', decisions: ['rep-post', null] });
    assert.deepEqual(post2.body.results[0], post1.body.results[0]);
    assert.deepEqual([post2.body.results[1].features['typed:s'], post2.body.results[1].token], ['changed', { typed: 6 }]);

    const grpc2 = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'edges' }], view: 'typed', decision_ids: ['rep-grpc'] });
    assert.deepEqual(grpc2.res, grpc1.res, 'gRPC: every typed value, status, event time and the token as first answered');

    const feastRest2 = await asof.req('POST', '/get-online-features', { features: REFS, entities: { id: ['edges'] } }, { 'asof-decision-id': 'rep-feast-rest' });
    assert.deepEqual([feastRest2.body, feastRest2.headers['asof-token']], [feastRest1.body, feastRest1.headers['asof-token']]);
    // Feast answers one token: each table's newest position among the entities' (the fresh read's here).
    const feastMix2 = await asof.req('POST', '/get-online-features', { features: REFS, entities: { id: ['edges', 'a'] } }, { 'asof-decision-id': 'rep-feast-mix,' });
    assert.deepEqual(feastMix2.body.results.map((c: any) => [c.values[0], c.statuses[0], c.event_timestamps[0]]), feastMix1.body.results.map((c: any) => [c.values[0], c.statuses[0], c.event_timestamps[0]]));
    assert.deepEqual([feastMix2.body.results[6].values[1], feastMix2.headers['asof-token']], ['changed', '{"typed":6}']);
    const feastGrpc2 = await call(asof.feast, 'GetOnlineFeatures', { features: { val: REFS }, entities: { id: { val: [{ string_val: 'edges' }] } } }, md('rep-feast-grpc'));
    assert.deepEqual([feastGrpc2.res, feastGrpc2.headers?.get('asof-token')], [feastGrpc1.res, feastGrpc1.headers?.get('asof-token')]);
    assert.equal(feastGrpc2.headers?.get('asof-token')[0], '{"typed":2}');

    assert.equal(await decisionsOffset(), written, 'a repeat records nothing');
    const audit = await asof.req('GET', '/audit/decisions/rep-get');
    assert.deepEqual([audit.body.match, audit.body.served.features, audit.body.decision.token], [true, get1.body.features, { typed: 2 }]);
  });

  test('with a lookup alongside: entities of one batch answer their own tokens, and both encoders of gRPC and the REST renderer agree', async () => {
    const { online, audit } = asof.services;
    await asof.req('POST', '/tables/typed/rows', { rows: [{ id: 'mix', s: 'one', ts: 1000 }] });
    const plan = await online.plan({ features: ['typed:s', 'typed:ts', 'typed:li64'] });
    const first = await online.evaluate(['mix'], plan);
    await audit.recordLookups(UNRESTRICTED, ['mix-1'], ['mix'], first);
    await asof.req('POST', '/tables/typed/rows', { rows: [{ id: 'mix', s: 'two', li64: ['9007199254740993'] }] });
    const now = await online.evaluate(['mix', 'a'], plan);
    const answered = await audit.recordLookups(UNRESTRICTED, ['mix-1', 'mix-a'], ['mix', 'a'], now);
    const objects = toObjects(['mix', 'a'], answered);
    assert.deepEqual(objects[0], { ...toObjects(['mix'], first)[0] }, 'the first answer, token included');
    assert.equal(objects[1].features['typed:s'], 'changed');
    assert.notDeepEqual(objects[0].token, objects[1].token);
    assert.deepEqual(JSON.parse(renderMany(['mix', 'a'], answered).bytes.toString()), { results: objects });
    const entities = [pb.v1.Value.create({ string_value: 'mix' }), pb.v1.Value.create({ string_value: 'a' })];
    const decode = (b: Buffer) => pb.v1.GetOnlineFeaturesResponse.toObject(pb.v1.GetOnlineFeaturesResponse.decode(b), { longs: String });
    const byHand = decode(hand.encodeOnlineAnswer(answered, entities));
    assert.deepEqual(byHand, decode(generated.encodeOnlineAnswer(answered, entities)));
    assert.deepEqual(byHand.results!.map((r: { token?: unknown }) => r.token), objects.map((o) => Object.fromEntries(Object.entries(o.token).map(([t, n]) => [t, String(n)]))));
    // The new id was recorded with the fresh values.
    assert.deepEqual(audit.decision('mix-a').served?.features['typed:s'], 'changed');

    // Two lookups under one new id, read before and after a write, recorded at once: the first recorded answers both.
    const a1 = await online.evaluate(['mix'], plan);
    await asof.req('POST', '/tables/typed/rows', { rows: [{ id: 'mix', s: 'three' }] });
    const a2 = await online.evaluate(['mix'], plan);
    const [r1, r2] = await Promise.all([audit.recordLookups(UNRESTRICTED, ['race'], ['mix'], a1), audit.recordLookups(UNRESTRICTED, ['race'], ['mix'], a2)]);
    assert.deepEqual(toObjects(['mix'], r2), toObjects(['mix'], r1));
    assert.equal(toObjects(['mix'], r2)[0].features['typed:s'], 'two');
  });

  test('an id recorded for another lookup is 409 naming it, and writes nothing; a completed lookup still repeats', async () => {
    assert.equal((await asof.req('GET', '/features/a?features=typed:s,typed:b&decision=c-1')).status, 200);
    const written = await decisionsOffset();
    const cases: [string, () => Promise<{ status: number; body: any }>][] = [
      ['another entity', () => asof.req('GET', '/features/n?features=typed:s,typed:b&decision=c-1')],
      ['another selection', () => asof.req('GET', '/features/a?features=typed:b,typed:s&decision=c-1')],
      ['a view instead of its features', () => asof.req('GET', '/features/a?view=typed&decision=c-1')],
      ['a batch', () => asof.req('POST', '/features', { entities: ['a', 'n'], features: ['typed:s', 'typed:b'], decisions: ['fresh-c', 'c-1'] })],
    ];
    for (const [what, send] of cases) {
      const r = await send();
      assert.deepEqual([r.status, r.body.error?.code, r.body.error?.details?.id], [409, 'ASOF_CONFLICT', 'c-1'], what);
    }
    const g = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'n' }], features: { refs: ['typed:s', 'typed:b'] }, decision_ids: ['c-1'] });
    assert.equal(g.err?.code, grpc.status.ALREADY_EXISTS);
    assert.equal(await decisionsOffset(), written, 'nothing written, not even the batch\'s other id');
    assert.equal((await asof.req('GET', '/audit/decisions/fresh-c')).status, 404);

    // Posted decisions are no lookups.
    assert.equal((await asof.req('POST', '/decisions', { id: 'c-posted', entity: 'a', features: ['typed:s'], outcome: 'ok' })).status, 201);
    assert.equal((await asof.req('GET', '/features/a?features=typed:s&decision=c-posted')).status, 409);

    // Completed by POST /decisions: the lookup it recorded repeats as before.
    const first = await asof.req('GET', '/features/a?features=typed:s&decision=c-2');
    assert.equal((await asof.req('POST', '/decisions', { id: 'c-2', entity: 'a', features: ['typed:s'], outcome: 'approve' })).status, 200);
    await asof.req('POST', '/tables/typed/rows', { rows: [{ ...ROW_A, s: 'later' }] });
    assert.deepEqual((await asof.req('GET', '/features/a?features=typed:s&decision=c-2')).body, first.body);

    // The view redefined (the feature reads another column): the request no longer means what it did.
    const def = await asof.services.registry.findView('typed');
    await asof.services.registry.defineView('typed', { source: def.source, entity: def.entity, features: def.features.map((f) => (f.name === 's' ? { name: 's', column: 'i32' } : f)) });
    const redefined = await asof.req('GET', '/features/a?features=typed:s&decision=c-2');
    assert.deepEqual([redefined.status, redefined.body.error?.code], [409, 'ASOF_CONFLICT']);
    assert.match(redefined.body.error.message, /redefined/);
  });
  test('Feast: a bad asof-decision-id header or metadata is a 400 naming it, not a `decisions` field the request has no', async () => {
    const twoForOne = await asof.req('POST', '/get-online-features', { features: REFS, entities: { id: ['edges'] } }, { 'asof-decision-id': 'f-1,f-2' });
    assert.equal(twoForOne.status, 400, JSON.stringify(twoForOne.body));
    assert.deepEqual(twoForOne.body.error.details.map((d: any) => d.field), ['asof-decision-id']);
    const badId = await asof.req('POST', '/get-online-features', { features: REFS, entities: { id: ['edges', 'a'] } }, { 'asof-decision-id': ',bad\u0001id' });
    assert.equal(badId.status, 400, JSON.stringify(badId.body));
    assert.deepEqual(badId.body.error.details.map((d: any) => d.field), ['asof-decision-id[1]']);
    const overGrpc = await call(asof.feast, 'GetOnlineFeatures', { features: { val: REFS }, entities: { id: { val: [{ string_val: 'edges' }] } } }, md('g-1,g-2'));
    assert.equal(overGrpc.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(String(overGrpc.err?.details), /decision ids for 1 entities/);
  });
});
