import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof } from '../helpers.js';

const TABLE = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'f', type: 'float32' },
    { name: 'ids', type: 'list<int64>' },
    { name: 's', type: 'struct<big:int64>' },
  ],
};

test('float32 values and int64 beyond 2^53 inside lists and structs are served the same before and after a restart', async () => {
  const a = await testAsof();
  const dataDir = a.dataDir;
  await a.req('PUT', '/tables/t', TABLE);
  await a.services.registry.defineView('v', { source: 't', entity: 'id', features: [{ name: 'f', column: 'f' }, { name: 'ids', column: 'ids' }, { name: 's', column: 's' }] });
  const w = await a.req('POST', '/tables/t/rows', { rows: [{ id: 'a', f: 0.1, ids: ['9007199254740993', 1], s: { big: '-9007199254740995' } }] });
  assert.equal(w.status, 200, JSON.stringify(w.body));
  const live = (await a.req('GET', '/features/a?view=v')).body.features;
  // 0.1 is not a float32; the served value is the float32 nearest to it, as stored.
  assert.equal(live['v:f'], Math.fround(0.1));
  assert.deepEqual(live['v:ids'], ['9007199254740993', 1]);
  assert.deepEqual(live['v:s'], { big: '-9007199254740995' });
  await a.close();
  const b = await testAsof({}, { dataDir });
  try {
    const replayed = (await b.req('GET', '/features/a?view=v')).body.features;
    assert.deepEqual(replayed, live);
    assert.equal((await b.req('GET', '/tables/t/rows/a')).body.row.f, Math.fround(0.1));
    const tooBig = await b.req('POST', '/tables/t/rows', { rows: [{ id: 'b', f: 1e39 }] });
    assert.equal(tooBig.status, 400);
    assert.match(tooBig.body.error.details[0].reason, /float32 range/);
  } finally {
    await b.destroy();
    const { rm } = await import('node:fs/promises');
    await rm(dataDir, { recursive: true, force: true });
  }
});
