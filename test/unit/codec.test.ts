import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import { TableSchema, type ColumnDef } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';
import { decodeBatch, decodeIpc, encodeBatch } from '../../src/engine/arrow-codec.js';
import { parseArrowStream } from '../../src/ingest/formats.js';
import { formatTimestamp, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, parseRfc3339, parseTimestamp, timestampProblem } from '../../src/engine/time.js';
import { rng } from '../../support/rng.js';

const schemaOf = (columns: ColumnDef[], kind: 'log' | 'pk' = 'pk', primaryKey = [columns[0].name]) =>
  new TableSchema(defineTable('t', { kind, columns, primaryKey, eventTime: kind === 'log' ? columns[1].name : undefined }, undefined, 0).def);

const ALL = schemaOf([
  { name: 'id', type: 'int64', nullable: false },
  { name: 'ts', type: 'timestamp', nullable: true },
  { name: 'i', type: 'int32', nullable: true },
  { name: 'f', type: 'float32', nullable: true },
  { name: 'd', type: 'float64', nullable: true },
  { name: 'b', type: 'bool', nullable: true },
  { name: 's', type: 'string', nullable: true },
  { name: 'j', type: 'json', nullable: true },
  { name: 'l', type: 'list<int64>', nullable: true },
  { name: 'st', type: 'struct<a:string,b:float64>', nullable: true },
  { name: 'v', type: 'vector<2>', nullable: true },
]);

const roundTrip = (schema: TableSchema, rows: unknown[]) => {
  const { rows: valid, issues } = schema.validate(rows);
  assert.deepEqual(issues, []);
  const changes = Uint8Array.from(valid, (_, i) => i % 4);
  const out = decodeBatch(decodeIpc(encodeBatch(schema.columns, changes, valid)), schema.columns);
  assert.deepEqual([...out.changes], [...changes]);
  return { valid, out: out.rows };
};

test('every type survives encode and decode, including int64 edges, nulls, non-ASCII and long strings', () => {
  const long = 'x'.repeat(40);
  const rows = [
    { id: 0, ts: '1969-12-31T23:59:59.999Z', i: -2147483648, f: 0.5, d: -1e300, b: true, s: '', j: { a: [1, null, 'z'] }, l: [1, '9007199254740993'], st: { a: 'ü', b: 2 }, v: [1, -2] },
    { id: -9007199254740991, ts: 0, i: 2147483647, f: null, d: 0, b: false, s: 'naïve ☃ 𝄞', j: 'plain', l: [], st: { a: null, b: null }, v: null },
    { id: 9007199254740991, ts: MAX_TIMESTAMP_MS, s: long, j: null, l: null, st: null },
    { id: '9007199254740993', ts: MIN_TIMESTAMP_MS, s: long + 'é' },
    { id: '-9223372036854775808', s: 'a' },
    { id: '9223372036854775807', s: long },
    { id: -4294967296, d: 4294967297.5 },
    { id: 4294967295 },
    { id: -1 },
  ];
  const { valid, out } = roundTrip(ALL, rows);
  assert.deepEqual(out, valid.map((r) => Object.fromEntries(ALL.columns.map((c) => [c.name, r[c.name] ?? null]))));
  assert.equal(out[3].id, 9007199254740993n, 'int64 beyond 2^53 stays exact (bigint)');
  assert.equal(out[4].id, -9223372036854775808n);
  assert.equal(out[6].id, -4294967296);
  assert.equal(out[1].s, 'naïve ☃ 𝄞');
  assert.equal(out[0].ts, -1);
});

test('decoded rows read columns added after the batch was written as null', () => {
  const v1 = schemaOf([{ name: 'k', type: 'string', nullable: false }, { name: 'a', type: 'int32', nullable: true }]);
  const v2 = schemaOf([...v1.def.columns, { name: 'b', type: 'string', nullable: true }]);
  const payload = encodeBatch(v1.columns, [0], v1.validate([{ k: 'x', a: 1 }]).rows);
  assert.deepEqual(decodeBatch(decodeIpc(payload), v2.columns).rows, [{ k: 'x', a: 1, b: null }]);
  assert.deepEqual(decodeBatch(decodeIpc(payload), v2.columns, new Set(['k'])).rows, [{ k: 'x' }]);
});

