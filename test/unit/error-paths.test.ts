/**
 * Issue 13 finding 14, at the last line of defence: a server-side failure's
 * message (which may quote a storage error naming a file) reaches clients
 * without the server's paths; the log keeps the full message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AsofError } from '../../src/errors.js';

test('5xx messages lose server paths on the wire (REST body and gRPC details); 4xx messages are ours and kept', () => {
  const io = new AsofError('ASOF_INTERNAL', `changelog write failed for table "p": ENOSPC: no space left on device, write '/var/lib/asof/tables/p/00000000.log'`);
  assert.equal(io.toJSON().error.message, `changelog write failed for table "p": ENOSPC: no space left on device, write '<path>'`);
  assert.equal(io.publicMessage, io.toJSON().error.message);
  assert.match(io.message, /\/var\/lib\/asof/, 'the log still has it');
  const unavailable = new AsofError('ASOF_BACKEND_UNAVAILABLE', 'cannot open /data/x/lance/t.lance: EACCES');
  assert.equal(unavailable.toJSON().error.message, 'cannot open <path>: EACCES');
  // Lance prints a dataset's absolute path without its leading slash.
  const lance = new AsofError('ASOF_TABLE_UNAVAILABLE', 'vector column "x.e" did not open: LanceError(IO): Not found: tmp/asof-test-1/lance/_asof_vectors/x.e.lance/_versions, src/io.rs:12');
  assert.equal(lance.toJSON().error.message, 'vector column "x.e" did not open: LanceError(IO): Not found: <path>, src/io.rs:12');
  const notFound = new AsofError('ASOF_NOT_FOUND', 'no route GET /tables/a/b');
  assert.equal(notFound.toJSON().error.message, 'no route GET /tables/a/b');
});
