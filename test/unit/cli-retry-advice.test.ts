/**
 * What `asof ingest` prints when an import fails: the key it ran under and how
 * to finish it when running it again helps, with what stayed written when the
 * answer says; an error that wrote nothing and would fail again as it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, ConnectionError } from '../../src/cli/client.js';
import { withRetryAdvice } from '../../src/cli/ingest.js';
import { AsofError } from '../../src/errors.js';

const KEY = 'asof-ingest-abc';

test('a 503 that says what stayed written: the rows and offsets, the key, and to run the same command again', () => {
  const e = new ApiError(503, 'ASOF_STORAGE_FAILED', 'ASOF_STORAGE_FAILED: the import stopped at row 400000 of 1000000: ...', {
    written: { rows: 400000, count: 400000, firstOffset: 10, lastOffset: 400009, token: { t: 400009 } },
    resumeAtRow: 400000,
  });
  const m = (withRetryAdvice(e, KEY, false) as Error).message;
  assert.ok(m.startsWith(e.message), 'the server\'s message first');
  assert.match(m, /400000 rows \(rows 0-399999 of the file, offsets 10\.\.400009\) were written and stay written/);
  assert.match(m, /Idempotency-Key "asof-ingest-abc" \(derived from the table, --op, the format and the file's content\): run the same command again: it writes only the rows not written yet/);
});

test('with a key of the user\'s own, the command to run again names it', () => {
  const m = (withRetryAdvice(new ApiError(503, 'ASOF_OVERLOADED', 'ASOF_OVERLOADED: busy'), 'mine', true) as Error).message;
  assert.match(m, /run the same command again \(with --idempotency-key "mine"\)/);
  assert.doesNotMatch(m, /derived from/);
});

test('a connection that ended before the answer: rows may be written, the key, run again', () => {
  const m = (withRetryAdvice(new ConnectionError('the connection to asof at http://x ended before its answer (other side closed)', true), KEY, false) as Error).message;
  assert.match(m, /may have been written/);
  assert.match(m, /Idempotency-Key "asof-ingest-abc"/);
  assert.match(m, /run the same command again/);
});

test('errors that wrote nothing and would fail again are left as they are', () => {
  for (const e of [
    new ApiError(400, 'ASOF_INVALID_ROW', 'ASOF_INVALID_ROW: row 3: ...; nothing was imported', [{ row: 3, field: 'a', reason: 'x' }]),
    new ApiError(404, 'ASOF_NOT_FOUND', 'ASOF_NOT_FOUND: no table'),
    new ConnectionError('cannot reach asof at http://x (connect ECONNREFUSED)', false),
    new AsofError('ASOF_INVALID_ROW', 'row 3: bad'),
  ]) {
    assert.equal(withRetryAdvice(e, KEY, false), e);
  }
});

test('a local import (--data-dir) stopped by a storage failure gets the same advice', () => {
  const e = new AsofError('ASOF_STORAGE_FAILED', 'the import stopped at row 2 of 5: ...', { written: { rows: 2, count: 2, firstOffset: 0, lastOffset: 1 }, resumeAtRow: 2 });
  const m = (withRetryAdvice(e, KEY, false) as Error).message;
  assert.match(m, /2 rows \(rows 0-1 of the file, offsets 0\.\.1\) were written and stay written/);
  assert.match(m, /run the same command again/);
});

test('the derived key taken by another request: a 409 that says to pass a new key, and what that does', () => {
  const m = (withRetryAdvice(new ApiError(409, 'ASOF_CONFLICT', 'ASOF_CONFLICT: Idempotency-Key "asof-ingest-abc" was already used for a different request', { idempotencyKey: KEY }), KEY, false) as Error).message;
  assert.match(m, /ASOF_MAX_BATCH_ROWS/);
  assert.match(m, /pass a new --idempotency-key: rows an earlier run wrote under "asof-ingest-abc" are then written again/);
});