test('the compiled validator agrees with the precise one: bad rows are named, good rows canonical', () => {
  const s = schemaOf([{ name: 'k', type: 'int64', nullable: false }, { name: 't', type: 'timestamp', nullable: false }, { name: 'x', type: 'string', nullable: true }], 'log');
  assert.ok(s.rowCode, 'plain column names are compiled');
  const ok = s.validate([{ k: 1, t: '2024-01-01T00:00:00Z' }, { x: null, t: 5, k: '12' }]);
  assert.deepEqual(ok.issues, []);
  assert.deepEqual(ok.rows, [{ k: 1, t: 1704067200000, x: null }, { k: 12, t: 5, x: null }]);
  const bad = s.validate([{ k: 1, t: 1 }, { k: null, t: 1 }, { k: 1, t: 1, y: 2 }, { k: 1, t: 'soon' }, { k: 1, t: 1, x: undefined }, { t: 1 }]);
  assert.deepEqual(
    bad.issues.map((i) => [i.row, i.field]),
    [
      [1, 'k'],
      [2, 'y'],
      [3, 't'],
      [5, 'k'],
    ],
  );
});

test('column names that are properties of every object are refused', () => {
  for (const name of ['constructor', '__proto__', 'toString']) {
    assert.throws(() => schemaOf([{ name: 'k', type: 'int32', nullable: false }, { name, type: 'int32', nullable: true }]), /reserved/);
  }
});

test("Lance's system column names are refused for new columns; a table that already has one keeps it", () => {
  const k: ColumnDef = { name: 'k', type: 'int32', nullable: false };
  for (const name of ['_rowid', '_rowaddr', '_rowoffset', '_row_created_at_version', '_row_last_updated_at_version', '_distance']) {
    assert.throws(() => schemaOf([k, { name, type: 'int32', nullable: true }]), (e: any) => JSON.stringify(e.details).includes('columns[1].name') && /reserved/.test(e.message + JSON.stringify(e.details)), name);
    const old = defineTable('t', { kind: 'pk', primaryKey: ['k'], columns: [k, { name: '_ok', type: 'int32', nullable: true }] }, undefined, 0).def;
    old.columns[1] = { ...old.columns[1], name };
    const evolved = defineTable('t', { kind: 'pk', primaryKey: ['k'], columns: [...old.columns, { name: 'x', type: 'int32', nullable: true }] }, old, 0);
    assert.equal(evolved.def.columns[1].name, name);
  }
  // Lance takes these (and asof's own search answer has no such field).
  for (const name of ['_score', '_rowId', '_id']) assert.equal(schemaOf([k, { name, type: 'int32', nullable: true }]).def.columns[1].name, name);
});

test('RFC 3339 parsing matches Date.parse where both are defined, and refuses dates that do not exist', () => {
  for (const s of ['2024-02-29T12:34:56Z', '1999-12-31t23:59:59.999z', '2024-06-01T00:00:00.1+05:30', '0001-01-01T00:00:00-23:59', '2024-01-01T00:00:00.123456789Z', '9999-12-31T23:59:59.999Z']) {
    assert.equal(parseRfc3339(s), Date.parse(s), s);
  }
  assert.equal(parseRfc3339('0061-12-09 23:42:39.2Z'), Date.parse('0061-12-09T23:42:39.2Z'), 'a space separator does not change the year');
  for (const s of ['2023-02-29T00:00:00Z', '2024-04-31T00:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01T23:59:60Z', '2024-01-01T00:00:00', '2024-01-01T00:00:00.Z', '2024-01-01T00:00:00+0100', '2024-1-01T00:00:00Z', 'yesterday']) {
    assert.equal(parseTimestamp(s), undefined, s);
  }
  assert.equal(parseTimestamp('1700000000000'), 1700000000000);
  assert.equal(parseTimestamp(1.9), undefined, 'epoch ms must be a whole number: refused, not truncated');
  assert.equal(parseTimestamp(8.64e15 + 1), undefined, 'outside what a Date can format');
});

