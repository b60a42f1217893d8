/**
 * The NDJSON reader (imports, training-set entity rows) keeps an entry per
 * distinct key while it reads: a file naming millions of distinct keys must be
 * refused at the row that goes too far, not held whole first.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AsofError } from '../../src/errors.js';
import { MAX_INFERRED_COLUMNS, openFile, TypeInference, type TabularFile } from '../../src/offline/files.js';
import { heapAfterGc, tempDir } from '../helpers.js';

const dir = await tempDir('asof-ndjson-keys-');
after(() => dir.cleanup());

/** `lines` rows of `perLine` keys each, no key named twice in the file. */
async function distinctKeys(lines: number, perLine: number): Promise<string> {
  const path = join(dir.path, `keys-${lines}.ndjson`);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const o: Record<string, number> = {};
    for (let k = 0; k < perLine; k++) o[`c${i * perLine + k}`] = 1;
    out.push(JSON.stringify(o));
  }
  await writeFile(path, out.join('\n') + '\n');
  return path;
}

test('a file naming more distinct keys than the cap is refused at the row that names one too many, and holds nothing', async () => {
  // 400,000 distinct keys: read whole, the reader held about 40 MB of key entries for them.
  const path = await distinctKeys(40_000, 10);
  const before = heapAfterGc();
  let file: TabularFile | undefined;
  let error: unknown;
  try {
    file = await openFile(path, 'ndjson');
  } catch (e) {
    error = e;
  }
  const held = heapAfterGc() - before;
  assert.ok(held < 8e6, `the reader holds ${(held / 1e6).toFixed(1)} MB after reading (${file?.columns.length ?? 0} columns)`);
  await file?.close();
  assert.ok(error instanceof AsofError, String(error));
  assert.equal(error.code, 'ASOF_INVALID_ROW');
  assert.deepEqual((error.details as any[]).map((d) => [d.row, d.field]), [[MAX_INFERRED_COLUMNS / 10, `c${MAX_INFERRED_COLUMNS}`]]);
  assert.match(error.message, new RegExp(`^row ${MAX_INFERRED_COLUMNS / 10}: column "c${MAX_INFERRED_COLUMNS}": .*at most ${MAX_INFERRED_COLUMNS} columns`));
});

test('with the columns given, the first other key is refused at its row', async () => {
  const path = join(dir.path, 'table.ndjson');
  await writeFile(path, '{"a": 1}\n{"b": 2}\n\n{"a": 3, "nick": "x"}\n{"zz": 1}\n');
  await assert.rejects(openFile(path, 'ndjson', { columns: ['a', 'b'] }), (e: AsofError) => {
    assert.equal(e.code, 'ASOF_INVALID_ROW');
    assert.deepEqual(e.details, [{ row: 2, field: 'nick', reason: 'unknown column (the columns are a, b)' }]);
    return true;
  });
});

test('inline JSON rows are capped the same way', () => {
  const inf = new TypeInference();
  const row: Record<string, number> = {};
  for (let k = 0; k < MAX_INFERRED_COLUMNS; k++) row[`k${k}`] = k;
  inf.add(row, 0);
  assert.equal(inf.columns().length, MAX_INFERRED_COLUMNS);
  assert.throws(() => inf.add({ k0: 1, extra: 2 }, 1), (e: AsofError) => (e.details as any[])[0].row === 1 && (e.details as any[])[0].field === 'extra');
});
