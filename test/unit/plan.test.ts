import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planGroup } from '../../src/engine/plan.js';
import { TableSchema, type Row } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';

const log = new TableSchema(
  defineTable('t', { kind: 'log', eventTime: 'ts', primaryKey: ['user'], columns: [{ name: 'user', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] }, undefined, 0).def,
);
const noState = { get: () => undefined };

test('planGroup, log table: a group of requests becomes their rows in request order, one +I each, with keys and per-request counts', () => {
  // Oracle: the requests' rows written out one after the other by hand.
  const sizes = [3, 0, 1, 1000, 2];
  let next = 0;
  const group = sizes.map((n) => ({ op: 'upsert' as const, rows: Array.from({ length: n }, (): Row => ({ user: next % 7, ts: next++ })) }));
  const want: Row[] = [];
  for (const p of group) for (const r of p.rows) want.push(r);
  const planned = planGroup(log, noState, group);
  assert.equal(planned.rows.length, want.length);
  for (let i = 0; i < want.length; i++) assert.equal(planned.rows[i], want[i], `row ${i}`);
  assert.deepEqual(planned.counts, sizes);
  assert.deepEqual([...planned.changes], new Array(want.length).fill(0));
  assert.deepEqual(planned.keys, want.map((r) => r.user));
  // One request: its own array, as it came.
  assert.equal(planGroup(log, noState, [group[3]]).rows, group[3].rows);
});