test('a timestamp is an instant of the years 0001-9999 in UTC (what protobuf Timestamps and Python datetimes hold): each end is accepted and formats as RFC 3339 that parses back; one millisecond beyond is refused, saying so', () => {
  const ends = [
    ['0001-01-01T00:00:00.000Z', -62_135_596_800_000],
    ['9999-12-31T23:59:59.999Z', 253_402_300_799_999],
  ] as const;
  for (const [text, ms] of ends) {
    for (const v of [text, ms, String(ms), new Date(ms)]) assert.equal(parseTimestamp(v), ms, String(v));
    assert.equal(formatTimestamp(ms), text);
    assert.equal(parseTimestamp(formatTimestamp(ms)), ms);
  }
  assert.deepEqual([MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS], ends.map(([, ms]) => ms));
  // Epoch ms, digit text, and RFC 3339 whose offset carries the instant past either end.
  const beyond = [253_402_300_800_000, '253402300800000', -62_135_596_800_001, '9999-12-31T23:59:59.999-00:01', '0001-01-01T00:00:00+01:00', '0001-01-01T00:59:59.999+01:00', '0000-06-15T00:00:00Z', 8.64e15, -8.64e15, '99999999999999999'];
  for (const v of beyond) {
    assert.equal(parseTimestamp(v), undefined, String(v));
    assert.match(timestampProblem(v, String(v)), /is (after 9999-12-31T23:59:59\.999Z|before 0001-01-01T00:00:00\.000Z)( \(epoch ms -?\d+\))?: a timestamp is an instant of the years 0001 to 9999/, String(v));
  }
  assert.equal(parseTimestamp('0001-01-01T01:00:00+01:00'), MIN_TIMESTAMP_MS, 'an offset that lands on the first instant');
  assert.equal(parseTimestamp('9999-12-31T22:59:59.999-01:00'), MAX_TIMESTAMP_MS, 'an offset that lands on the last instant');
  // Other refusals keep their reasons.
  assert.match(timestampProblem(1.5, '1.5'), /whole number/);
  assert.match(timestampProblem('+010000-01-01T00:00:00.000Z', 'x'), /expected an RFC 3339 timestamp or epoch milliseconds, got x/);
});

test('RFC 3339 parsing remembers the last date: runs of one date, date changes and bad times after a good date answer as Date.parse', () => {
  const next = rng(12);
  let at = Date.parse('1969-12-30T00:00:00Z');
  for (let i = 0; i < 20_000; i++) {
    // Mostly seconds apart (runs of one date), now and then days or years on or back.
    at += next() < 0.9 ? Math.floor(next() * 5000) : Math.floor((next() - 0.4) * 40 * 86_400_000 * (next() < 0.1 ? 400 : 1));
    const iso = new Date(at).toISOString();
    if (iso.startsWith('-') || iso.startsWith('+')) continue;
    const offset = next() < 0.2 ? '+05:30' : 'Z';
    const s = offset === 'Z' ? iso : iso.replace('Z', offset);
    assert.equal(parseRfc3339(s), Date.parse(s), s);
    // The same date with a time that does not exist, and a day the month lacks, right after it: refused.
    assert.equal(parseRfc3339(`${s.slice(0, 11)}24${s.slice(13)}`), undefined);
    assert.equal(parseRfc3339(`${s.slice(0, 8)}32${s.slice(10)}`), undefined);
  }
  assert.equal(parseRfc3339('2024-02-29T00:00:00Z'), Date.parse('2024-02-29T00:00:00Z'));
  assert.equal(parseRfc3339('2023-02-29T00:00:00Z'), undefined, 'the year changed: February 29 is checked again');
});

test('Arrow bodies: typed columns are read from their buffers with the same values as before', () => {
  const table = new A.Table({
    i8: A.vectorFromArray([1, null, -3], new A.Int8()),
    u32: A.vectorFromArray([4294967295, 0, 1], new A.Uint32()),
    i64: A.vectorFromArray([1n, -(2n ** 62n), null], new A.Int64()),
    f16: A.vectorFromArray([0.5, 1, null], new A.Float16()),
    ts: A.vectorFromArray([1, null, -1], new A.TimestampMillisecond()),
    tsec: A.vectorFromArray([1000, 2000, null], new A.TimestampSecond()),
    s: A.vectorFromArray(['a', null, 'ü'], new A.Utf8()),
    b: A.vectorFromArray([true, false, null], new A.Bool()),
  });
  assert.deepEqual(parseArrowStream(A.tableToIPC(table, 'stream')), [
    { i8: 1, u32: 4294967295, i64: 1, f16: 0.5, ts: 1, tsec: 1000, s: 'a', b: true },
    { i8: null, u32: 0, i64: -(2n ** 62n), f16: 1, ts: null, tsec: 2000, s: null, b: false },
    { i8: -3, u32: 1, i64: null, f16: null, ts: -1, tsec: null, s: 'ü', b: null },
  ]);
});

