/**
 * The cold tier's worker (and with it LanceDB's native library, its threads
 * and the worker's own V8 isolate, ~55 MB of RSS) starts when there is
 * something to tier, not with the server: a fresh server at the default
 * configuration (tiering on) has none of it, nor after defining a table
 * (every server defines its decisions table), until records are tiered.
 *
 * The oracle is the process's own memory map: LanceDB's native module,
 * loaded by whichever thread, is mapped into the process. This file runs in
 * its own process (one per test file) and loads LanceDB nowhere else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { tempDir, testAsof, until } from '../helpers.js';

const lanceMapped = async (): Promise<boolean> => (await readFile('/proc/self/maps', 'utf8')).includes('lancedb');


test('a fresh server with tiering on loads no LanceDB until it has records to tier; then the cold tier starts and tiers them', async () => {
  const dir = await tempDir();
  const asof = await testAsof({ tierAfter: 0 }, { dataDir: dir.path });
  try {
    assert.ok(asof.services.engine.tiering, 'tiering is on');
    // Give an eager start time to show: the worker would load LanceDB within this.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await lanceMapped(), false, 'LanceDB is not loaded by a fresh server (it has defined only its decisions table)');

    const put = await asof.req('PUT', '/tables/t', {
      kind: 'log',
      eventTime: 'ts',
      columns: [
        { name: 'user', type: 'int64', nullable: false },
        { name: 'ts', type: 'timestamp', nullable: false },
      ],
    });
    assert.ok(put.status < 300, `table defined: ${put.status} ${JSON.stringify(put.body)}`);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await lanceMapped(), false, 'nor by defining a table');
    const rows = await asof.req('POST', '/tables/t/rows', { rows: [{ user: 1, ts: 1_700_000_000_000 }, { user: 2, ts: 1_700_000_000_001 }] });
    assert.ok(rows.status < 300, `rows written: ${rows.status}`);
    const t = asof.services.engine.table('t');
    await until('both records tiered', async () => t.tieredEnd === 2);
    assert.equal(await lanceMapped(), true, 'tiering loaded LanceDB');
    await asof.close();
    // Reopened, the table existed before: its cold end is read from Lance at open.
    const again = await testAsof({ tierAfter: 0 }, { dataDir: dir.path });
    try {
      assert.equal(again.services.engine.table('t').tieredEnd, 2, 'the reopened table knows its tiered records');
    } finally {
      await again.close();
    }
  } finally {
    await asof.close().catch(() => undefined);
    await dir.cleanup();
  }
});
