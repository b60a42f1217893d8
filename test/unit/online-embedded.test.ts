/**
 * The embedded online store keys canonical integer entity keys by number:
 * that must never merge two different keys nor lose one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmbeddedOnlineStore } from '../../src/online/embedded.js';
import { numericIndexKey } from '../../src/engine/indexes.js';

test('numericIndexKey: a number exactly for canonical safe-integer text, else the text itself', () => {
  const reference = (k: string): string | number => {
    const n = Number(k);
    return /^-?\d+$/.test(k) && Number.isSafeInteger(n) && String(n) === k ? n : k;
  };
  const fixed = ['0', '-0', '00', '01', '-01', '1', '-1', '', '-', '+1', ' 1', '1 ', '1e3', '0x10', '1.0', '9007199254740991', '-9007199254740991', '9007199254740992', '9007199254740993', '99999999999999999', '12345678901234567890', 'abc', '١٢'];
  for (const k of fixed) assert.equal(numericIndexKey(k), reference(k), JSON.stringify(k));
  let seed = 7;
  const r = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const chars = '0123456789-+. e';
  for (let i = 0; i < 20000; i++) {
    let k = '';
    const len = Math.floor(r() * 18);
    for (let j = 0; j < len; j++) k += r() < 0.85 ? chars[Math.floor(r() * 10)] : chars[Math.floor(r() * chars.length)];
    assert.equal(numericIndexKey(k), reference(k), JSON.stringify(k));
  }
});

test('embedded store: integer-like keys that differ as text stay apart, and each reads back what was written', async () => {
  const store = new EmbeddedOnlineStore();
  await store.reset('ns', 'l');
  const keys = ['1', '01', '-0', '0', '9007199254740993', '9007199254740992', 'x'];
  await store.write('ns', keys.map((k, i) => [k, { b: { v: [i] } } as never]), -1, 0);
  const read = (keys: string[]) => {
    const r = store.readEncodedSync('ns', keys);
    return r.encoded.map((x, e) => x && r.decode(e));
  };
  assert.deepEqual(read([...keys, '2', '-1']), [...keys.map((_, i) => ({ b: { v: [i] } })), undefined, undefined]);
  await store.write('ns', [['01', undefined], ['0', undefined]], 0, 1);
  assert.deepEqual(read(keys), keys.map((k, i) => (k === '01' || k === '0' ? undefined : { b: { v: [i] } })));
});