test('Arrow bodies: µs and ns timestamps are rounded down to the millisecond from their integers, alone or in a list; dates and seconds read exactly', () => {
  const of = (type: A.DataType, values: bigint[] | Int32Array): A.Vector => A.makeVector({ type, data: values instanceof Int32Array ? values : BigInt64Array.from(values) } as never) as A.Vector;
  const us = of(new A.TimestampMicrosecond(), [253_402_300_799_999_999n, -62_167_219_200_000_001n, -1n, 1_700_000_000_000_999n]);
  const ns = of(new A.TimestampNanosecond(), [1_700_000_000_000_999_999n, -1n, -1_000_001n, 0n]);
  const sec = of(new A.TimestampSecond(), [253_402_300_799n, -62_167_219_200n, -1n, 0n]);
  const day = of(new A.DateDay(), Int32Array.of(2_932_896, -719_528, -1, 0));
  // The last instant of 9999 in µs, and one µs before year 0 (int64 ns span only 1677-2262); 1 ns, 1 µs or 1,000,001 ns before the epoch; 999 µs or 999,999 ns past a ms.
  assert.deepEqual(parseArrowStream(A.tableToIPC(new A.Table({ us, ns, sec, day }), 'stream')), [
    { us: 253_402_300_799_999, ns: 1_700_000_000_000, sec: 253_402_300_799_000, day: 253_402_214_400_000 },
    { us: -62_167_219_200_001, ns: -1, sec: -62_167_219_200_000, day: -62_167_219_200_000 },
    { us: -1, ns: -2, sec: -1000, day: -86_400_000 },
    { us: 1_700_000_000_000, ns: 0, sec: 0, day: 0 },
  ]);
  const list = A.vectorFromArray([[new Date(1000), null, new Date(-1)], null], new A.List(new A.Field('item', new A.TimestampMicrosecond(), true)));
  assert.deepEqual(parseArrowStream(A.tableToIPC(new A.Table({ l: list }), 'stream')), [{ l: [1000, null, -1] }, { l: null }]);
});

test('a changelog payload is a standard Arrow IPC stream: Arrow reads it, and writing what it read gives the same bytes', () => {
  const { valid } = roundTrip(ALL, [
    { id: 1, s: 'a', ts: 5, j: [1], l: [2], st: { a: 'x', b: 1 }, v: [1, 2], b: true },
    { id: 2 },
    { id: 3, d: 2.5, s: 'ü' },
  ]);
  for (const [schema, rows] of [
    [ALL, valid],
    [schemaOf([{ name: 'k', type: 'string', nullable: false }, { name: 'n', type: 'int32', nullable: true }]), [{ k: 'x', n: null }, { k: 'y', n: 7 }]],
  ] as const) {
    const payload = encodeBatch(schema.columns, new Uint8Array(rows.length), rows as never);
    const table = A.tableFromIPC(payload);
    assert.equal(table.numRows, rows.length);
    assert.deepEqual(table.schema.fields.map((f) => f.name), ['_asof_change', ...schema.columns.map((c) => c.name)]);
    const rewritten = A.RecordBatchStreamWriter.writeAll(table.batches).toUint8Array(true);
    assert.deepEqual(Buffer.from(rewritten), Buffer.from(payload));
  }
});

