/**
 * A training set reads its entity rows as they were when the request arrived,
 * and inline entity rows are checked before the answer: a pk labels table
 * written to while its job waits in the queue gives the rows of the request's
 * token, and a bad inline row is the same 400 whether the request would be
 * answered at once or become a job (no job is made).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UNRESTRICTED } from '../../src/access.js';
import { testAsof, until, type TestAsof } from '../helpers.js';
import { held } from './training-fixtures.js';

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
  const { prepared, finish } = held();
  await asof.services.trainingSetJobs.submit(prepared);
  return finish;
}

async function jobFiles(asof: TestAsof): Promise<string[]> {
  const dir = join(asof.dataDir, 'training-sets');
  return existsSync(dir) ? (await readdir(dir)).filter((f) => f.endsWith('.job.json')) : [];
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

  test('a bad inline entity row is a 400 naming it before any job is made', async () => {
    const asof = await testAsof();
    try {
      await seed(asof);
      const features = ['drv_v:city'];
      const rows = Array.from({ length: 10_001 }, (_, i) => ({ driver_id: (i % 3) + 1, timestamp: '2024-01-02T00:00:00Z' }));
      const good = await asof.req('POST', '/training-sets', { entities: { rows }, features });
      assert.equal(good.status, 202, 'over ASOF_TRAINING_SET_INLINE_ROWS (10,000): a job');
      await until('the good job ends', () => asof.services.trainingSetJobs.get(good.body.id, UNRESTRICTED).state === 'succeeded');
      const before = await jobFiles(asof);
      assert.equal(before.length, 1);

      const badTime = await asof.req('POST', '/training-sets', { entities: { rows: [...rows.slice(0, 10_000), { driver_id: 1, timestamp: 'not-a-time' }] }, features });
      assert.equal(badTime.status, 400, JSON.stringify(badTime.body));
      assert.equal(badTime.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.match(badTime.body.error.message, /^entity row 10000: time: /);
      assert.equal(badTime.body.id, undefined);
      assert.deepEqual(await jobFiles(asof), before, 'no job was made for a bad request');
    } finally {
      await asof.destroy();
    }
  });

  test('async: true with a bad inline entity row is the 400 the request answered at once gets', async () => {
    const asof = await testAsof();
    try {
      await seed(asof);
      const features = ['drv_v:city'];
      const badKey = await asof.req('POST', '/training-sets', { entities: { rows: [{ driver_id: 'x', timestamp: '2024-01-02T00:00:00Z' }] }, features, async: true });
      assert.equal(badKey.status, 400, JSON.stringify(badKey.body));
      assert.match(badKey.body.error.message, /^entity row 0: "driver_id": /);
      // The same answer as the request answered at once.
      const inline = await asof.req('POST', '/training-sets', { entities: { rows: [{ driver_id: 'x', timestamp: '2024-01-02T00:00:00Z' }] }, features });
      assert.equal(inline.status, 400);
      assert.deepEqual(badKey.body, inline.body);

      const noTime = await asof.req('POST', '/training-sets', { entities: { rows: [{ driver_id: 1, timestamp: null }] }, features, async: true });
      assert.equal(noTime.status, 400, JSON.stringify(noTime.body));
      assert.match(noTime.body.error.message, /^entity row 0: no time/);

      assert.deepEqual(await jobFiles(asof), [], 'no job was made for a bad request');
    } finally {
      await asof.destroy();
    }
  });
});
