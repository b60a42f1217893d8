/**
 * `npm run depcheck` (scripts/depcheck.mjs over .dependency-cruiser.cjs): the
 * repository's own src passes, and each forbidden direction fails on a small
 * tree of its own, while the allowed direction passes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/depcheck.mjs');

function depcheck(cwd: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT], { cwd, encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** A src tree of the given files (path → source) in a temporary folder; runs the check there. */
async function checkTree(files: Record<string, string>): Promise<{ status: number | null; out: string }> {
  const dir = await tempDir('asof-depcheck-');
  try {
    for (const [path, source] of Object.entries(files)) {
      await mkdir(dirname(join(dir.path, path)), { recursive: true });
      await writeFile(join(dir.path, path), source);
    }
    return depcheck(dir.path);
  } finally {
    await dir.cleanup();
  }
}

test('the repository src follows the module direction', () => {
  const r = depcheck(ROOT);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /no dependency violations found \((\d{2,}) modules/);
});

test('a core folder importing an adapter fails, naming the rule and the import', async () => {
  const r = await checkTree({ 'src/online/lookup.ts': "import { y } from '../http/route.js';\nexport const x = y;\n", 'src/http/route.ts': 'export const y = 1;\n' });
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /core-imports-adapter: src\/online\/lookup\.ts → src\/http\/route\.ts/);
});

test('a type-only import from an adapter (grpc, feast) fails too', async () => {
  const r = await checkTree({
    'src/vectors/search.ts': "import type { Y } from '../grpc/wire.js';\nimport type { Z } from '../feast/values.js';\nexport type X = Y | Z;\n",
    'src/grpc/wire.ts': 'export type Y = number;\n',
    'src/feast/values.ts': 'export type Z = string;\n',
  });
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /core-imports-adapter: src\/vectors\/search\.ts → src\/grpc\/wire\.ts/);
  assert.match(r.out, /core-imports-adapter: src\/vectors\/search\.ts → src\/feast\/values\.ts/);
});

test('the engine importing feature or online code fails', async () => {
  const r = await checkTree({
    'src/engine/table.ts': "import { f } from '../features/evaluator.js';\nimport { o } from '../online/store.js';\nexport const t = f + o;\n",
    'src/features/evaluator.ts': 'export const f = 1;\n',
    'src/online/store.ts': 'export const o = 1;\n',
  });
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /engine-imports-derived: src\/engine\/table\.ts → src\/features\/evaluator\.ts/);
  assert.match(r.out, /engine-imports-derived: src\/engine\/table\.ts → src\/online\/store\.ts/);
});

test('product code importing the test and bench harness (support/, bench/, test/) fails', async () => {
  const r = await checkTree({
    'src/app.ts': "import { freePort } from '../support/child-server.js';\nimport { drive } from '../bench/lib.js';\nexport const a = [freePort, drive];\n",
    'support/child-server.ts': 'export const freePort = 1;\n',
    'bench/lib.ts': 'export const drive = 1;\n',
  });
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /product-imports-harness: src\/app\.ts → support\/child-server\.ts/);
  assert.match(r.out, /product-imports-harness: src\/app\.ts → bench\/lib\.ts/);
});

test('adapters importing the core, and the core importing the engine, pass', async () => {
  const r = await checkTree({
    'src/http/route.ts': "import { o } from '../online/service.js';\nexport const y = o;\n",
    'src/online/service.ts': "import { t } from '../engine/table.js';\nexport const o = t;\n",
    'src/engine/table.ts': 'export const t = 1;\n',
  });
  assert.equal(r.status, 0, r.out);
});