test("decodeIpc builds each column's Data as Arrow's public reader does (flat columns from their buffers in place, nested ones through Arrow's loader)", () => {
  const flat = new A.Table({
    i8: A.vectorFromArray([1, null, -3, 4], new A.Int8()),
    u32: A.vectorFromArray([4294967295, 0, 1, null], new A.Uint32()),
    i64: A.vectorFromArray([1n, -(2n ** 62n), null, 7n], new A.Int64()),
    f16: A.vectorFromArray([0.5, 1, null, -2], new A.Float16()),
    f64: A.vectorFromArray([0.5, null, -1e300, 3], new A.Float64()),
    ts: A.vectorFromArray([1, null, -1, 8.64e15], new A.TimestampMillisecond('UTC')),
    tsec: A.vectorFromArray([1000, 2000, null, 0], new A.TimestampSecond()),
    s: A.vectorFromArray(['a', null, 'ü', ''], new A.Utf8()),
    bin: A.vectorFromArray([Uint8Array.of(1, 2), null, Uint8Array.of(), Uint8Array.of(255)], new A.Binary()),
    b: A.vectorFromArray([true, false, null, true], new A.Bool()),
    none: A.vectorFromArray([1, 2, 3, 4], new A.Int32()),
  });
  const { valid } = roundTrip(ALL, [{ id: 1, s: 'a', ts: 5, j: [1], l: [2], st: { a: 'x', b: 1 }, v: [1, 2], b: true }, { id: 2 }, { id: 3, d: 2.5, s: 'ü' }]);
  const nested = encodeBatch(ALL.columns, new Uint8Array(valid.length), valid);
  const flatPayload = encodeBatch(ALL.columns.slice(0, 7), Uint8Array.of(0, 1, 2), [{ id: 1, ts: null, i: 3, f: 0.5, d: null, b: true, s: 'x' }, { id: 2, ts: 4, i: null, f: null, d: 1, b: null, s: null }, { id: 3, ts: 5, i: 1, f: 2, d: 3, b: false, s: 'ü' }]);
  for (const stream of [A.tableToIPC(flat, 'stream'), nested, flatPayload]) {
    const reference = A.tableFromIPC(stream);
    const mine = decodeIpc(stream);
    assert.equal(mine.numRows, reference.numRows);
    for (const f of reference.schema.fields) {
      const data = mine.column(f.name)!;
      const want = reference.getChild(f.name)!;
      assert.equal(data.length, want.length, f.name);
      assert.equal(data.nullCount, want.nullCount, f.name);
      assert.equal(String(data.type), String(want.type), f.name);
      assert.deepEqual(plain([...new A.Vector([data])]), plain([...want]), f.name);
    }
    assert.equal(mine.column('absent'), undefined);
  }
});

