import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CATALOGUE, AsofError } from '../../src/errors.js';
import { generateOpenApi } from '../../src/openapi.js';
import { VERSION } from '../../src/version.js';

test('the checked-in openapi/openapi.json is what the code generates (run `npm run openapi` to refresh)', async () => {
  const generated = JSON.parse(JSON.stringify(await generateOpenApi()));
  const checkedIn = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
  assert.deepEqual(checkedIn, generated);
});

test('every error code in the catalogue is in the OpenAPI Error schema, and no other', async () => {
  const spec = (await generateOpenApi()) as any;
  const codes: string[] = spec.components.schemas.Error.properties.error.properties.code.enum;
  assert.deepEqual([...codes].sort(), Object.keys(ERROR_CATALOGUE).sort());
});

test('every error status documented on a route is one the catalogue can produce', async () => {
  const spec = (await generateOpenApi()) as any;
  const statuses = new Set<number>(Object.values(ERROR_CATALOGUE).map((e) => e.http));
  for (const [path, ops] of Object.entries<any>(spec.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      for (const status of Object.keys(op.responses)) {
        if (Number(status) >= 400) assert.ok(statuses.has(Number(status)), `${method.toUpperCase()} ${path} documents ${status}, which no catalogue error has`);
      }
    }
  }
});

test('the README documents every error code', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const code of Object.keys(ERROR_CATALOGUE)) assert.ok(readme.includes(code), `README lacks ${code}`);
});

test('AsofError carries the catalogue status and retriability', () => {
  const e = new AsofError('ASOF_BACKEND_UNAVAILABLE', 'redis down');
  assert.equal(e.httpStatus, 503);
  assert.equal(e.grpcStatus, 14);
  assert.equal(e.retriable, true);
  // details is always there: an object of facts ({} without any), a 400's list of field issues ([] without any).
  assert.deepEqual(e.toJSON(), { error: { code: 'ASOF_BACKEND_UNAVAILABLE', message: 'redis down', details: {} } });
  assert.deepEqual(new AsofError('ASOF_INVALID_ARGUMENT', 'bad').toJSON(), { error: { code: 'ASOF_INVALID_ARGUMENT', message: 'bad', details: [] } });
  assert.equal(new AsofError('ASOF_INVALID_ROW', 'x').retriable, false);
});

test('VERSION matches package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  assert.equal(VERSION, pkg.version);
});
