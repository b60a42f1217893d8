/**
 * Training-set jobs are bounded: at most `maxPending` queued or running (429
 * beyond, and a slot frees when one ends), and finished jobs with their files
 * are removed once older than the retention.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UNRESTRICTED } from '../../src/access.js';
import { silentLogger } from '../../src/logger.js';
import { TrainingSetJobs } from '../../src/offline/jobs.js';
import type { AsofError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';
import { held } from './training-fixtures.js';


test('at most maxPending jobs queued or running; the next is 429 until one ends', async () => {
  const dir = await tempDir();
  const jobs = await TrainingSetJobs.open(dir.path, silentLogger, Date.now, () => true, { maxPending: 2, retentionMs: 3600_000 });
  try {
    const a = held();
    const b = held();
    const ja = await jobs.submit(a.prepared);
    await jobs.submit(b.prepared);
    await assert.rejects(jobs.submit(held().prepared), (e: AsofError) => e.code === 'ASOF_OVERLOADED' && e.httpStatus === 429);
    a.finish();
    for (let i = 0; jobs.get(ja.id, UNRESTRICTED).state !== 'succeeded'; i++) {
      assert.ok(i < 500, 'the first job finishes');
      await new Promise((r) => setTimeout(r, 10));
    }
    // Its slot frees once its cleanup has run (just after the state is final): retry until then.
    const c = held();
    for (let i = 0; ; i++) {
      try {
        await jobs.submit(c.prepared);
        break;
      } catch (e) {
        assert.equal((e as AsofError).code, 'ASOF_OVERLOADED');
        assert.ok(i < 500, 'a slot frees once the first job has ended');
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    b.finish();
    c.finish();
  } finally {
    await jobs.close();
    await dir.cleanup();
  }
});

test('finished jobs and their files are removed once older than the retention, at start and by sweep', async () => {
  const dir = await tempDir();
  let now = Date.parse('2026-03-01T00:00:00Z');
  const clock = () => now;
  let jobs = await TrainingSetJobs.open(dir.path, silentLogger, clock, () => true, { maxPending: 4, retentionMs: 3600_000 });
  const h = held();
  const info = await jobs.submit(h.prepared);
  h.finish();
  while (jobs.get(info.id, UNRESTRICTED).state !== 'succeeded') await new Promise((r) => setTimeout(r, 10));
  const file = jobs.data(info.id, UNRESTRICTED).path;
  assert.ok(existsSync(file));
  now += 30 * 60_000;
  assert.equal(await jobs.sweep(), 0, 'younger than the retention: kept');
  assert.ok(existsSync(file));
  await jobs.close();

  now += 31 * 60_000;
  jobs = await TrainingSetJobs.open(dir.path, silentLogger, clock, () => true, { maxPending: 4, retentionMs: 3600_000 });
  try {
    assert.throws(() => jobs.get(info.id, UNRESTRICTED), /no training-set job/);
    assert.ok(!existsSync(file), 'its file is gone');
    assert.ok(!existsSync(join(dir.path, 'training-sets', `${info.id}.job.json`)), 'and its state');
  } finally {
    await jobs.close();
    await dir.cleanup();
  }
});
