/**
 * A training set reads its entity rows as they were when the request arrived:
 * a pk labels table written to while its job waits in the queue gives the rows
 * of the request's token.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { UNRESTRICTED } from '../../src/access.js';
import type { PreparedTrainingSet } from '../../src/offline/training-set.js';
import { testAsof, until, type TestAsof } from '../helpers.js';

const T0 = Date.UTC(2024, 0, 1);

async function seed(asof: TestAsof): Promise<void> {
  const { engine, registry, ingest } = asof.services;
  await engine.defineTable('drv', {
    kind: 'log',
    eventTime: 'ts',
    columns: [
      { name: 'driver_id', type: 'int64', nullable: false },
      { name: 'ts', type: 'timestamp', nullable: false },
      { name: 'city', type: 'string', nullable: true },
    ],
  });
  await ingest.write('drv', [1, 2, 3].map((d) => ({ driver_id: d, ts: T0, city: `c${d}` })));
  await registry.defineView('drv_v', { source: 'drv', entity: 'driver_id', features: [{ name: 'city', column: 'city' }] });
}

/** A job that holds the queue (jobs run one at a time) until `finish` is called. */
async function holdQueue(asof: TestAsof): Promise<() => void> {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const prepared: PreparedTrainingSet = {
    total: 1,
    columns: [],
    format: 'json',
    pointInTime: 'event',
    token: {},
    tables: [],
    async write(path) {
      await done;
      await writeFile(path, '{"rows":[]}');
    },
    async close() {},
  };
  await asof.services.trainingSetJobs.submit(prepared);
  return finish;
}

describe('training sets as of the request', () => {
  test('a pk labels table written to while the job is queued: the job reads the rows of its token', async () => {
    const asof = await testAsof();
    try {
      await seed(asof);
      await asof.services.engine.defineTable('lab', {
        kind: 'pk',
        primaryKey: ['id'],
        columns: [
          { name: 'id', type: 'int64', nullable: false },
          { name: 'driver_id', type: 'int64', nullable: false },
          { name: 'timestamp', type: 'timestamp', nullable: false },
          { name: 'y', type: 'int32', nullable: true },
        ],
      });
      await asof.services.ingest.write('lab', [0, 1, 2, 3, 4].map((id) => ({ id, driver_id: (id % 3) + 1, timestamp: T0 + 1000, y: id })));
      const finish = await holdQueue(asof);
      const sub = await asof.req('POST', '/training-sets', { entities: { table: 'lab' }, features: ['drv_v:city'], async: true });
      assert.equal(sub.status, 202, JSON.stringify(sub.body));
      assert.deepEqual(sub.body.token, { lab: 4, drv: 2 });
      assert.deepEqual(sub.body.progress, { rows: 0, total: 5 });
      assert.equal(asof.services.trainingSetJobs.get(sub.body.id, UNRESTRICTED).state, 'queued');

      // After the request: a new label, a changed one, a deleted one.
      await asof.services.ingest.write('lab', [
        { id: 100, driver_id: 1, timestamp: T0 + 2000, y: 100 },
        { id: 0, driver_id: 1, timestamp: T0 + 1000, y: 99 },
      ]);
      await asof.services.ingest.write('lab', [{ id: 1 }], 'delete');
      finish();

      await until('the job ends', () => !['queued', 'running'].includes(asof.services.trainingSetJobs.get(sub.body.id, UNRESTRICTED).state));
      const job = (await asof.req('GET', `/training-sets/${sub.body.id}`)).body;
      assert.equal(job.state, 'succeeded', JSON.stringify(job));
      assert.deepEqual(job.progress, { rows: 5, total: 5 });
      const data = await asof.req('GET', `/training-sets/${sub.body.id}/data`);
      assert.equal(data.status, 200);
      const rows = (data.body.rows as { id: number; y: number; city: string }[]).sort((a, b) => a.id - b.id);
      assert.deepEqual(
        rows.map((r) => [r.id, r.y, r.city]),
        [0, 1, 2, 3, 4].map((id) => [id, id, `c${(id % 3) + 1}`]),
        'the label rows as they were at the request: no later row, the changed label as it was, the deleted one still there',
      );
      assert.deepEqual(data.body.token, sub.body.token);
    } finally {
      await asof.destroy();
    }
  });
});
