/**
 * Values with no exact form are refused, not bent: Arrow decimals, binary and
 * intervals (Arrow gives them as raw words or bytes, once stored as lists of
 * numbers), and numbers inside a json value that a float64 does not hold as
 * sent (12345678901234567890, once stored as 12345678901234567000), over REST
 * JSON, NDJSON, Arrow and gRPC WriteRows. Each refusal names row and column,
 * and the request writes nothing; numbers a float64 holds are stored exactly.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import { asofError, grpcAsof, stream, type GrpcAsof } from './grpc-helpers.js';

const T = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'j', type: 'json' },
    { name: 'f', type: 'float64' },
    { name: 'i', type: 'int64' },
    { name: 'lj', type: 'list<json>' },
    { name: 'st', type: 'struct<a:json,b:float64>' },
    { name: 'v', type: 'vector<2>' },
    { name: 'ts', type: 'timestamp' },
  ],
};
const JSON_CT = { 'content-type': 'application/json' };
const NDJSON_CT = { 'content-type': 'application/x-ndjson' };
const ARROW_CT = { 'content-type': 'application/vnd.apache.arrow.stream' };

/** An Arrow stream of `id` (int64, 0..n-1) and one column `name` holding `vec`. */
const arrowWith = (name: string, vec: A.Vector): Buffer =>
  Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray(Array.from({ length: vec.length }, (_, i) => BigInt(i)), new A.Int64()), [name]: vec }), 'stream'));
/** Decimal(precision 10, scale 2, 128-bit) values given as their unscaled integers (12345 is 123.45). */
const decimals = (unscaled: (bigint | null)[]): A.Vector => {
  const words = new Uint32Array(unscaled.length * 4);
  const valid = new Uint8Array(Math.ceil(unscaled.length / 8));
  unscaled.forEach((u, k) => {
    if (u === null) return;
    valid[k >> 3] |= 1 << (k & 7);
    const two = BigInt.asUintN(128, u);
    for (let w = 0; w < 4; w++) words[k * 4 + w] = Number((two >> BigInt(32 * w)) & 0xffffffffn);
  });
  return A.makeVector(A.makeData({ type: new A.Decimal(2, 10, 128), length: unscaled.length, data: words, nullBitmap: valid }));
};

