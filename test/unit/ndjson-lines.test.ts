/**
 * The NDJSON line reader (offline/ndjson.ts): lines split at \n across read
 * chunks (and UTF-8 characters split across them), CRLF and a BOM accepted,
 * and a line over the cap refused before the rest of it is read.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AsofError } from '../../src/errors.js';
import { ndjsonObjects } from '../../src/offline/ndjson.js';
import { tempDir } from '../helpers.js';

const dir = await tempDir('asof-ndjson-lines-');
after(() => dir.cleanup());

async function read(name: string, content: string | Buffer, maxLineBytes?: number): Promise<Record<string, unknown>[]> {
  const path = join(dir.path, name);
  await writeFile(path, content);
  const out: Record<string, unknown>[] = [];
  for await (const o of ndjsonObjects(path, maxLineBytes)) out.push(o);
  return out;
}

test('lines longer than a read chunk (64 KiB), multi-byte characters across chunk ends, CRLF, a BOM and blank lines', async () => {
  const rows = Array.from({ length: 50 }, (_, i) => ({ i, s: 'é€😀'.repeat(8000 + i * 97) }));
  const text = '\uFEFF' + rows.map((r) => JSON.stringify(r)).join('\r\n') + '\n\n  \n';
  assert.deepEqual(await read('long.ndjson', text), rows);
});

test('a line over the cap is a 413 naming its row and line; one at the cap is read', async () => {
  const at = JSON.stringify({ s: 'x'.repeat(100 - 8) });
  assert.equal(Buffer.byteLength(at), 100);
  assert.deepEqual(await read('at.ndjson', `${at}\n${at}`, 100), [JSON.parse(at), JSON.parse(at)]);
  await assert.rejects(read('over.ndjson', `${at}\n\n${at}x\n`, 100), (e: unknown) => {
    assert.ok(e instanceof AsofError, String(e));
    assert.equal(e.code, 'ASOF_PAYLOAD_TOO_LARGE');
    assert.deepEqual(e.details, { row: 1, line: 3, maxLineBytes: 100 });
    return true;
  });
});

test('bytes that are not UTF-8 are a 400 naming the line', async () => {
  await assert.rejects(read('bad.ndjson', Buffer.concat([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xff]), Buffer.from('"}\n')])), (e: unknown) => {
    assert.ok(e instanceof AsofError, String(e));
    assert.equal(e.code, 'ASOF_INVALID_ARGUMENT');
    assert.match(e.message, /not valid UTF-8 \(in line 2, the bytes from 8\)/);
    return true;
  });
});

test('bytes that are not UTF-8 deep in a chunk, or in a line across chunks, name their own line and its offset', async () => {
  const rows = (n: number): string => Array.from({ length: n }, (_, i) => `{"a":${i}}\n`).join('');
  const bad = (path: string, content: Buffer, line: number, at: number) =>
    assert.rejects(read(path, content), (e: unknown) => {
      assert.ok(e instanceof AsofError, String(e));
      assert.equal(e.code, 'ASOF_INVALID_ARGUMENT');
      assert.match(e.message, new RegExp(`in line ${line}, the bytes from ${at}\\)`));
      return true;
    });
  // Line 4 of a chunk's whole lines: three good lines before it (8 bytes each for a < 10).
  await bad('deep.ndjson', Buffer.concat([Buffer.from(rows(3) + '{"a":"'), Buffer.from([0xc3]), Buffer.from('"}\n' + rows(3))]), 4, 24);
  // A line of 100 kB, longer than a read chunk, with the bad byte in its second chunk.
  const long = Buffer.concat([Buffer.from('{"a":"' + 'x'.repeat(70_000)), Buffer.from([0xff]), Buffer.from('x'.repeat(30_000) + '"}\n')]);
  await bad('across.ndjson', Buffer.concat([Buffer.from(rows(2)), long, Buffer.from(rows(2))]), 3, 16);
});
