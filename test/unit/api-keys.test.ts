/**
 * ApiKeys remembers the digests of presented keys (access.ts): what a key may
 * do is still decided against the keys in force at each check, so a reload
 * of the key file revokes and admits at once, and the memory stays bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiKeys, bearerKey } from '../../src/access.js';
import { AsofError } from '../../src/errors.js';
import { heapAfterGc, tempDir } from '../helpers.js';

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return (e as AsofError).code;
  }
};

test('a remembered key is checked against the keys in force: a reload revokes it, admits a key refused before, and changes scopes', async () => {
  const dir = await tempDir('asof-keys-');
  try {
    const file = join(dir.path, 'keys');
    await writeFile(file, 'oldKEY read\nkeptKEY read\n');
    const keys = new ApiKeys({ file });
    for (let i = 0; i < 3; i++) {
      assert.equal(codeOf(() => keys.authorize('oldKEY', 'read')), 'ok');
      assert.equal(codeOf(() => keys.authorize('newKEY', 'read')), 'ASOF_UNAUTHENTICATED');
      assert.equal(codeOf(() => keys.authorize('keptKEY', 'write')), 'ASOF_PERMISSION_DENIED');
      assert.equal(codeOf(() => keys.authorize('oldKEX', 'read')), 'ASOF_UNAUTHENTICATED', 'a near miss');
    }
    assert.equal(keys.remembered, 4, 'the digests of the keys presented are remembered');

    await writeFile(file, 'newKEY read\nkeptKEY read write\n');
    keys.reload();
    assert.equal(codeOf(() => keys.authorize('oldKEY', 'read')), 'ASOF_UNAUTHENTICATED', 'a revoked key is refused at once');
    assert.equal(codeOf(() => keys.authorize('newKEY', 'read')), 'ok', 'a key refused before is admitted once listed');
    assert.equal(codeOf(() => keys.authorize('keptKEY', 'write')), 'ok', 'new scopes hold at once');
    assert.equal(codeOf(() => keys.authorize('oldKEX', 'read')), 'ASOF_UNAUTHENTICATED');
  } finally {
    await dir.cleanup();
  }
});

test('the remembered digests are bounded: many different wrong keys, then the right one still works', () => {
  const keys = new ApiKeys({ keys: [{ key: 'theKEY', scopes: ['read'] }] });
  for (let i = 0; i < 5000; i++) assert.equal(codeOf(() => keys.authorize(`guess-${i}`, 'read')), 'ASOF_UNAUTHENTICATED');
  assert.ok(keys.remembered <= 1024, `${keys.remembered} digests remembered`);
  assert.equal(codeOf(() => keys.authorize('x'.repeat(300), 'read')), 'ASOF_UNAUTHENTICATED');
  assert.equal(codeOf(() => keys.authorize('theKEY', 'read')), 'ok');
  assert.equal(codeOf(() => keys.authorize('theKEY', 'admin')), 'ASOF_PERMISSION_DENIED');
});

test('a remembered key keeps nothing of the header it came in: 1,000 wrong keys padded to 15 KB each', () => {
  // bearerKey trims the header: a view of it, which kept all 15 KB alive while its digest was remembered.
  const keys = new ApiKeys({ keys: [{ key: 'theKEY', scopes: ['read'] }] });
  const before = heapAfterGc();
  for (let i = 0; i < 1000; i++) {
    const given = bearerKey(`Bearer ${' '.repeat(15_000)}wrong-key-number-${i}`, undefined);
    assert.equal(codeOf(() => keys.authorize(given, 'read')), 'ASOF_UNAUTHENTICATED');
  }
  assert.equal(keys.remembered, 1000);
  const grown = heapAfterGc() - before;
  assert.ok(grown < 3e6, `remembering 1,000 keys of 24 characters took ${(grown / 1e6).toFixed(1)} MB (the headers are 15 MB)`);
});
