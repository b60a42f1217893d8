/**
 * Training-set jobs with API keys: a job remembers the tables its request
 * named, and reading its status, its file or deleting it needs a key that may
 * read them, as building it did (engine.mayRead: asof's internal tables need
 * the audit scope). A key that may not gets the very answer an unknown job id
 * gets (404 ASOF_NOT_FOUND), so it learns nothing of the job, not even that it
 * exists. The rule outlives a restart: what the job read is in its state file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testAsof, until, type InjectResult, type TestAsof } from '../helpers.js';

/** r and r2 read; u reads and audits; ad only administers; all has every scope. */
const KEYS = 'r:read,r2:read,u:read+audit,ad:admin,all';
const bearer = (k: string): Record<string, string> => ({ authorization: `Bearer ${k}` });
const TABLE = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'n', type: 'int64' }] };
const VIEW = { source: 't', entity: 'id', features: [{ name: 'n', column: 'n' }] };

async function start(dataDir?: string): Promise<TestAsof> {
  return testAsof({ apiKeys: KEYS } as never, dataDir === undefined ? {} : { dataDir });
}

/** Table t (x: 7), view v over it, and decision q1 recorded from a lookup of x. */
async function seed(asof: TestAsof): Promise<void> {
  const must = (r: InjectResult) => assert.ok(r.status < 300, JSON.stringify(r.body));
  const all = bearer('all');
  must(await asof.req('PUT', '/tables/t', TABLE, all));
  must(await asof.req('POST', '/tables/t/rows', { rows: [{ id: 'x', n: 7 }] }, all));
  must(await asof.req('PUT', '/feature-views/v', VIEW, all));
  must(await asof.req('GET', '/features/x?view=v&decision=q1', undefined, all));
}

/** Submits a job as `key` and waits until it has succeeded (as seen by `key`); returns its id. */
async function job(asof: TestAsof, key: string, body: object): Promise<string> {
  const sub = await asof.req('POST', '/training-sets', { ...body, async: true }, bearer(key));
  assert.equal(sub.status, 202, JSON.stringify(sub.body));
  const id = sub.body.id as string;
  await until(`job ${id} succeeds`, async () => (await asof.req('GET', `/training-sets/${id}`, undefined, bearer(key))).body.state === 'succeeded');
  return id;
}

/** The answer must be the one an unknown job id gets: 404 ASOF_NOT_FOUND, the same body but for the id, nothing of the job. */
async function asUnknown(asof: TestAsof, res: InjectResult, id: string, what: string): Promise<void> {
  const unknown = await asof.req('GET', '/training-sets/ts_0000', undefined, bearer('all'));
  assert.equal(res.status, 404, `${what}: ${JSON.stringify(res.body)}`);
  assert.deepEqual(JSON.parse(JSON.stringify(res.body).replaceAll(id, 'ts_0000')), unknown.body, `${what}: answered as an unknown job`);
  assert.ok(!JSON.stringify(res.body).includes('q1') && !JSON.stringify(res.body).includes('_asof'), `${what}: nothing of the job`);
}

test('a job built from the decision log: its status, file and deletion are answered as for no job to keys without the audit scope, before and after a restart', async () => {
  let asof = await start();
  try {
    await seed(asof);
    const id = await job(asof, 'u', { entities: { table: '_asof_decisions' }, features: ['v:n'] });
    const paths = [`/training-sets/${id}`, `/training-sets/${id}/data`];
    const refusedToAll = async (when: string) => {
      for (const key of ['r', 'r2']) for (const p of paths) await asUnknown(asof, await asof.req('GET', p, undefined, bearer(key)), id, `${when}: GET ${p} with read key ${key}`);
      await asUnknown(asof, await asof.req('DELETE', `/training-sets/${id}`, undefined, bearer('ad')), id, `${when}: DELETE with an admin-only key`);
    };
    const readByAuditor = async (when: string) => {
      const status = await asof.req('GET', paths[0], undefined, bearer('u'));
      assert.equal(status.status, 200, when);
      assert.equal(status.body.state, 'succeeded', when);
      assert.equal(Object.keys(status.body).includes('tables'), false, `${when}: what the job read is kept, not shown`);
      const data = await asof.req('GET', paths[1], undefined, bearer('u'));
      assert.equal(data.status, 200, when);
      // One entity row per decision, keyed by its id (no entity of view v is called q1, so n is null).
      assert.deepEqual(data.body.rows.map((r: { id: string; entity: string; n: number }) => [r.id, r.entity, r.n]), [['q1', 'x', null]], `${when}: the file`);
    };
    await refusedToAll('running server');
    await readByAuditor('running server');

    // Restarted on the same folder: the job's state file says what it read.
    await asof.close();
    asof = await start(asof.dataDir);
    await refusedToAll('after a restart');
    await readByAuditor('after a restart');

    // A state file written before jobs kept what they read: its token's tables stand in (every table the job read).
    await asof.close();
    const file = join(asof.dataDir, 'training-sets', `${id}.job.json`);
    const state = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(state.tables, ['_asof_decisions'], 'the state file names the table the request named');
    delete state.tables;
    await writeFile(file, JSON.stringify(state));
    asof = await start(asof.dataDir);
    await refusedToAll('a state file without tables');
    await readByAuditor('a state file without tables');
    assert.equal((await asof.req('DELETE', paths[0], undefined, bearer('all'))).status, 200, 'a key with admin and audit deletes it');
  } finally {
    await asof.destroy();
  }
});

test('a job from rows the request carried is read by every read key, as any of them could have built it', async () => {
  const asof = await start();
  try {
    await seed(asof);
    const id = await job(asof, 'r', { entities: { rows: [{ id: 'x', timestamp: Date.now() + 60_000, label: 1 }] }, features: ['v:n'] });
    const data = await asof.req('GET', `/training-sets/${id}/data`, undefined, bearer('r2'));
    assert.equal(data.status, 200, JSON.stringify(data.body));
    assert.deepEqual(data.body.rows.map((r: { id: string; n: number; label: number }) => [r.id, r.n, r.label]), [['x', 7, 1]]);
    assert.equal((await asof.req('GET', `/training-sets/${id}`, undefined, bearer('u'))).body.state, 'succeeded');
    assert.equal((await asof.req('DELETE', `/training-sets/${id}`, undefined, bearer('ad'))).status, 200, 'an admin key deletes a job over tables it may read');
  } finally {
    await asof.destroy();
  }
});
