/**
 * The embedded online store's packed encoding (src/online/packed.ts): every
 * JSON-safe value comes back as it went in, numbers bit for bit (-0, NaN,
 * decimals, doubles of every magnitude), and short decimals take fewer bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack, unpack } from '../../src/online/packed.js';
import { rng } from '../integration/training-fixtures.js';
import { heapAfterGc } from '../helpers.js';

/** The shared seeded generator (mulberry32), as a plain function: a failure can be replayed. */
const seeded = (seed: number): (() => number) => rng(seed).next;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function randomNumber(r: () => number): number {
  switch (Math.floor(r() * 9)) {
    case 0: // a decimal of 0 to 8 places, of any sign and size up to 1e12
      return Math.round((r() - 0.5) * 10 ** Math.floor(r() * 12)) / 10 ** Math.floor(r() * 9);
    case 1:
      return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
    case 2: // any bit pattern
      u32[0] = Math.floor(r() * 2 ** 32);
      u32[1] = Math.floor(r() * 2 ** 32);
      return f64[0];
    case 3:
      return [0, -0, NaN, Infinity, -Infinity, 2 ** 52, -(2 ** 52), 2 ** 53 + 2, Number.MIN_VALUE, Number.MAX_VALUE, 0.1 + 0.2, 1e-7, 999999.999999, 4503599.6270496][Math.floor(r() * 14)];
    case 4:
      return Math.fround((r() - 0.5) * 1000);
    case 5:
      return Math.floor((r() - 0.5) * 2 ** 40);
    default: // what prices and rates look like: two to four places
      return Math.round((r() - 0.3) * 1e7) / 10 ** (2 + Math.floor(r() * 3));
  }
}

function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 5 : 7));
  if (k === 0) return null;
  if (k === 1) return r() < 0.5;
  if (k === 2) return ['', 'a', 'São Paulo', '✓ü', 'x'.repeat(300), '\u0000\u00ff'][Math.floor(r() * 6)];
  if (k <= 4) return randomNumber(r);
  if (k === 5) return Array.from({ length: Math.floor(r() * 6) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 5); i > 0; i--) o[['b', 'w', 'f', 'é', 'key'][i % 5] + i] = randomValue(r, depth + 1);
  return o;
}

/** Deep equality where numbers must be the same double (Object.is: -0 and NaN count). */
function same(a: unknown, b: unknown, path: string): void {
  if (typeof a === 'number') {
    assert.ok(Object.is(a, b), `${path}: ${a} came back as ${String(b)}`);
    return;
  }
  if (Array.isArray(a)) {
    assert.ok(Array.isArray(b) && b.length === a.length, `${path}: array`);
    a.forEach((x, i) => same(x, (b as unknown[])[i], `${path}[${i}]`));
    return;
  }
  if (a !== null && typeof a === 'object') {
    assert.deepEqual(Object.keys(b as object), Object.keys(a), `${path}: keys`);
    for (const k of Object.keys(a)) same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    return;
  }
  assert.equal(b, a, path);
}

test('pack and unpack: random values come back exactly', () => {
  const r = seeded(20261205);
  for (let i = 0; i < 20_000; i++) {
    const v = randomValue(r, 0);
    same(v, unpack(pack(v)), `value ${i}`);
  }
  for (let i = 0; i < 200_000; i++) {
    const n = randomNumber(r);
    same(n, unpack(pack(n)), `number ${i}`);
  }
});

test('short decimals pack smaller than full doubles, and exactly', () => {
  for (const v of [12.34, -0.5, 1234.56, 0.000001, 99999.999999, -123456.7]) {
    assert.ok(pack(v).length < pack(Math.PI).length, `${v}: ${pack(v).length} bytes`);
    assert.ok(Object.is(unpack(pack(v)), v));
  }
  // Doubles that are not short decimals (or not exactly so) keep all eight bytes.
  for (const v of [0.1 + 0.2, Math.PI, 1e-7, Math.fround(0.1), -0]) assert.equal(pack(v).length, 9, String(v));
});

test('an array of plain doubles packs as one tag, a count and eight bytes each; mixed arrays keep a tag per item', () => {
  const r = seeded(7);
  for (let i = 0; i < 2000; i++) {
    const n = 2 + Math.floor(r() * 20);
    // Each item a double that packs in full on its own (9 bytes): no integer, no short decimal.
    const plain = (): number => {
      for (;;) {
        const x = (r() - 0.5) * 10 ** Math.floor(r() * 10);
        if (pack(x).length === 9) return x;
      }
    };
    const doubles = Array.from({ length: n }, plain);
    assert.equal(pack(doubles).length, 2 + 8 * n);
    same(doubles, unpack(pack(doubles)), `doubles ${i}`);
    // One item that packs shorter (an integer, a decimal, a null, -0 aside) makes it an ordinary array.
    const mixed: unknown[] = [...doubles];
    mixed[Math.floor(r() * n)] = [1, 12.5, null, 'x'][i % 4];
    assert.equal(pack(mixed).charCodeAt(0), pack([1, 'x']).charCodeAt(0), `mixed ${i}: the ordinary array tag`);
    assert.notEqual(pack(mixed).charCodeAt(0), pack(doubles).charCodeAt(0));
    same(mixed, unpack(pack(mixed)), `mixed ${i}`);
  }
  for (const edge of [[NaN, Infinity], [-0, 0.1 + 0.2], [2 ** 53 + 2, -Infinity]]) {
    assert.equal(pack(edge).length, 2 + 8 * edge.length, String(edge));
    same(edge, unpack(pack(edge)), String(edge));
  }
});

test('one large state packed does not keep its buffer: megabytes of events, then a small state, leave no 8 MB behind', () => {
  const held = (): number => heapAfterGc() + process.memoryUsage().arrayBuffers;
  const before = held();
  const packedLength = ((): number => {
    const big = { w: Array.from({ length: 500_000 }, (_, i) => [1_700_000_000_000 + i, i, i * 0.25]) };
    const packed = pack(big);
    assert.deepEqual(unpack(packed), big);
    return packed.length;
  })();
  assert.ok(packedLength > 4e6, `the large state packs to ${packedLength} bytes`);
  assert.deepEqual(unpack(pack({ b: [1, 2, [3]] })), { b: [1, 2, [3]] });
  const grown = held() - before;
  assert.ok(grown < 4e6, `packing left ${(grown / 1e6).toFixed(1)} MB behind`);
});
