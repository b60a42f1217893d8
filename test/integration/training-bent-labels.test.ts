/**
 * POST /training-sets: inline entity rows are written to the output exactly
 * as sent or refused. Label columns pass through, and JSON.parse read
 * `9007199254740993` as 9007199254740992 and
 * `0.1000000000000000055511151231257827` as 0.1, which the json and csv
 * outputs then carried. Only the body's text shows such a number: it is
 * refused, naming the entity row and the column, wherever it is in the row.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';

const JSON_CT = { 'content-type': 'application/json' };

describe('POST /training-sets: numbers a float64 bends in inline entity rows', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    const { engine, registry, ingest } = asof.services;
    await engine.defineTable('rides', {
      kind: 'log',
      eventTime: 'ts',
      columns: [
        { name: 'driver', type: 'int64', nullable: false },
        { name: 'ts', type: 'timestamp', nullable: false },
        { name: 'fare', type: 'float64', nullable: true },
      ],
    });
    await ingest.write('rides', [{ driver: 7, ts: '2024-03-01T09:00:00.000Z', fare: 10 }]);
    await registry.defineView('ride_stats', { source: 'rides', entity: 'driver', features: [{ name: 'fare', column: 'fare' }] });
  });
  after(() => asof.destroy());

  /** The body with one entity row whose text holds `row` as written (the literal untouched by any JSON encoder). */
  const body = (row: string, format = 'json') => `{"entities":{"rows":[{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z"},${row}]},"features":["ride_stats:fare"],"format":"${format}"}`;

  test('a label, a nested label, the key or the time that a float64 would bend is a 400 naming row 1 and the column; the literal is quoted', async () => {
    const cases: [string, string, RegExp][] = [
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","big":9007199254740993}', 'big', /9007199254740993 would be stored as 9007199254740992/],
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","big":12345678901234567890}', 'big', /12345678901234567890 would be stored as 12345678901234567000/],
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","f":0.1000000000000000055511151231257827}', 'f', /0\.1000000000000000055511151231257827 would be stored as 0\.1\b/],
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","n":{"a":12345678901234567890}}', 'n', /at a: 12345678901234567890 would be stored as/],
      ['{"driver":9007199254740993,"timestamp":"2024-03-01T10:00:00.000Z"}', 'driver', /9007199254740993 would be stored as 9007199254740992/],
      ['{"driver":7,"timestamp":1709287200000.0000001}', 'timestamp', /1709287200000\.0000001 would be stored as 1709287200000/],
    ];
    for (const [row, column, why] of cases) {
      for (const format of ['json', 'csv']) {
        const r = await asof.req('POST', '/training-sets', body(row, format), JSON_CT);
        assert.equal(r.status, 400, `${row} ${format}: ${r.status} ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
        assert.deepEqual([r.body.error.details[0].row, r.body.error.details[0].field], [1, column], row);
        assert.match(r.body.error.message, new RegExp(`^entity row 1: column "${column}": `), row);
        assert.match(r.body.error.message, why, row);
      }
    }
  });

  test('an uploaded NDJSON file of entity rows: the same numbers are refused, naming the row and column', async () => {
    const ND = { 'content-type': 'application/x-ndjson' };
    const first = '{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z"}\n';
    for (const [line, column, why] of [
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","big":9007199254740993}', 'big', /9007199254740993 would be stored as 9007199254740992/],
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","f":0.1000000000000000055511151231257827}', 'f', /would be stored as 0\.1\b/],
      ['{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","n":{"a":12345678901234567890}}', 'n', /at a: 12345678901234567890 would be stored as/],
    ] as const) {
      const r = await asof.req('POST', '/training-sets?features=ride_stats:fare', `${first}${line}\n`, ND);
      assert.equal(r.status, 400, `${line}: ${r.status} ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`);
      assert.deepEqual([r.body.error.details[0].row, r.body.error.details[0].field], [1, column], line);
      assert.match(r.body.error.message, why, line);
    }
    const fine = await asof.req('POST', '/training-sets?features=ride_stats:fare', `${first}{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","big":9007199254740992,"f":0.1}\n`, ND);
    assert.equal(fine.status, 200, JSON.stringify(fine.body));
    assert.deepEqual([fine.body.rows[1].big, fine.body.rows[1].f], [9007199254740992, 0.1]);
  });

  test('numbers a float64 holds as written pass through as sent', async () => {
    const r = await asof.req('POST', '/training-sets', body('{"driver":7,"timestamp":"2024-03-01T10:00:00.000Z","big":9007199254740992,"f":0.1,"e":1e300,"s":"9007199254740993"}'), JSON_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const row = r.body.rows[1];
    assert.deepEqual([row.big, row.f, row.e, row.s, row.fare], [9007199254740992, 0.1, 1e300, '9007199254740993', 10]);
  });
});
