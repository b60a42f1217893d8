/**
 * `entityKeyText` against the conversion it stands for: the column's coercion
 * of `fromText(entity)`, as text (bigints in decimal), or the same error. Its
 * shortcut for integer text must never answer otherwise: zeros in front, signs,
 * exponents, digits past 2^53 and int32 bounds are among the inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromText, TableSchema, type CompiledColumn } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';
import { entityKeyText } from '../../src/features/entity-key.js';

const schema = new TableSchema(
  defineTable('t', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 's', type: 'string', nullable: false }, { name: 'i32', type: 'int32', nullable: false }, { name: 'i64', type: 'int64', nullable: false }, { name: 'b', type: 'bool', nullable: false }] }, undefined, 0).def,
);

const oracle = (col: CompiledColumn, entity: string | number): { key: string } | { error: string } => {
  try {
    const v = col.coerce(fromText(col.type, entity));
    return { key: typeof v === 'bigint' ? v.toString() : String(v) };
  } catch (e) {
    return { error: (e as { reason?: string }).reason ?? String(e) };
  }
};

const INPUTS: (string | number)[] = [
  '0', '-0', '00', '7', '007', '-7', '+7', '1e3', '1.5', ' 5', '5 ', '', 'x', 'true', 'false',
  '2147483647', '2147483648', '-2147483648', '-2147483649', '9999999999', '10000000000',
  '999999999999999', '9007199254740991', '9007199254740993', '-9007199254740993', '9223372036854775807', '9223372036854775808',
  'u123', 'caf\u00e9', 'a\ud800b', '\udc00',
  0, 7, -7, 1.5, 2147483648, 9007199254740991,
];

test('entityKeyText answers what coercing fromText(entity) answers, key or error, for every column type', () => {
  for (const col of schema.columns) {
    for (const entity of INPUTS) {
      const want = oracle(col, entity);
      let got: { key: string } | { error: string };
      try {
        got = { key: entityKeyText(col, entity) };
      } catch (e) {
        got = { error: (e as { reason?: string }).reason ?? String(e) };
      }
      assert.deepEqual(got, want, `${col.name} ${JSON.stringify(entity)}`);
    }
  }
});
