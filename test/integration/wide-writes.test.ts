/**
 * Writes to wide tables: a cell the body leaves out costs nothing to send but
 * 8 bytes and more in each form the write takes (canonical row, column
 * arrays, Arrow buffers, the frame). A small body of many rows to a table of
 * many nullable columns must be refused by the cell limit
 * (ASOF_MAX_BATCH_CELLS), not worked through; an import sizes its batches by
 * it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';

const wide = (columns: number) => ({
  kind: 'log',
  eventTime: 'ts',
  columns: [{ name: 'ts', type: 'timestamp', nullable: false }, ...Array.from({ length: columns }, (_, i) => ({ name: `f${i}`, type: 'float64' }))],
});

describe('the cell limit', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/wide', wide(300))).status, 201);
  });
  after(() => asof.destroy());

  const latest = async () => (await asof.req('GET', '/tables/wide')).body.latestOffset;

  for (const [what, contentType, encode] of [
    ['JSON (parsed on an ingest thread: 244 KB)', 'application/json', (rows: object[]) => JSON.stringify({ rows })],
    ['NDJSON', 'application/x-ndjson', (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n')],
  ] as const) {
    test(`${what}: 20,000 rows naming one of 301 columns are a 413 naming the limit, and are not worked through`, async () => {
      const body = encode(Array.from({ length: 20_000 }, (_, i) => ({ ts: i + 1 })));
      let peak = 0;
      const base = process.memoryUsage().heapUsed;
      // Sampled while the request runs: worked through, it built about 190 MB (6M cells at ~32 bytes each).
      const sampler = setInterval(() => void (peak = Math.max(peak, process.memoryUsage().heapUsed - base)), 1);
      const res = await asof.req('POST', '/tables/wide/rows', body, { 'content-type': contentType });
      clearInterval(sampler);
      assert.equal(res.status, 413, JSON.stringify(res.body).slice(0, 300));
      assert.equal(res.body.error.code, 'ASOF_PAYLOAD_TOO_LARGE');
      assert.match(res.body.error.message, /at most 2000000 cells .*ASOF_MAX_BATCH_CELLS.*20000 rows x 301 columns = 6020000: send at most 6644 rows per request/);
      assert.deepEqual(res.body.error.details, { maxCells: 2_000_000, cells: 6_020_000, rows: 20_000, columns: 301, maxRows: 6644 });
      assert.equal(await latest(), -1, 'nothing written');
      assert.ok(peak < 100e6, `the refused request grew the heap by ${(peak / 1e6).toFixed(0)} MB`);
    });
  }

  test('at the limit a write goes through', async () => {
    const res = await asof.req('POST', '/tables/wide/rows', { rows: Array.from({ length: 6644 }, (_, i) => ({ ts: i + 1 })) });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
    assert.equal(res.body.count, 6644);
  });
});

test('an import into a wide table is written in batches within the cell limit', async () => {
  // 5 columns and 12 cells: at most 2 rows per commit, though ASOF_MAX_BATCH_ROWS allows 100,000.
  const asof = await testAsof({ maxBatchCells: 12 });
  try {
    assert.equal((await asof.req('PUT', '/tables/w', wide(4))).status, 201);
    const nd = Array.from({ length: 7 }, (_, i) => JSON.stringify({ ts: i + 1, f0: i })).join('\n');
    const res = await asof.req('POST', '/tables/w/import', nd, { 'content-type': 'application/x-ndjson' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.rows, res.body.count, res.body.firstOffset, res.body.lastOffset], [7, 7, 0, 6]);
    // Each batch passed the check a direct write of the same rows meets:
    const direct = await asof.req('POST', '/tables/w/rows', { rows: [{ ts: 1 }, { ts: 2 }, { ts: 3 }] });
    assert.equal(direct.status, 413, 'three rows of five columns are 15 cells');
  } finally {
    await asof.destroy();
  }
});
