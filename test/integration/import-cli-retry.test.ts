/**
 * `asof ingest` run again after an import failed part way writes each row
 * once: the server killed with SIGKILL mid-import (over REST), or the CLI
 * itself killed mid-import (--data-dir). Every run sends an Idempotency-Key
 * derived from the table, op, format and file, so the second run of the same
 * command resumes the first instead of writing its rows again.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir, testAsof, until } from '../helpers.js';
import { fetchJson, killAll, readChangelog, readyChild, runCli, type ChildServer } from '../child-server.js';
import { ASOF_CLI, ROOT } from '../../support/child-server.js';
import { A_TS_EVENTS } from '../fixtures/changelog-faults.js';


/** Rows of the file, in batches of BATCH: enough commits that a kill lands between two. */
const ROWS = 200_000;
const BATCH = 2000;
const ENV = { ASOF_MAX_BATCH_ROWS: String(BATCH) };

async function bigCsv(path: string): Promise<void> {
  let s = 'a,ts\n';
  for (let i = 0; i < ROWS; i++) s += `${i},${1_700_000_000_000 + i}\n`;
  await writeFile(path, s);
}

/** Each of 0..ROWS-1 exactly once, in file order, at offsets 0..ROWS-1. */
function assertEachRowOnce(records: Record<string, any>[]): void {
  assert.equal(records.length, ROWS, `the table holds ${records.length} records for a file of ${ROWS} rows`);
  records.forEach((r, i) => {
    if (r.offset !== i || r.row.a !== i) assert.fail(`record ${i}: offset ${r.offset}, a = ${r.row.a}`);
  });
}

describe('asof ingest run again after a failure part way', () => {
  after(killAll);

  test('over REST: the server SIGKILLed mid-import; the failure names the key and says to run the same command again, which writes only the rest', async () => {
    const dir = await tempDir();
    let server: ChildServer | undefined;
    try {
      const file = join(dir.path, 'big.csv');
      await bigCsv(file);
      server = await readyChild(dir.path, ENV);
      assert.equal((await fetchJson(server.url, 'PUT', '/tables/imp3', A_TS_EVENTS)).status, 201);

      const first = runCli(['ingest', 'imp3', file, '--url', server.url]);
      // Killed once some batches are written, not all.
      const url = server.url;
      await until('two batches written', async () => (await fetchJson(url, 'GET', `/tables/imp3/changelog?from=${2 * BATCH}&limit=1`)).body.records.length > 0, 120_000);
      await server.kill('SIGKILL');
      const failed = await first;
      assert.equal(failed.code, 1, failed.stderr);

      server = await readyChild(dir.path, ENV);
      const before = (await readChangelog(server.url, 'imp3')).length;
      assert.ok(before > 0 && before < ROWS, `the kill came part way: ${before} of ${ROWS} rows were written`);

      const again = await runCli(['ingest', 'imp3', file, '--url', server.url]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout), { table: 'imp3', rows: ROWS, count: ROWS, firstOffset: 0, lastOffset: ROWS - 1, token: { imp3: ROWS - 1 } }, 'answered as one whole import');
      assertEachRowOnce(await readChangelog(server.url, 'imp3'));

      const key = /Idempotency-Key "([^"]+)"/.exec(failed.stderr)?.[1];
      assert.ok(key, `the failure names the key: ${failed.stderr}`);
      assert.match(failed.stderr, /ended before its answer/);
      assert.match(failed.stderr, /run the same command again/);
      assert.doesNotMatch(failed.stderr, /start it with `asof serve`/, 'the server was reached: the failure is not "cannot reach"');

      // A third run (it succeeded) writes nothing and answers the same.
      const third = await runCli(['ingest', 'imp3', file, '--url', server.url]);
      assert.equal(third.code, 0, third.stderr);
      assert.deepEqual(JSON.parse(third.stdout), JSON.parse(again.stdout));
      // A request of its own under the key the failure named is the server's answer for that key: the same import.
      const res = await fetch(`${server.url}/tables/imp3/rows`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ rows: [{ a: -1, ts: 1 }] }) });
      assert.equal(res.status, 409, 'the key named is the one the import ran under');
      // A new key imports the file once more, on purpose.
      const fresh = await runCli(['ingest', 'imp3', file, '--url', server.url, '--idempotency-key', 'once-more']);
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.equal(JSON.parse(fresh.stdout).firstOffset, ROWS);
    } finally {
      await server?.kill('SIGKILL');
      await dir.cleanup();
    }
  });

  test('with --data-dir: the CLI SIGKILLed mid-import; the same command again writes only the rest', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir.path, 'big.csv');
      await bigCsv(file);
      const setup = await testAsof({}, { dataDir: dir.path });
      await setup.services.engine.defineTable('imp3', A_TS_EVENTS as never);
      await setup.close();

      const cli = spawn(process.execPath, [...ASOF_CLI, 'ingest', 'imp3', file, '--data-dir', dir.path], { cwd: ROOT, env: { ...process.env, ...ENV, LOG_LEVEL: 'silent' }, stdio: 'ignore' });
      const exited = once(cli, 'exit');
      const tableDir = join(dir.path, 'tables', 'imp3');
      const logBytes = async (): Promise<number> => {
        let n = 0;
        for (const f of await readdir(tableDir)) if (f.startsWith('changelog-')) n += (await stat(join(tableDir, f))).size;
        return n;
      };
      // Two batches of about 17 bytes a row (Arrow int64 + timestamp) and more.
      await until('two batches written', async () => (await logBytes()) > 2 * BATCH * 16 || cli.exitCode !== null, 120_000);
      cli.kill('SIGKILL');
      await exited;
      assert.equal(cli.signalCode, 'SIGKILL', 'killed before it finished');

      const mid = await testAsof({ maxBatchRows: BATCH }, { dataDir: dir.path });
      const before = mid.services.engine.table('imp3').endOffset;
      await mid.close();
      assert.ok(before > 0 && before < ROWS, `the kill came part way: ${before} of ${ROWS} rows were written`);

      const again = await runCli(['ingest', 'imp3', file, '--data-dir', dir.path], ENV);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout.trim().split('\n').pop()!), { table: 'imp3', rows: ROWS, count: ROWS, firstOffset: 0, lastOffset: ROWS - 1, token: { imp3: ROWS - 1 } });

      const server = await readyChild(dir.path, ENV);
      try {
        assertEachRowOnce(await readChangelog(server.url, 'imp3'));
      } finally {
        await server.kill('SIGKILL');
      }
    } finally {
      await dir.cleanup();
    }
  });
});
