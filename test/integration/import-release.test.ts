/**
 * An import that stops part way (a bad row, a failed write) lets go of its
 * upload at once: the scratch file is deleted when the request ends, and a
 * handle still open on it would keep its disk space taken (a full disk stays
 * full, and every other table's writes fail with ENOSPC). Checked in
 * /proc/self/fd, so Linux only.
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { A_TS_EVENTS, failNthDatasync, restoreFileOps } from '../fixtures/changelog-faults.js';
import { tempDir, testAsof, type TestAsof } from '../helpers.js';



/** Open handles of this process on files under `dir` (a deleted one shows as "<path> (deleted)"). */
function handlesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** `n` rows (a = 0..n-1); `bad(i)` rows get a = "x", which an int64 column refuses. */
/** Rows per file: DuckDB reads a file of a megabyte or less whole at once, and closes it; a larger one stays open while the scan goes on. */
const ROWS = 200_000;

const csv = (n: number, bad: (i: number) => boolean = () => false): string => {
  let s = 'a,ts\n';
  for (let i = 0; i < n; i++) s += `${bad(i) ? 'x' : i},${1000 + i}\n`;
  return s;
};
const ndjson = (n: number): string => Array.from({ length: n }, (_, i) => JSON.stringify({ a: i, ts: 1000 + i })).join('\n') + '\n';

async function parquet(n: number): Promise<Buffer> {
  const dir = await tempDir();
  const path = join(dir.path, 'x.parquet');
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    await c.run(`COPY (SELECT i::BIGINT AS a, to_timestamp(1 + i / 1000) AS ts FROM range(${n}) t(i)) TO '${path}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`);
    return await readFile(path);
  } finally {
    c.closeSync();
    db.closeSync();
    await rm(dir.path, { recursive: true, force: true });
  }
}

describe('a failed import releases its upload', () => {
  if (process.platform !== 'linux') return;
  let asof: TestAsof;
  let scratch: string;
  before(async () => {
    // Batches far smaller than DuckDB's chunks (2,048 rows): the write pass stops while the reader is mid-file.
    asof = await testAsof({ maxBatchRows: 100 });
    scratch = asof.services.trainingSetJobs.scratchDir;
  });
  after(() => asof.destroy());
  afterEach(restoreFileOps);

  let n = 0;
  const table = async (): Promise<string> => {
    const name = `rel${n++}`;
    assert.equal((await asof.req('PUT', `/tables/${name}`, A_TS_EVENTS)).status, 201);
    return name;
  };
  /** Changelog records of `t` (one per row of these imports). */
  const count = async (t: string): Promise<number> => asof.services.engine.table(t).endOffset;

  for (const [format, contentType, body] of [
    ['csv', 'text/csv', async () => csv(ROWS)],
    ['parquet', 'application/vnd.apache.parquet', () => parquet(ROWS)],
    // NDJSON is read through a Node stream, which the generator's return closes (20,000 rows: still many reads of 64 KiB).
    ['ndjson', 'application/x-ndjson', async () => ndjson(20_000)],
  ] as const) {
    test(`${format}: a storage failure at the third batch (ENOSPC) leaves no handle on the deleted upload`, async () => {
      const t = await table();
      failNthDatasync(t, 3, 'ENOSPC');
      const res = await asof.req('POST', `/tables/${t}/import`, await body(), { 'content-type': contentType });
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.error.details.resumeAtRow, 200);
      assert.equal(await count(t), 200, 'the two batches before the failure stay written');
      assert.deepEqual(handlesUnder(scratch), [], 'no handle on the scratch folder right after the answer');
    });
  }

  test('csv: the row check stopping at its 20th bad row (past the first chunk) leaves no handle on the deleted upload', async () => {
    const t = await table();
    const res = await asof.req('POST', `/tables/${t}/import`, csv(ROWS, (i) => i >= 5000 && i < 5030), { 'content-type': 'text/csv' });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.details.length, 20);
    assert.equal(res.body.error.details[0].row, 5000);
    assert.equal(await count(t), 0);
    assert.deepEqual(handlesUnder(scratch), [], 'no handle on the scratch folder right after the answer');
  });

  test('the same file imported whole is read to its end: every row written, no handle left', async () => {
    const t = await table();
    const res = await asof.req('POST', `/tables/${t}/import`, csv(5000), { 'content-type': 'text/csv' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(await count(t), 5000);
    assert.deepEqual(handlesUnder(scratch), []);
  });
});