/** Arrow values as plain data (nested vectors, rows and typed arrays as arrays and objects), to compare by value. */
function plain(v: unknown): unknown {
  if (v instanceof A.Vector) return [...v].map(plain);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<unknown>);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries((v as { toJSON?: () => object }).toJSON?.() ?? v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test('rows chosen by index decode from the column buffers to the rows written and to what Arrow\'s public reader reads, on generated data', () => {
  const cols = ALL.columns.filter((c) => !['l', 'st', 'v'].includes(c.name));
  const flatSchema = schemaOf(ALL.def.columns.filter((c) => cols.some((x) => x.name === c.name)));
  const draw = rng(12);
  const pick = <T>(xs: T[]): T => xs[Math.floor(draw() * xs.length)];
  const maybe = <T>(v: T): T | null => (draw() < 0.2 ? null : v);
  const big = ['9007199254740993', '-9223372036854775808', '9223372036854775807'];
  for (let round = 0; round < 40; round++) {
    const n = 1 + Math.floor(draw() * 30);
    const input = Array.from({ length: n }, (_, i) => ({
      id: draw() < 0.1 ? pick(big) : Math.floor((draw() - 0.5) * 2 ** 53),
      ts: maybe(MIN_TIMESTAMP_MS + Math.floor(draw() * (MAX_TIMESTAMP_MS - MIN_TIMESTAMP_MS + 1))),
      i: maybe(Math.floor((draw() - 0.5) * 2 ** 32)),
      f: maybe(pick([0.5, -2, 1024.25])),
      d: maybe((draw() - 0.5) * 1e12),
      b: maybe(draw() < 0.5),
      s: maybe(pick(['', 'u123', 'naïve ☃', 'x'.repeat(13 + i), `k${i}`])),
      j: maybe(pick([{ a: [1, null] }, 'plain', 3, [true]])),
    }));
    const { rows, issues } = flatSchema.validate(input);
    assert.deepEqual(issues, []);
    const changes = Uint8Array.from(rows, () => Math.floor(draw() * 4));
    const payload = encodeBatch(flatSchema.columns, changes, rows);
    const at = rows.map((_, i) => i).filter(() => draw() < 0.5);
    const stored = decodeIpc(payload);
    assert.equal(typeof stored.flat, 'function', 'a flat schema is read from its buffers');
    const got = decodeBatch(stored, flatSchema.columns, undefined, at);
    assert.deepEqual([...got.changes], [...changes], `round ${round}: change types`);
    assert.deepEqual(got.rows, at.map((i) => rows[i]), `round ${round}: rows ${at.join(',')} as written`);
    assert.deepEqual(decodeBatch(stored, flatSchema.columns).rows, rows, `round ${round}: every row`);
    // Arrow's public reader, its values made canonical here (int64 as a number where exact, timestamps as numbers, json parsed).
    const reference = A.tableFromIPC(payload);
    const canonical = (name: string, v: unknown): unknown => {
      if (v === null) return null;
      if (name === 'j') return JSON.parse(v as string);
      if (typeof v === 'bigint') return name === 'ts' || (v >= -(2n ** 53n) && v < 2n ** 53n) ? Number(v) : v;
      return v;
    };
    const fromArrow = at.map((i) => Object.fromEntries(flatSchema.columns.map((c) => [c.name, canonical(c.name, reference.getChild(c.name)!.get(i))])));
    assert.deepEqual(got.rows, fromArrow, `round ${round}: as Arrow's public reader reads them`);
  }
});

test('struct field names follow the column-name rules: a property of every object (or a reserved name) is refused, naming the column and field, at any depth', () => {
  const k: ColumnDef = { name: 'k', type: 'int32', nullable: false };
  for (const [type, field] of [
    ['struct<constructor:int64>', 's.constructor'],
    ['struct<__proto__:int64>', 's.__proto__'],
    ['struct<a:int32,toString:string>', 's.toString'],
    ['list<struct<hasOwnProperty:bool>>', 's[].hasOwnProperty'],
    ['struct<a:struct<valueOf:int32>>', 's.a.valueOf'],
    ['struct<_asof_x:int32>', 's._asof_x'],
    ['struct<_rowid:int32>', 's._rowid'],
    [`struct<${'a'.repeat(129)}:int32>`, `s.${'a'.repeat(129)}`],
  ] as const) {
    assert.throws(
      () => schemaOf([k, { name: 's', type, nullable: true }]),
      (e: any) => e.code === 'ASOF_INVALID_DEFINITION' && e.details[0].field === 'columns[1].type' && e.message.includes(`"${field}"`) && /reserved|must match/.test(e.details[0].reason),
      type,
    );
  }
  assert.equal(schemaOf([k, { name: 's', type: 'struct<construct:int64,_row:int32,proto:string>', nullable: true }]).def.columns[1].type, 'struct<construct:int64,_row:int32,proto:string>');
});

test('a struct reads its own fields only: an inherited property is never a value (a definition stored before the rule above still opens and takes rows)', () => {
  const k: ColumnDef = { name: 'k', type: 'int32', nullable: false };
  const old = defineTable('t', { kind: 'pk', primaryKey: ['k'], columns: [k, { name: 's', type: 'struct<a:int64,b:int64>', nullable: true }] }, undefined, 0).def;
  old.columns[1] = { ...old.columns[1], type: 'struct<constructor:int64,toString:int64>' };
  const s = new TableSchema(old);
  const { rows, issues } = s.validate([{ k: 1, s: {} }, { k: 2, s: { constructor: 5 } }]);
  assert.deepEqual(issues, []);
  assert.deepEqual(rows.map((r) => ({ ...(r.s as object) })), [{ constructor: null, toString: null }, { constructor: 5, toString: null }]);
  // Re-defining the table unchanged, or appending a column, keeps the stored type.
  const evolved = defineTable('t', { kind: 'pk', primaryKey: ['k'], columns: [...old.columns, { name: 'x', type: 'int32', nullable: true }] }, old, 0);
  assert.equal(evolved.def.columns[1].type, 'struct<constructor:int64,toString:int64>');
});