describe('values with no exact form are refused, not bent', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof();
    assert.equal((await asof.req('PUT', '/tables/ev', T)).status, 201);
  });
  after(() => asof.destroy());

  const latest = async (): Promise<number> => (await asof.req('GET', '/tables/ev')).body.latestOffset;
  /** A 400 ASOF_INVALID_ROW naming `row` and `field`, and nothing written. */
  const refused = async (res: { status: number; body: any }, row: number, field: string, before: number): Promise<string> => {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'ASOF_INVALID_ROW', JSON.stringify(res.body));
    assert.equal(res.body.error.details[0].row, row, JSON.stringify(res.body));
    assert.equal(res.body.error.details[0].field, field, JSON.stringify(res.body));
    assert.equal(await latest(), before, 'a refused request writes nothing');
    return res.body.error.message;
  };
  /** The `column` of the newest record. */
  const newest = async (column: string): Promise<unknown> => {
    const at = await latest();
    const r = await asof.req('GET', `/tables/ev/changelog?from=${at}&limit=1`);
    return r.body.records[0].row[column];
  };

  test('an Arrow Decimal into json or float64 is a 400 naming row, column and the Arrow type; nothing is written', async () => {
    const before = await latest();
    for (const column of ['f', 'j']) {
      // Row 0 is null (nothing to refuse there); row 1 holds 123.45, row 2 -1.00.
      const m = await refused(await asof.req('POST', '/tables/ev/rows', arrowWith(column, decimals([null, 12345n, -100n])), ARROW_CT), 1, column, before);
      assert.match(m, /^row 1: column "\w+": Arrow type Decimal\[10e\+2\] has no exact form/);
    }
    // Inside a list or struct too.
    const listOf = A.makeVector(A.makeData({ type: new A.List(new A.Field('item', new A.Decimal(2, 10, 128))), length: 1, valueOffsets: new Int32Array([0, 1]), child: decimals([12345n]).data[0] }));
    const m = await refused(await asof.req('POST', '/tables/ev/rows', arrowWith('lj', listOf), ARROW_CT), 0, 'lj', before);
    assert.match(m, /Arrow type List<Decimal\[10e\+2\]> \(holding Decimal\[10e\+2\]\)/);
  });

  test('Arrow Binary, LargeBinary, FixedSizeBinary and intervals into json are refused naming the type', async () => {
    const before = await latest();
    const bytes = [new Uint8Array([104, 105])];
    const cases: [A.Vector, RegExp][] = [
      [A.vectorFromArray(bytes, new A.Binary()), /Arrow type Binary has/],
      [A.vectorFromArray(bytes, new A.LargeBinary()), /Arrow type LargeBinary has/],
      [A.makeVector(A.makeData({ type: new A.FixedSizeBinary(2), length: 1, data: bytes[0] })), /Arrow type FixedSizeBinary\[2\] has/],
      [A.makeVector(A.makeData({ type: new A.IntervalDayTime(), length: 1, data: new Int32Array([1, 2]) })), /Arrow type Interval<DAY_TIME> has/],
    ];
    for (const [vec, reason] of cases) assert.match(await refused(await asof.req('POST', '/tables/ev/rows', arrowWith('j', vec), ARROW_CT), 0, 'j', before), reason);
  });

  test('Arrow types with an exact form still write: lists, structs, dictionary strings, big int64, µs timestamps', async () => {
    const table = new A.Table({
      id: A.vectorFromArray([BigInt(2) ** 60n], new A.Int64()),
      j: A.vectorFromArray(['hi'], new A.Dictionary(new A.Utf8(), new A.Int32())),
      lj: A.vectorFromArray([[1.5, 2]], new A.List(new A.Field('item', new A.Float64()))),
      st: A.vectorFromArray([{ a: 1, b: 0.25 }], new A.Struct([new A.Field('a', new A.Int32()), new A.Field('b', new A.Float64())])),
      i: A.vectorFromArray([BigInt(2) ** 62n], new A.Int64()),
      v: A.vectorFromArray([[0.5, -2]], new A.FixedSizeList(2, new A.Field('item', new A.Float32()))),
      ts: A.makeVector(A.makeData({ type: new A.TimestampMicrosecond(), length: 1, data: new BigInt64Array([1_700_000_000_000_999n]) })),
    });
    const r = await asof.req('POST', '/tables/ev/rows', Buffer.from(A.tableToIPC(table, 'stream')), ARROW_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await newest('j'), 'hi');
    assert.deepEqual(await newest('lj'), [1.5, 2]);
    assert.deepEqual(await newest('st'), { a: 1, b: 0.25 });
    assert.equal(await newest('i'), String(2n ** 62n));
    assert.deepEqual(await newest('v'), [0.5, -2]);
    assert.equal(await newest('ts'), '2023-11-14T22:13:20.000Z');
  });

  test('an integer beyond 2^53 inside json is a 400 over REST JSON and NDJSON naming row, column and path; nothing is written', async () => {
    const before = await latest();
    const json = await refused(await asof.req('POST', '/tables/ev/rows', '{"rows":[{"id":1,"j":1},{"id":2,"j":{"x":12345678901234567890}}]}', JSON_CT), 1, 'j', before);
    assert.equal(json, 'row 1: column "j": at x: 12345678901234567890 would be stored as 12345678901234567000, as a JSON number is held as a float64 (integers beyond 2^53 must be sent as strings); nothing was written');
    const nd = await refused(await asof.req('POST', '/tables/ev/rows', '{"id":1}\n\n{"id":2,"j":[1,-12345678901234567890]}\n', NDJSON_CT), 1, 'j', before);
    assert.match(nd, /^row 1: column "j": at 1: -12345678901234567890 would be stored as -12345678901234567000/);
    // Inside a list<json> item and a struct's json field; a decimal with more digits than a float64 keeps.
    await refused(await asof.req('POST', '/tables/ev/rows', '{"rows":[{"id":1,"lj":[1,{"y":[98765432109876543210]}]}]}', JSON_CT), 0, 'lj[]', before);
    const st = await refused(await asof.req('POST', '/tables/ev/rows', '{"id":1,"st":{"a":0.1000000000000000055511151231257827,"b":1}}\n', NDJSON_CT), 0, 'st.a', before);
    assert.match(st, /0\.1000000000000000055511151231257827 would be stored as 0\.1, .*significant digits/);
  });

  test('an integer beyond 2^53 inside a gRPC json_value is refused naming row and column; nothing is written', async () => {
    const before = await latest();
    const { err } = await stream(asof.ingest, 'WriteRows', [
      { table: 'ev', rows: [{ columns: { id: { int64_value: '1' } } }, { columns: { id: { int64_value: '2' }, j: { json_value: '{"x":12345678901234567890}' } } }] },
    ]);
    assert.ok(err);
    const e = asofError(err);
    assert.equal(e.code, 'ASOF_INVALID_ROW');
    assert.match(e.message, /row 1: column "j": json_value at x: 12345678901234567890 would be stored as 12345678901234567000.*integers beyond 2\^53 must be sent as strings/);
    // The same text as WriteRows' ndjson form.
    const nd = await stream(asof.ingest, 'WriteRows', [{ table: 'ev', ndjson: '{"id":1,"j":12345678901234567890}\n' }]);
    assert.match(asofError(nd.err!).message, /row 0: column "j": 12345678901234567890 would be stored as/);
    assert.equal(await latest(), before);
  });

  test('numbers a float64 holds are stored exactly, in json and elsewhere; other columns keep their own rules', async () => {
    const edge = [9007199254740992, -9007199254740992, 1e300, 0.1, 5e-324, 1.7976931348623157e308, 12345678901234567000];
    const text = '[9007199254740992,-9007199254740992,1e300,0.1,5e-324,1.7976931348623157e308,12345678901234567000]';
    let r = await asof.req('POST', '/tables/ev/rows', `{"rows":[{"id":1,"j":${text},"f":12345678901234567890}]}`, JSON_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await newest('j'), edge);
    // float64 takes the nearest double, as before; the long literal in a string stays a string.
    assert.equal(await newest('f'), 12345678901234567000);
    r = await asof.req('POST', '/tables/ev/rows', `{"id":2,"j":{"s":"12345678901234567890","v":${text}}}\n`, NDJSON_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await newest('j'), { s: '12345678901234567890', v: edge });
    const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 'ev', rows: [{ columns: { id: { int64_value: '3' }, j: { json_value: text } } }] }]);
    assert.equal(err, undefined);
    assert.deepEqual(await newest('j'), edge);
    // int64 keeps its refusal of numbers beyond 2^53.
    const before = await latest();
    const m = await refused(await asof.req('POST', '/tables/ev/rows', '{"rows":[{"id":4,"i":12345678901234567890}]}', JSON_CT), 0, 'i', before);
    assert.match(m, /integers beyond 2\^53 must be sent as strings/);
  });
});
