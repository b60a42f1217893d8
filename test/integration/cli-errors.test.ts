/**
 * The CLI's errors for a mistyped data folder, `serve --help`, and an API key
 * file that cannot be read: each names what is wrong, and a command that only
 * reads never creates a data folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { runCli } from '../child-server.js';

test('asof export --data-dir on a folder that holds no asof data fails naming it, and creates nothing', async () => {
  const dir = await tempDir();
  try {
    const out = join(dir.path, 'train.parquet');
    const typo = join(dir.path, 'typo');
    const empty = join(dir.path, 'empty');
    await mkdir(empty);
    for (const [folder, why] of [
      [typo, /no such folder/],
      [empty, /holds no asof data/],
    ] as const) {
      const r = await runCli(['export', '--entities-table', 'labels', '--features', 'v:f', '--out', out, '--data-dir', folder]);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.includes(folder), r.stderr);
      assert.match(r.stderr, why);
    }
    assert.equal(existsSync(typo), false, 'no data folder made');
    assert.deepEqual(await readdir(empty), [], 'nothing made in the folder');
    assert.deepEqual((await readdir(dir.path)).sort(), ['empty'], 'no output file');
  } finally {
    await dir.cleanup();
  }
});

test('asof ingest --data-dir without --create on a folder that holds no asof data fails naming it, and creates nothing', async () => {
  const dir = await tempDir();
  try {
    const file = join(dir.path, 'rows.csv');
    await writeFile(file, 'id,v\n1,2\n');
    const typo = join(dir.path, 'typo');
    const r = await runCli(['ingest', '--data-dir', typo, '--format', 'csv', 'events', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(typo), r.stderr);
    assert.match(r.stderr, /no such folder/);
    assert.equal(existsSync(typo), false, 'no data folder made');
  } finally {
    await dir.cleanup();
  }
});

test('asof serve --help prints the usage of serve and exits 0, as the other commands do', async () => {
  for (const flag of ['--help', '-h']) {
    const r = await runCli(['serve', flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: asof serve/);
    assert.match(r.stdout, /--api-keys-file F/);
  }
});

test('an ASOF_API_KEYS_FILE that cannot be read stops serve with an error naming the variable and the path', async () => {
  const dir = await tempDir();
  try {
    const missing = join(dir.path, 'nonexistent-keys');
    const r = await runCli(['serve'], { ASOF_API_KEYS_FILE: missing, ASOF_DATA_DIR: join(dir.path, 'data'), PORT: '0', GRPC_PORT: '0' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ASOF_API_KEYS_FILE/);
    assert.ok(r.stderr.includes(missing), r.stderr);
    assert.match(r.stderr, /no such file/i);
  } finally {
    await dir.cleanup();
  }
});

test('serve refuses ASOF_API_KEYS that lists a key twice, or no key at all, naming the variable and the entry', async () => {
  const dir = await tempDir('asof-ops-keys-');
  try {
    for (const [keys, why] of [
      ['k1sec:read,k1sec:write', /ASOF_API_KEYS: .*key #2: the same key as key #1/],
      [',', /ASOF_API_KEYS: .*names no key/],
    ] as const) {
      // A serve that starts instead would run until killed: 60 s is far beyond a refusal's time.
      const r = await runCli(['serve'], { ASOF_API_KEYS: keys, ASOF_DATA_DIR: join(dir.path, 'data'), PORT: '0', GRPC_PORT: '0' }, { timeoutMs: 60_000 });
      assert.equal(r.code, 1, `ASOF_API_KEYS=${keys}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.ok(!r.stderr.includes('k1sec'), r.stderr);
    }
  } finally {
    await dir.cleanup();
  }
});
