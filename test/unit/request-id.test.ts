import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestIdOf } from '../../src/request-id.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('request ids made here are UUID-shaped, share one prefix, and count up by one across many thousands', () => {
  const ids = Array.from({ length: 10_000 }, () => requestIdOf(undefined));
  for (const id of ids) assert.match(id, UUID);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(new Set(ids.map((id) => id.slice(0, 24))).size, 1);
  const counts = ids.map((id) => parseInt(id.slice(24), 16));
  for (let i = 1; i < counts.length; i++) assert.equal(counts[i], counts[i - 1] + 1, `${ids[i - 1]} then ${ids[i]}`);
});

test("a caller's sane id is kept; anything else gets a new one", () => {
  assert.equal(requestIdOf('trace-1.2:3_x'), 'trace-1.2:3_x');
  for (const bad of ['', 'has space', 'x'.repeat(129), 'ü', 42, undefined, ['a']]) assert.match(requestIdOf(bad), UUID, String(bad));
});
