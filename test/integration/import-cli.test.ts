/**
 * The CLI: `asof ingest` and `asof export`, against a running server (real
 * process, REST) and straight on a data folder.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { tempDir, testAsof } from '../helpers.js';
import { killAll, readyChild, runCli, type ChildServer } from '../child-server.js';

/** Runs the CLI; the run must succeed. */
async function asofCli(...args: string[]) {
  const r = await runCli(args);
  assert.equal(r.code, 0, `asof ${args.join(' ')}: ${r.stderr}`);
  return r;
}

const TRIPS_CSV = 'driver,ts,fare\n1,2024-01-01T09:00:00Z,10\n1,2024-01-01T11:00:00Z,30\n2,2024-01-01T09:30:00Z,5\n';
const LABELS_CSV = 'driver,timestamp,label\n1,2024-01-01T10:00:00Z,a\n1,2024-01-01T12:00:00Z,b\n2,2024-01-01T09:00:00Z,c\n3,2024-01-01T12:00:00Z,d\n';
const EXPECTED = [
  { driver: 1, timestamp: '2024-01-01T10:00:00.000Z', label: 'a', fare: 10 },
  { driver: 1, timestamp: '2024-01-01T12:00:00.000Z', label: 'b', fare: 30 },
  { driver: 2, timestamp: '2024-01-01T09:00:00.000Z', label: 'c', fare: null },
  { driver: 3, timestamp: '2024-01-01T12:00:00.000Z', label: 'd', fare: null },
];

async function readParquet(path: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const rows = (await c.runAndReadAll(`SELECT driver, strftime("timestamp" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ') AS "timestamp", label, fare FROM '${path}'`)).getRowObjectsJS();
    return rows.map((r) => ({ ...r, driver: Number(r.driver) }));
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

describe('asof ingest / asof export', () => {
  after(killAll);

  test('against a running server, then straight on its data folder', async () => {
    const dir = await tempDir();
    let server: ChildServer | undefined;
    try {
      const setup = await testAsof({}, { dataDir: dir.path });
      await setup.services.engine.defineTable('trips', {
        kind: 'log',
        eventTime: 'ts',
        columns: [
          { name: 'driver', type: 'int64', nullable: false },
          { name: 'ts', type: 'timestamp', nullable: false },
          { name: 'fare', type: 'float64', nullable: true },
        ],
      });
      await setup.services.registry.defineView('trip_stats', { source: 'trips', entity: 'driver', ttl: '2h', features: [{ name: 'fare', column: 'fare' }] });
      await setup.close();
      await writeFile(join(dir.path, 'trips.csv'), TRIPS_CSV);
      await writeFile(join(dir.path, 'labels.csv'), LABELS_CSV);

      server = await readyChild(dir.path);
      const url = server.url;

      const ing = await asofCli('ingest', 'trips', join(dir.path, 'trips.csv'), '--url', url);
      assert.deepEqual(JSON.parse(ing.stdout), { table: 'trips', rows: 3, count: 3, firstOffset: 0, lastOffset: 2, token: { trips: 2 } });
      assert.match(ing.stderr, /upload .*trips\.csv: \d+\/\d+ bytes \(100%\)/, 'plain progress lines when not on a terminal');

      const out = join(dir.path, 'train.parquet');
      const exp = await asofCli('export', '--entities', join(dir.path, 'labels.csv'), '--features', 'trip_stats:fare', '--out', out, '--url', url);
      assert.match(exp.stderr, /export .*: 4\/4 rows \(100%\)/);
      assert.deepEqual(await readParquet(out), EXPECTED);

      const bad = await runCli(['export', '--entities', join(dir.path, 'labels.csv'), '--features', 'trip_stats:nope', '--out', join(dir.path, 'x.csv'), '--url', url]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /ASOF_NOT_FOUND: feature view "trip_stats" has no feature "nope"/);

      await server.stop();

      // No server now: the same export from the data folder, as CSV.
      const csvOut = join(dir.path, 'train.csv');
      await asofCli('export', '--entities-table', 'trips', '--features', 'trip_stats:fare', '--out', csvOut, '--data-dir', dir.path, '--full-feature-names');
      assert.equal(await readFile(csvOut, 'utf8'), 'driver,ts,fare,trip_stats__fare\n1,2024-01-01T09:00:00.000Z,10,10\n1,2024-01-01T11:00:00.000Z,30,30\n2,2024-01-01T09:30:00.000Z,5,5\n');

      // --create infers a table from the file (here the Feast fixture: its types and timestamps).
      const feast = fileURLToPath(new URL('../fixtures/feast-driver-stats/driver_stats.parquet', import.meta.url));
      const created = await asofCli('ingest', 'driver_stats', feast, '--data-dir', dir.path, '--create', '--event-time', 'event_timestamp');
      assert.equal(JSON.parse(created.stdout).rows, 1807);
      const check = await testAsof({}, { dataDir: dir.path });
      try {
        const info = (await check.req('GET', '/tables/driver_stats')).body;
        assert.deepEqual(
          info.columns.map((c: any) => `${c.name}:${c.type}`),
          ['event_timestamp:timestamp', 'driver_id:int64', 'conv_rate:float32', 'acc_rate:float32', 'avg_daily_trips:int32', 'created:timestamp'],
        );
        assert.equal(info.rowCount, 1807);
      } finally {
        await check.close();
      }
    } finally {
      await server?.kill();
      await dir.cleanup();
    }
  });

  test('straight on a data folder, an NDJSON line longer than ASOF_MAX_BODY_BYTES is refused naming its row, and nothing is written', async () => {
    const dir = await tempDir();
    try {
      const setup = await testAsof({}, { dataDir: dir.path });
      await setup.services.engine.defineTable('t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 's', type: 'string', nullable: true }] });
      await setup.close();
      const file = join(dir.path, 'rows.ndjson');
      await writeFile(file, `{"id": 1, "s": "a"}\n{"id": 2, "s": "${'x'.repeat(5000)}"}`);
      const r = await runCli(['ingest', 't', file, '--data-dir', dir.path], { ASOF_MAX_BODY_BYTES: '4096' });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /row 1: NDJSON line 2 is longer than 4096 bytes/);
      const check = await testAsof({}, { dataDir: dir.path });
      try {
        assert.equal(check.services.engine.table('t').endOffset, 0, 'nothing written');
      } finally {
        await check.close();
      }
    } finally {
      await dir.cleanup();
    }
  });

  test('usage errors exit 2 and say what is wrong', async () => {
    const e = await runCli(['export', '--out', 'x.parquet']);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /give one of --features or --service/);
    const u = await runCli(['ingest', 't', 'file.xyz']);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /cannot tell the format/);
    const help = await asofCli('export', '--help');
    assert.match(help.stdout, /usage: asof export/);
  });
});
