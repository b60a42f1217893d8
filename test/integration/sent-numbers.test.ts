/**
 * A refused JSON number is never shown as a number the client did not send.
 * JSON.parse reads `9007199254740993` as 9007199254740992; refusals said
 * "expected int64, got number 9007199254740992". Where the text of the rows
 * was kept (NDJSON, a JSON write to a table whose text is kept), the literal
 * sent is quoted; elsewhere (lookups, vector filters over REST and gRPC) the
 * number is named without a value.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { asofError, call, stream, grpcAsof, type GrpcAsof } from './grpc-helpers.js';
import { ok } from '../helpers.js';

const JSON_CT = { 'content-type': 'application/json' };
const NDJSON_CT = { 'content-type': 'application/x-ndjson' };
const SENT = '9007199254740993';
const READ = '9007199254740992';

describe('refused numbers beyond 2^53 are named as sent, or without a value', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ vectorFlushMs: 3_600_000 });
    // `j` makes the table's JSON write bodies keep their text (ingest.ts keepsBodyText).
    await ok(asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'n', type: 'int64' }, { name: 'i', type: 'int32' }, { name: 'j', type: 'json' }, { name: 'emb', type: 'vector<2>' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/tv', { source: 't', entity: 'id', features: [{ name: 'n', column: 'n' }] }), 201);
    await ok(asof.req('POST', '/tables/t/rows', { rows: [{ id: 1, n: 1, emb: [1, 0] }] }));
  });
  after(() => asof.destroy());

  test('a write whose text was kept quotes the literal: REST JSON, NDJSON, gRPC ndjson', async () => {
    for (const [column, why] of [['n', /^expected int64, got 9007199254740993 \(of magnitude 2\^53 or more: a JSON number does not carry it exactly\): integers beyond 2\^53 must be sent as strings$/], ['i', /^expected int32, got 9007199254740993 \(of magnitude/]] as const) {
      const json = await asof.req('POST', '/tables/t/rows', `{"rows":[{"id":2,"${column}":${SENT}}]}`, JSON_CT);
      const nd = await asof.req('POST', '/tables/t/rows', `{"id":2,"${column}":${SENT}}\n`, NDJSON_CT);
      for (const r of [json, nd]) {
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.deepEqual([r.body.error.details[0].row, r.body.error.details[0].field], [0, column]);
        assert.match(r.body.error.details[0].reason, why);
        assert.ok(!r.body.error.message.includes(READ), r.body.error.message);
      }
      const g = await stream(asof.ingest, 'WriteRows', [{ table: 't', ndjson: `{"id":2,"${column}":${SENT}}` }]);
      assert.equal(g.err?.code, 3);
      assert.match(asofError(g.err!).details.details[0].reason, why);
    }
  });

  test('without the text (a lookup, a vector filter over REST and gRPC), the number is named without a value', async () => {
    const plain = /a number of magnitude 2\^53 or more \(a JSON number does not carry one exactly\)/;
    const lookup = await asof.req('POST', '/features', `{"entities":[${SENT}],"view":"tv"}`, JSON_CT);
    const filter = await asof.req('POST', '/vectors/search', `{"table":"t","vector":[1,0],"k":1,"filter":{"n":${SENT}}}`, JSON_CT);
    for (const r of [lookup, filter]) {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.message, plain);
      assert.ok(!JSON.stringify(r.body).includes(READ), JSON.stringify(r.body));
    }
    // An uploaded NDJSON file of entity rows keeps its lines' text: its key and its time are quoted as sent.
    for (const [line, column] of [[`{"id":${SENT},"timestamp":"2024-03-01T10:00:00.000Z"}`, 'id'], [`{"id":1,"timestamp":${SENT}}`, 'timestamp']]) {
      const r = await asof.req('POST', '/training-sets?features=tv:n', `${line}\n`, NDJSON_CT);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.message, `entity row 0: column "${column}": ${SENT} would be stored as ${READ}, as a JSON number is held as a float64 (integers beyond 2^53 must be sent as strings)`);
    }
    const g = await call(asof.vectors, 'Search', { table: 't', vector: [1, 0], k: 1, filter: { fields: { n: { numberValue: Number(SENT) } } } });
    assert.equal(g.err?.code, 3);
    assert.match(g.err!.details, plain);
    assert.ok(!g.err!.details.includes(READ), g.err!.details);
  });
});
