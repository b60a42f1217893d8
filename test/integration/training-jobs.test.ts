/**
 * Training-set jobs: a request above the inline limit answers 202, reports
 * progress and serves its file; a job whose server process is killed is
 * reported failed after the restart, and no half-written file is ever served.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir, testAsof } from '../helpers.js';
import { killAll, readyChild, type ChildServer } from '../child-server.js';
import { rng, trainingRows } from './training-fixtures.js';

async function seed(asof: Awaited<ReturnType<typeof testAsof>>, records: number): Promise<void> {
  const { engine, registry, ingest } = asof.services;
  await engine.defineTable('events', {
    kind: 'log',
    eventTime: 'ts',
    columns: [
      { name: 'user', type: 'int64', nullable: false },
      { name: 'ts', type: 'timestamp', nullable: false },
      { name: 'score', type: 'float64', nullable: true },
    ],
  });
  const r = rng(5);
  for (let s = 0; s < records; s += 10_000) {
    await ingest.write('events', Array.from({ length: Math.min(10_000, records - s) }, () => ({ user: r.int(1, 1000), ts: Date.UTC(2024, 0, 1) + r.int(0, 1e9), score: r.int(0, 1000) / 10 })));
  }
  await registry.defineView('ev', { source: 'events', entity: 'user', features: [{ name: 'score', column: 'score' }, { name: 'n', agg: { fn: 'count', window: '1d' } }] });
}

const entityRows = (n: number) => {
  const r = rng(9);
  return Array.from({ length: n }, (_, i) => ({ user: r.int(1, 1100), timestamp: Date.UTC(2024, 0, 1) + r.int(0, 1.1e9), i }));
};

describe('training-set jobs', () => {
  after(killAll);

  test('above the inline limit: 202, progress, then the file; DELETE removes it', async () => {
    const asof = await testAsof({ trainingSetInlineRows: 100 });
    try {
      await seed(asof, 20_000);
      const rows = entityRows(500);
      const features = ['ev:score', 'ev:n'];
      const small = await asof.req('POST', '/training-sets', { entities: { rows: rows.slice(0, 100) }, features });
      assert.equal(small.status, 200, 'at the limit: inline');

      const sub = await asof.req('POST', '/training-sets', { entities: { rows }, features, format: 'ndjson' });
      assert.equal(sub.status, 202, JSON.stringify(sub.body));
      assert.equal(sub.headers.location, `/training-sets/${sub.body.id}`);
      assert.deepEqual(sub.body.progress, { rows: 0, total: 500 });
      let job = sub.body;
      const seen = new Set<string>();
      for (let i = 0; i < 400 && (job.state === 'queued' || job.state === 'running'); i++) {
        seen.add(job.state);
        await new Promise((r) => setTimeout(r, 10));
        job = (await asof.req('GET', `/training-sets/${sub.body.id}`)).body;
      }
      assert.equal(job.state, 'succeeded', JSON.stringify(job));
      assert.deepEqual(job.progress, { rows: 500, total: 500 });
      assert.ok(job.bytes > 0 && job.finishedAt >= job.startedAt);

      const data = await asof.http.inject({ method: 'GET', url: `/training-sets/${job.id}/data` });
      assert.equal(data.statusCode, 200);
      assert.equal(data.headers['content-type'], 'application/x-ndjson');
      const got = data.body.trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(got, await trainingRows(asof.services, { entities: { rows }, features }), 'the job wrote the same training set a direct build gives');

      const forced = await asof.req('POST', '/training-sets', { entities: { rows: rows.slice(0, 3) }, features, async: true });
      assert.equal(forced.status, 202, 'async: true makes even a small request a job');

      assert.equal((await asof.req('DELETE', `/training-sets/${job.id}`)).status, 200);
      assert.equal((await asof.req('GET', `/training-sets/${job.id}`)).status, 404);
      assert.equal((await asof.req('GET', `/training-sets/${job.id}/data`)).status, 404);
      assert.equal((await asof.req('GET', '/training-sets/ts_nope')).body.error.code, 'ASOF_NOT_FOUND');
    } finally {
      await asof.destroy();
    }
  });

  test('a job whose process is killed reports failed after the restart, and never serves a partial file', async () => {
    const dir = await tempDir();
    let server: ChildServer | undefined;
    try {
      const setup = await testAsof({}, { dataDir: dir.path });
      await seed(setup, 100_000);
      await setup.close();

      // Every request becomes a job, and a small chunk size makes it pass over the source many times (seconds, not milliseconds).
      server = await readyChild(dir.path, { ASOF_TRAINING_SET_INLINE_ROWS: '0', ASOF_TRAINING_SET_CHUNK_ROWS: '200' });
      const url = server.url;
      const post = await fetch(`${url}/training-sets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entities: { rows: entityRows(30_000) }, features: ['ev:score', 'ev:n'], format: 'parquet' }) });
      assert.equal(post.status, 202);
      const { id } = (await post.json()) as { id: string };
      let job: { state: string; progress: { rows: number; total: number } } = { state: 'queued', progress: { rows: 0, total: 1 } };
      for (let i = 0; i < 2000 && !(job.state === 'running' && job.progress.rows > 0); i++) {
        await new Promise((r) => setTimeout(r, 5));
        job = (await (await fetch(`${url}/training-sets/${id}`)).json()) as typeof job;
      }
      assert.equal(job.state, 'running', 'the job was caught mid-way');
      assert.ok(job.progress.rows < job.progress.total);
      await server.kill('SIGKILL');
      const files = await readdir(join(dir.path, 'training-sets'));
      assert.ok(!files.includes(`${id}.data.parquet`), `no finished file after the kill: ${files.join(', ')}`);

      const restarted = await testAsof({}, { dataDir: dir.path });
      try {
        const after = await restarted.req('GET', `/training-sets/${id}`);
        assert.equal(after.status, 200);
        assert.equal(after.body.state, 'failed');
        assert.match(after.body.error, /stopped/);
        const data = await restarted.req('GET', `/training-sets/${id}/data`);
        assert.equal(data.status, 409);
        assert.equal(data.body.error.code, 'ASOF_CONFLICT');
        const left = await readdir(join(dir.path, 'training-sets'));
        assert.deepEqual(left.filter((f) => f.startsWith(id) && !f.endsWith('.job.json')), [], 'the partial file is gone');
      } finally {
        await restarted.close();
      }
    } finally {
      await server?.kill();
      await dir.cleanup();
    }
  });
});
