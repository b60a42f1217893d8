/**
 * Training-set writers aborted (the request failed part way, e.g. on a bad
 * entity row) while their file stream still has a write under way: the abort
 * ends, and the stream's ERR_STREAM_DESTROYED never escapes as an uncaught
 * exception (which ends a server process). Before: an 'error' with no
 * listener for the text formats (a flaky failure of timestamp-range.test.ts),
 * and an Arrow abort that never resolved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openWriter, type OutputFormat } from '../../src/offline/writers.js';

const COLUMNS = [{ name: 'a', type: { kind: 'int64' as const } }];

for (const format of ['json', 'ndjson', 'csv', 'arrow'] as OutputFormat[]) {
  test(`${format}: an abort with a write under way ends, and nothing is thrown at the process`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'asof-writers-'));
    const uncaught: unknown[] = [];
    const record = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', record);
    try {
      for (let i = 0; i < 48; i++) {
        const w = await openWriter(format, join(dir, `${i}.out`), COLUMNS as never, { token: {} });
        // Every other time a batch that fits the stream's buffer: write() resolves while the file write is still under
        // way. Then a few turns (0 to 7), so that the abort lands at each point of the file's opening and first write.
        if (i % 2) await w.write({ n: 50, columns: [Array.from({ length: 50 }, (_, k) => k) as never] });
        for (let t = 0; t < (i >> 1) % 8; t++) await new Promise((r) => setImmediate(r));
        const ended = await Promise.race([w.abort().then(() => true), new Promise((r) => setTimeout(() => r(false), 2000))]);
        assert.equal(ended, true, `abort ${i} ended`);
      }
      // Errors of destroyed streams are emitted on later ticks.
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      process.off('uncaughtException', record);
      await rm(dir, { recursive: true, force: true });
    }
    assert.deepEqual(uncaught.map(String), []);
  });
}
