import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import type * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../src/grpc/protos.js';
import { grpcAsof, stream, asofError, type GrpcAsof } from './grpc-helpers.js';

const ACCOUNTS = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'balance', type: 'float64', nullable: false },
    { name: 'opened', type: 'timestamp' },
    { name: 'n', type: 'int64' },
    { name: 'meta', type: 'json' },
    { name: 'tags', type: 'list<string>' },
    { name: 'ctx', type: 'struct<device:string,score:int32>' },
    { name: 'emb', type: 'vector<2>' },
  ],
};

/** The answer's fields (without proto-loader's virtual oneof names for `optional` fields). */
const answer = (r: any) => ({ count: r.count, first_offset: r.first_offset, last_offset: r.last_offset, token: r.token ?? {}, messages: r.messages });

const row = (id: string, balance: number, more: Record<string, unknown> = {}) => ({ columns: { id: { string_value: id }, balance: { double_value: balance }, ...more } });

describe('asof.v1.IngestService/WriteRows (client streaming)', () => {
  let asof: GrpcAsof;
  const changelog = async (table: string, from = 0) => (await asof.req('GET', `/tables/${table}/changelog?from=${from}`)).body.records;
  const end = async (table: string) => (await asof.req('GET', `/tables/${table}`)).body.latestOffset + 1;

  before(async () => {
    asof = await grpcAsof({ maxBatchRows: 5 } as never);
    assert.equal((await asof.req('PUT', '/tables/accounts', ACCOUNTS)).status, 201);
  });
  after(() => asof.destroy());

  test('each message is written in order; the answer sums them with offsets and a token', async () => {
    const { res, err } = await stream(asof.ingest, 'WriteRows', [
      {
        table: 'accounts',
        rows: [
          row('a', 10, {
            opened: { timestamp_value: { seconds: 1714557600, nanos: 250_000_000 } },
            n: { int64_value: '9007199254740993' },
            meta: { json_value: '{"k":[1,"v"]}' },
            tags: { list_value: { values: [{ string_value: 'x' }, { null_value: 'NULL_VALUE' }] } },
            ctx: { struct_value: { fields: { device: { string_value: 'ios' }, score: { int64_value: 3 } } } },
            emb: { vector_value: { values: [0.5, -1] } },
          }),
          row('b', 20),
        ],
      },
      { rows: [row('a', 11)] },
    ]);
    assert.equal(err, undefined, err?.details);
    assert.deepEqual(answer(res), { count: '4', first_offset: '0', last_offset: '3', token: { accounts: '3' }, messages: '2' });
    const recs = await changelog('accounts');
    assert.deepEqual(recs.map((r: any) => [r.offset, r.changeType, r.row.id, r.row.balance]), [
      [0, '+I', 'a', 10],
      [1, '+I', 'b', 20],
      [2, '-U', 'a', 10],
      [3, '+U', 'a', 11],
    ]);
    assert.deepEqual(recs[0].row, {
      id: 'a',
      balance: 10,
      opened: '2024-05-01T10:00:00.250Z',
      n: '9007199254740993',
      meta: { k: [1, 'v'] },
      tags: ['x', null],
      ctx: { device: 'ios', score: 3 },
      emb: [0.5, -1],
    });
  });

  test('NDJSON and Arrow IPC messages, and deletes', async () => {
    const start = await end('accounts');
    const arrow = A.tableToIPC(A.tableFromArrays({ id: ['c', 'd'], balance: Float64Array.from([3, 4]) }), 'stream');
    const { res, err } = await stream(asof.ingest, 'WriteRows', [
      { table: 'accounts', ndjson: '{"id":"e","balance":5}\n{"id":"f","balance":6}\n' },
      { table: 'accounts', arrow_ipc: Buffer.from(arrow) },
      { op: 'DELETE', rows: [{ columns: { id: { string_value: 'e' } } }] },
    ]);
    assert.equal(err, undefined, err?.details);
    assert.deepEqual([res.count, res.first_offset, res.last_offset, res.messages], ['5', String(start), String(start + 4), '3']);
    const recs = await changelog('accounts', start);
    assert.deepEqual(recs.map((r: any) => [r.changeType, r.row.id]), [['+I', 'e'], ['+I', 'f'], ['+I', 'c'], ['+I', 'd'], ['-D', 'e']]);
  });

  test('a bad row ends the stream with INVALID_ARGUMENT naming message, row and field; nothing of that message is written', async () => {
    const start = await end('accounts');
    const { res, err } = await stream(asof.ingest, 'WriteRows', [
      { table: 'accounts', rows: [row('g', 1)] },
      { rows: [row('h', 2), { columns: { id: { string_value: 'i' }, balance: { string_value: 'lots' } } }] },
      { rows: [row('j', 3)] },
    ]);
    assert.equal(res, undefined);
    assert.equal(err?.code, 3, 'INVALID_ARGUMENT');
    assert.equal(err!.metadata.get('asof-error-code')[0], 'ASOF_INVALID_ROW');
    assert.match(err!.details, /^message 1: row 1: column "balance": expected float64/);
    const e = asofError(err!);
    assert.equal(e.code, 'ASOF_INVALID_ROW');
    assert.equal(e.details.message, 1);
    assert.deepEqual(e.details.details, [{ row: 1, field: 'balance', reason: 'expected float64, got string "lots"' }]);
    assert.deepEqual(e.details.written, { count: 1, firstOffset: start, lastOffset: start, token: { accounts: start }, messages: 1 });
    const recs = await changelog('accounts', start);
    assert.deepEqual(recs.map((r: any) => r.row.id), ['g'], 'message 0 stays written; nothing of message 1 (nor after it) is');
  });

  test('a json_value that is not JSON is a bad row naming its column', async () => {
    const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 'accounts', rows: [row('k', 1, { meta: { json_value: '{nope' } })] }]);
    assert.equal(err?.code, 3);
    assert.deepEqual(asofError(err!).details.details.map((d: any) => [d.row, d.field]), [[0, 'meta']]);
  });

  test('a struct_value or an Arrow struct with a field named __proto__ is a bad row saying the name is reserved; nothing is written', async () => {
    const before = await end('accounts');
    // Before: the field replaced the value's prototype, and the row was written with the field silently gone.
    for (const col of ['ctx', 'meta']) {
      // JSON.parse makes "__proto__" an own key (an object literal would set the prototype instead).
      const fields = JSON.parse('{"__proto__":{"string_value":"x"},"device":{"string_value":"ios"}}');
      const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 'accounts', rows: [row('p', 1, { [col]: { struct_value: { fields } } })] }]);
      assert.equal(err?.code, 3, col);
      const d = asofError(err!).details.details[0];
      assert.deepEqual([d.row, d.field], [0, col]);
      assert.match(d.reason, /"__proto__" is reserved/);
    }
    const ctx = new A.Struct([new A.Field('__proto__', new A.Utf8(), true), new A.Field('device', new A.Utf8(), true)]);
    const body = A.tableToIPC(new A.Table({ id: A.vectorFromArray(['p']), balance: A.vectorFromArray([1], new A.Float64()), ctx: A.vectorFromArray([JSON.parse('{"__proto__":"x","device":"ios"}')], ctx) }), 'stream');
    const r = await asof.req('POST', '/tables/accounts/rows', Buffer.from(body), { 'content-type': 'application/vnd.apache.arrow.stream' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.details[0].field, 'ctx');
    assert.match(r.body.error.message, /field __proto__: the name "__proto__" is reserved/);
    assert.equal(await end('accounts'), before, 'nothing was written');
  });

  test('an Arrow Map with a key "__proto__", into json or struct, at any depth, is a bad row naming row, column and path over REST and gRPC; nothing is written', async () => {
    const before = await end('accounts');
    // Before: the key replaced the value's prototype when the map became an object, and the row was written with the entry silently gone.
    const entries = (value: A.DataType) => new A.Field('entries', new A.Struct([new A.Field('key', new A.Utf8(), false), new A.Field('value', value, true)]), false);
    const flat = A.vectorFromArray([new Map([['a', 1]]), new Map([['__proto__', 1], ['device', 2]])], new A.Map_(entries(new A.Int32())));
    const nested = A.vectorFromArray([[new Map([['ok', 1]]), new Map([['__proto__', 2]])]], new A.List(new A.Field('item', new A.Map_(entries(new A.Int32())), true)));
    const cases: [string, A.Vector, number, string][] = [
      ['meta', flat, 1, '__proto__'],
      ['ctx', flat, 1, '__proto__'],
      ['meta', nested, 0, '1.__proto__'],
    ];
    for (const [col, vec, bad, path] of cases) {
      const ids = Array.from({ length: vec.length }, (_, i) => `m${i}`);
      const ipc = Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray(ids), balance: A.vectorFromArray(ids.map(() => 1), new A.Float64()), [col]: vec }), 'stream'));
      const r = await asof.req('POST', '/tables/accounts/rows', ipc, { 'content-type': 'application/vnd.apache.arrow.stream' });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'ASOF_INVALID_ROW');
      assert.deepEqual([r.body.error.details[0].row, r.body.error.details[0].field], [bad, col]);
      assert.equal(r.body.error.message, `row ${bad}: column "${col}": at ${path}: the name "__proto__" is reserved (an Arrow map key); nothing was written`);
      const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 'accounts', arrow_ipc: ipc }]);
      assert.equal(err?.code, 3, col);
      assert.equal(asofError(err!).message, `message 0: ${r.body.error.message}`);
    }
    assert.equal(await end('accounts'), before, 'nothing was written');
    // Other keys still write, as sent.
    const ok = Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray(['m9']), balance: A.vectorFromArray([1], new A.Float64()), meta: A.vectorFromArray([new Map([['proto', 1], ['constructor', 2]])], new A.Map_(entries(new A.Int32()))) }), 'stream'));
    const r = await asof.req('POST', '/tables/accounts/rows', ok, { 'content-type': 'application/vnd.apache.arrow.stream' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((await asof.req('GET', '/tables/accounts/rows/m9')).body.row.meta, { proto: 1, constructor: 2 });
  });

  test('stream-level mistakes: no table, two tables, two row forms, unknown table, too many rows', async () => {
    const noTable = await stream(asof.ingest, 'WriteRows', [{ rows: [row('x', 1)] }]);
    assert.equal(noTable.err?.code, 3);
    await asof.req('PUT', '/tables/other', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }] });
    const twoTables = await stream(asof.ingest, 'WriteRows', [{ table: 'accounts', rows: [row('x', 1)] }, { table: 'other', rows: [{ columns: { id: { string_value: 'x' } } }] }]);
    assert.equal(twoTables.err?.code, 3);
    assert.match(twoTables.err!.details, /one stream writes one table/);
    const twoForms = await stream(asof.ingest, 'WriteRows', [{ table: 'accounts', rows: [row('x', 1)], ndjson: '{"id":"y","balance":1}' }]);
    assert.equal(twoForms.err?.code, 3);
    const unknown = await stream(asof.ingest, 'WriteRows', [{ table: 'nope', rows: [row('x', 1)] }]);
    assert.equal(unknown.err?.code, 5, 'NOT_FOUND');
    assert.equal(asofError(unknown.err!).code, 'ASOF_TABLE_NOT_FOUND');
    const tooMany = await stream(asof.ingest, 'WriteRows', [{ table: 'accounts', rows: Array.from({ length: 6 }, (_, i) => row(`m${i}`, i)) }]);
    assert.equal(tooMany.err?.code, 8, 'RESOURCE_EXHAUSTED');
    assert.equal(asofError(tooMany.err!).code, 'ASOF_PAYLOAD_TOO_LARGE');
    const empty = await stream(asof.ingest, 'WriteRows', []);
    assert.deepEqual(answer(empty.res), { count: '0', first_offset: undefined, last_offset: undefined, token: {}, messages: '0' }, 'an empty stream writes nothing and has no offsets');
  });

  test('idempotency keys make a resent message a no-op; reused with other rows it is ALREADY_EXISTS', async () => {
    const msg = { table: 'accounts', rows: [row('idem', 1)], idempotency_key: 'k-1' };
    const first = await stream(asof.ingest, 'WriteRows', [msg]);
    const before = await end('accounts');
    const again = await stream(asof.ingest, 'WriteRows', [msg]);
    assert.deepEqual(again.res, first.res);
    assert.equal(await end('accounts'), before, 'the resent message wrote nothing');
    const other = await stream(asof.ingest, 'WriteRows', [{ ...msg, rows: [row('idem', 2)] }]);
    assert.equal(other.err?.code, 6, 'ALREADY_EXISTS');
    assert.equal(asofError(other.err!).code, 'ASOF_CONFLICT');
  });

  test("a message's bytes count in the write byte budget while it is written, and are given back", async () => {
    const gate = asof.admission.gates.writes;
    let hold!: () => void;
    const held = new Promise<void>((r) => (hold = r));
    let committing!: () => void;
    const inCommit = new Promise<void>((r) => (committing = r));
    // A commit waits for its subscribers before it is answered: this one holds the message's write open.
    const unsubscribe = asof.services.engine.table('accounts').subscribe(async () => {
      committing();
      await held;
    });
    try {
      const msg = { table: 'accounts', rows: [row('budget', 1, { meta: { json_value: JSON.stringify({ pad: 'x'.repeat(5000) }) } })] };
      const size = (loadProtos()['asof.v1.IngestService'] as grpc.ServiceDefinition).WriteRows.requestSerialize(msg).length;
      const before = gate.activeBytes;
      const call = stream(asof.ingest, 'WriteRows', [msg]);
      await inCommit;
      assert.equal(gate.activeBytes - before, size, 'the message is charged while it is written');
      hold();
      const { err } = await call;
      assert.equal(err, undefined, err?.details);
      assert.equal(gate.activeBytes, before, 'and given back once written');
    } finally {
      unsubscribe();
      hold();
    }
  });
});
