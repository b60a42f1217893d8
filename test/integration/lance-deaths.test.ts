/**
 * A process whose LanceDB thread dies during tiering steps, again and again,
 * goes on and exits cleanly (test/fixtures/lance-deaths.ts, in a child
 * process: a crash there is an exit signal here, not a dead test runner).
 * Stopping the thread under LanceDB's native calls (Worker.terminate) aborted
 * or crashed 17 of 20 processes (scripts/lance-crash.mjs terminate); the
 * thread now stops only once they are done (lance-host-worker.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../fixtures/lance-deaths.ts', import.meta.url));

test('three deaths of the LanceDB thread during tiering steps: every step retried, and the process exits cleanly', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, '3'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr.slice(-2000)}`);
  assert.equal(r.status, 0, `the child exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  assert.match(r.stdout, /tiered 4 rounds, threads 4/);
});
