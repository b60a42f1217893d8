/**
 * Issue 13's findings 1-15, one test each: a value is stored exactly or
 * refused with a 400 in asof's shape; a refused request writes nothing and
 * never stops the table; framework errors take asof's shape too.
 * Table `p` is the issue's: pk, `id int64`, `s string`, `j json`, `ts timestamp`.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import { testAsof, type TestAsof } from '../helpers.js';

const P = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 's', type: 'string' },
    { name: 'j', type: 'json' },
    { name: 'ts', type: 'timestamp' },
  ],
};
const D = { kind: 'pk', primaryKey: ['driver_id'], columns: [{ name: 'driver_id', type: 'int64', nullable: false }, { name: 'city', type: 'string' }] };
const JSON_CT = { 'content-type': 'application/json' };
const ARROW_CT = { 'content-type': 'application/vnd.apache.arrow.stream' };
/** An Arrow IPC stream of columns `id` (int64) and `name` (utf8, one value per id). */
const arrowStream = (ids: number[], name: string, texts: string[]): Buffer =>
  Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray(ids.map(BigInt), new A.Int64()), [name]: A.vectorFromArray(texts, new A.Utf8()) }), 'stream'));

describe('input safety: issue 13 findings', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/p', P)).status, 201);
    assert.equal((await asof.req('PUT', '/tables/d', D)).status, 201);
  });
  after(() => asof.destroy());

  const latest = async (t = 'p'): Promise<number> => (await asof.req('GET', `/tables/${t}`)).body.latestOffset;
  /** Asserts the error shape and that nothing was written to `table`. */
  const refused = async (res: { status: number; body: any }, status: number, code: string, table = 'p', before?: number): Promise<any> => {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.error.code, code, JSON.stringify(res.body));
    assert.equal(typeof res.body.error.message, 'string');
    if (before !== undefined) assert.equal(await latest(table), before, 'a refused request writes nothing');
    return res.body.error;
  };
  const writeOk = async (row: Record<string, unknown>): Promise<void> => {
    const r = await asof.req('POST', '/tables/p/rows', { rows: [row] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const getRow = async (id: number): Promise<any> => (await asof.req('GET', `/tables/p/rows/${id}`)).body.row;

  test('1: a json value nested 6,000 deep is a 400 naming row and column, and the table keeps accepting writes', async () => {
    const before = await latest();
    const body = '{"rows":[{"id":1,"s":"ok"},{"id":2,"j":' + '['.repeat(6000) + ']'.repeat(6000) + '}]}';
    const e = await refused(await asof.req('POST', '/tables/p/rows', body, JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.equal(e.details[0].row, 1);
    assert.equal(e.details[0].field, 'j');
    assert.match(e.message, /nested more than 100 levels/);
    // The same over NDJSON; then the table still writes (no "stopped accepting writes").
    const nd = '{"id":2,"j":' + '{"a":'.repeat(6000) + '1' + '}'.repeat(6000) + '}\n';
    await refused(await asof.req('POST', '/tables/p/rows', nd, { 'content-type': 'application/x-ndjson' }), 400, 'ASOF_INVALID_ROW', 'p', before);
    await writeOk({ id: 1, s: 'still writes' });
    assert.equal((await getRow(1)).s, 'still writes');
    // 100 levels is the limit, and is stored exactly.
    const deep = JSON.parse('['.repeat(100) + ']'.repeat(100));
    await writeOk({ id: 3, j: deep });
    assert.deepEqual((await getRow(3)).j, deep);
  });

  test('2: CSV header is the first line, names are columns of the table, field counts are checked (row named)', async () => {
    const before = await latest('d');
    const extra = await refused(await asof.req('POST', '/tables/d/import', 'driver_id,city\n3301,a\n3302,b\n3303,c\n3304,d,EXTRA\n', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
    assert.match(extra.message, /line 5 \(row 3\): expected 2 fields .*found 3/);
    assert.equal(extra.details[0].row, 3);
    const unknown = await refused(await asof.req('POST', '/tables/d/import', 'totally_unknown_column\n', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
    assert.match(unknown.message, /column "totally_unknown_column": unknown column \(table "d" has driver_id, city\)/);
    const short = await refused(await asof.req('POST', '/tables/d/import', 'driver_id,city\n1,a\n2\n', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
    assert.equal(short.details[0].row, 1);
    await refused(await asof.req('POST', '/tables/d/import', '', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
    // A good file is read with its first line as the header, CRLF and quoted newlines included.
    const ok = await asof.req('POST', '/tables/d/import', 'city,driver_id\r\n"x\r\ny",1\r\n"a ""b""",2\r\n', { 'content-type': 'text/csv' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.rows, 2);
    assert.equal((await asof.req('GET', '/tables/d/rows/1')).body.row.city, 'x\r\ny');
    assert.equal((await asof.req('GET', '/tables/d/rows/2')).body.row.city, 'a "b"');
  });

  test('3: an unterminated quote in a CSV file is a 400 and writes nothing', async () => {
    const before = await latest('d');
    const e = await refused(await asof.req('POST', '/tables/d/import', 'driver_id,city\n3201,"abc\n3202,d\n', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
    assert.match(e.message, /no closing quote/);
    await refused(await asof.req('POST', '/tables/d/import', 'driver_id,city\n3201,"ab"c\n', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
    await refused(await asof.req('POST', '/tables/d/import', 'driver_id,"city\n3201,a\n', { 'content-type': 'text/csv' }), 400, 'ASOF_INVALID_ROW', 'd', before);
  });

  test('4: a text/plain body is 415 ASOF_UNSUPPORTED_MEDIA_TYPE on every JSON route', async () => {
    const before = await latest();
    for (const [method, url] of [
      ['POST', '/tables/p/rows'],
      ['PUT', '/tables/x'],
      ['PUT', '/feature-services/x'],
      ['PUT', '/feature-views/x'],
      ['POST', '/features'],
      ['POST', '/training-sets'],
    ]) {
      const e = await refused(await asof.req(method, url, '{"rows":[]}', { 'content-type': 'text/plain' }), 415, 'ASOF_UNSUPPORTED_MEDIA_TYPE');
      assert.match(e.message, /text\/plain/, url);
    }
    // A media type another route accepts (NDJSON) is refused by a JSON-only route, not handed to it.
    await refused(await asof.req('PUT', '/tables/x', '{"kind":"pk"}\n', { 'content-type': 'application/x-ndjson' }), 415, 'ASOF_UNSUPPORTED_MEDIA_TYPE');
    assert.equal((await asof.req('GET', '/tables/x')).status, 404);
    assert.equal(await latest(), before);
  });

  test('5: POST /features with entities nested 10,000 deep is a 400', async () => {
    const body = '{"entities":[' + '['.repeat(10_000) + ']'.repeat(10_000) + '],"features":["v:f"]}';
    const e = await refused(await asof.req('POST', '/features', body, JSON_CT), 400, 'ASOF_INVALID_ARGUMENT');
    assert.match(e.message, /^body\.entities\.0/);
    assert.match(e.message, /nested more than 128 levels/);
  });

  test('6: a lone surrogate is refused with 400 on every path; a valid pair is stored exactly', async () => {
    const before = await latest();
    const e = await refused(await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":4,"s":"a\\ud800b"}]}', JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.equal(e.details[0].field, 's');
    assert.match(e.message, /lone surrogate \(\\ud800\)/);
    await refused(await asof.req('POST', '/tables/p/rows', '{"id":4,"s":"\\udc00"}\n', { 'content-type': 'application/x-ndjson' }), 400, 'ASOF_INVALID_ROW', 'p', before);
    await refused(await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":4,"j":{"k":["\\ud800"]}}]}', JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    await refused(await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":4,"j":{"\\ud800":1}}]}', JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    // A surrogate pair is one character (U+1F600), stored and returned as sent.
    await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":4,"s":"\\ud83d\\ude00","j":{"e":"\\ud83d\\ude00"}}]}', JSON_CT);
    const row = await getRow(4);
    assert.equal(row.s, '\u{1F600}');
    assert.equal(row.j.e, '\u{1F600}');
  });

  test('7: bytes that are not UTF-8 are refused with 400 (JSON, NDJSON, NDJSON and CSV files)', async () => {
    const before = await latest();
    const bad = (pre: string, post: string): Buffer => Buffer.concat([Buffer.from(pre), Buffer.from([0xff, 0xfe]), Buffer.from(post)]);
    const e = await refused(await asof.req('POST', '/tables/p/rows', bad('{"rows":[{"id":5,"s":"', '"}]}'), JSON_CT), 400, 'ASOF_INVALID_ARGUMENT', 'p', before);
    assert.match(e.message, /not valid UTF-8 \(byte 22: 0xff\)/);
    await refused(await asof.req('POST', '/tables/p/rows', bad('{"id":5,"s":"', '"}\n'), { 'content-type': 'application/x-ndjson' }), 400, 'ASOF_INVALID_ARGUMENT', 'p', before);
    await refused(await asof.req('POST', '/tables/p/import', bad('{"id":5,"s":"', '"}\n'), { 'content-type': 'application/x-ndjson' }), 400, 'ASOF_INVALID_ARGUMENT', 'p', before);
    // Arrow: the text bytes of a utf8 column (the marker "Zq" replaced by 0xff 0xfe).
    const arrow = arrowStream([5], 's', ['aZqb']);
    const at = arrow.indexOf('Zq');
    arrow[at] = 0xff;
    arrow[at + 1] = 0xfe;
    const ea = await refused(await asof.req('POST', '/tables/p/rows', arrow, ARROW_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.match(ea.message, /column "s": the text is not valid UTF-8/);
    const csv = await asof.req('POST', '/tables/p/import', bad('id,s\n5,', '\n'), { 'content-type': 'text/csv' });
    assert.equal(csv.status, 400, JSON.stringify(csv.body));
    assert.equal(await latest(), before);
    await writeOk({ id: 5, s: 'é€😀' });
    assert.equal((await getRow(5)).s, 'é€😀');
  });

  test('8: 1e999 inside a json value is a 400, not stored as null', async () => {
    const before = await latest();
    const e = await refused(await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":6,"j":{"x":1e999}}]}', JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.equal(e.details[0].field, 'j');
    assert.match(e.message, /at x: Infinity is not a finite number/);
    await refused(await asof.req('POST', '/tables/p/rows', '{"id":6,"j":[-1e999]}\n', { 'content-type': 'application/x-ndjson' }), 400, 'ASOF_INVALID_ROW', 'p', before);
    await writeOk({ id: 6, j: { x: 1.7976931348623157e308 } });
    assert.deepEqual((await getRow(6)).j, { x: 1.7976931348623157e308 });
  });

  test('9: fractional epoch milliseconds are a 400, not truncated', async () => {
    const before = await latest();
    const e = await refused(await asof.req('POST', '/tables/p/rows', { rows: [{ id: 7, ts: 1.5 }] }), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.equal(e.details[0].field, 'ts');
    assert.match(e.message, /whole number, got 1.5/);
    await writeOk({ id: 7, ts: 1767225600123 });
    assert.equal((await getRow(7)).ts, '2026-01-01T00:00:00.123Z');
  });

  test('10: table names of up to the documented 128 characters work', async () => {
    const name = 't' + 'x'.repeat(127);
    const def = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }] };
    assert.equal((await asof.req('PUT', `/tables/${'t' + 'y'.repeat(100)}`, def)).status, 201);
    assert.equal((await asof.req('PUT', `/tables/${name}`, def)).status, 201);
    assert.equal((await asof.req('POST', `/tables/${name}/rows`, { rows: [{ id: 1 }] })).status, 200);
    assert.deepEqual((await asof.req('GET', `/tables/${name}/rows/1`)).body.row, { id: 1 });
    // 129 characters: refused by the name rule, in asof's shape.
    await refused(await asof.req('PUT', `/tables/${name}z`, def), 400, 'ASOF_INVALID_ARGUMENT');
    // Past the router's parameter limit: asof's shape too, never Fastify's.
    const long = await asof.req('GET', `/tables/${'z'.repeat(5000)}`);
    await refused(long, 400, 'ASOF_INVALID_ARGUMENT');
    assert.ok(!('statusCode' in long.body));
  });

  test('11: framework errors take asof\'s {"error": {code, message}} shape', async () => {
    const bad = await asof.req('GET', '/features/%FF?view=v');
    await refused(bad, 400, 'ASOF_INVALID_ARGUMENT');
    assert.deepEqual(Object.keys(bad.body), ['error']);
    await refused(await asof.req('GET', '/no/such/route'), 404, 'ASOF_NOT_FOUND');
    await refused(await asof.req('POST', '/tables/p/rows', '{"rows": [', JSON_CT), 400, 'ASOF_INVALID_ARGUMENT');
    await refused(await asof.req('POST', '/tables/p/rows', '', JSON_CT), 400, 'ASOF_INVALID_ARGUMENT');
    await refused(await asof.req('POST', '/tables/p/rows', '{}', { 'content-type': 'application/xml' }), 415, 'ASOF_UNSUPPORTED_MEDIA_TYPE');
  });

  test('12: a body over the limit is 413 naming the limit in bytes', async () => {
    const small = await testAsof({ maxBodyBytes: 1000 });
    try {
      assert.equal((await small.req('PUT', '/tables/p', P)).status, 201);
      const res = await small.req('POST', '/tables/p/rows', { rows: Array.from({ length: 100 }, (_, i) => ({ id: i, s: 'xxxxxxxxxx' })) });
      assert.equal(res.status, 413);
      assert.equal(res.body.error.code, 'ASOF_PAYLOAD_TOO_LARGE');
      assert.match(res.body.error.message, /exceeds the limit of 1000 bytes/);
      assert.equal((await small.req('GET', '/tables/p')).body.latestOffset, -1);
    } finally {
      await small.destroy();
    }
  });

  test('13: a __proto__ key is a 400 saying the name is reserved (valid JSON, not "not valid JSON")', async () => {
    const before = await latest();
    const e = await refused(await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":8},{"id":9,"__proto__":{"s":"x"}}]}', JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.deepEqual([e.details[0].row, e.details[0].field], [1, '__proto__']);
    assert.match(e.message, /"__proto__" is reserved/);
    const inJson = await refused(await asof.req('POST', '/tables/p/rows', '{"rows":[{"id":9,"j":{"a":{"__proto__":1}}}]}', JSON_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.match(inJson.message, /reserved/);
    await refused(await asof.req('POST', '/tables/p/rows', '{"id":9,"__proto__":1}\n', { 'content-type': 'application/x-ndjson' }), 400, 'ASOF_INVALID_ROW', 'p', before);
    const arrow = await refused(await asof.req('POST', '/tables/p/rows', arrowStream([9], '__proto__', ['x']), ARROW_CT), 400, 'ASOF_INVALID_ROW', 'p', before);
    assert.match(arrow.message, /"__proto__" is reserved/);
    const def = await refused(await asof.req('PUT', '/tables/q', '{"kind":"pk","__proto__":{"x":1},"columns":[]}', JSON_CT), 400, 'ASOF_INVALID_ARGUMENT');
    assert.match(def.message, /reserved/);
    assert.equal(({} as any).s, undefined, 'no prototype was touched');
  });

  test('14: an upload that is not a Parquet file is a 400 holding no server path', async () => {
    const before = await latest();
    const e = await refused(await asof.req('POST', '/tables/p/import', 'not parquet at all', { 'content-type': 'application/vnd.apache.parquet' }), 400, 'ASOF_INVALID_ARGUMENT', 'p', before);
    const text = JSON.stringify(e);
    assert.match(e.message, /not a Parquet file/);
    assert.ok(!text.includes(asof.dataDir) && !/\/tmp\/|scratch|\.parquet/.test(text), text);
    const csv = await asof.req('POST', '/tables/p/import', 'id,s\n1,"x', { 'content-type': 'text/csv' });
    assert.equal(csv.status, 400);
    assert.ok(!JSON.stringify(csv.body).includes(asof.dataDir) && !JSON.stringify(csv.body).includes('/tmp/'), JSON.stringify(csv.body));
  });
});

test('an import whose Content-Type is another parsed type (an Arrow stream) with ?fileFormat= is 415, not a 500 (found by the fuzzer, seed 1053659137)', async () => {
  const a = await testAsof();
  try {
    await a.req('PUT', '/tables/p', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 's', type: 'string' }] });
    const r = await a.http.inject({ method: 'POST', url: '/tables/p/import?fileFormat=csv', headers: { 'content-type': 'application/vnd.apache.arrow.stream' }, payload: '"9223372036854775808"' });
    assert.equal(r.statusCode, 415, r.body);
    assert.equal(JSON.parse(r.body).error.code, 'ASOF_UNSUPPORTED_MEDIA_TYPE');
    assert.equal((await a.req('GET', '/tables/p')).body.rowCount, 0, 'nothing was written');
  } finally {
    await a.destroy();
  }
});
