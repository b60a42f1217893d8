/**
 * The generated wire codecs (src/grpc/generated/) are what proto/ generates
 * today: the generator runs into a temporary folder and its output must equal
 * the checked-in files byte for byte. After changing a .proto: `npm run protos`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('src/grpc/generated is current with proto/ (run `npm run protos` when this fails)', async () => {
  const dir = await tempDir('asof-protos-');
  try {
    execFileSync(process.execPath, [join(root, 'scripts/gen-protos.mjs'), '--out', dir.path], { stdio: ['ignore', 'ignore', 'pipe'] });
    for (const file of ['protos.js', 'protos.d.ts']) {
      const fresh = readFileSync(join(dir.path, file), 'utf8');
      const checkedIn = readFileSync(join(root, 'src/grpc/generated', file), 'utf8');
      assert.ok(fresh === checkedIn, `src/grpc/generated/${file} differs from what proto/ generates: run \`npm run protos\` and commit the result`);
    }
  } finally {
    await dir.cleanup();
  }
});
