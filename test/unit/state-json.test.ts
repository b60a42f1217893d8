/**
 * parseState (online/state-json.ts) reads the states asof writes to Redis by
 * hand for their usual shape and leaves the rest to JSON.parse: whatever the
 * text, it must give what JSON.parse gives for its UTF-8 bytes, or throw where
 * JSON.parse throws.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseState } from '../../src/online/state-json.js';
import { heapAfterGc } from '../helpers.js';

/** `text` as Redis holds it (UTF-8), given to parseState as the store reads it: latin1 text of the bytes. */
const same = (text: string): void => {
  const bytes = Buffer.from(text, 'utf8');
  let expected: unknown;
  try {
    expected = JSON.parse(bytes.toString('utf8'));
  } catch {
    assert.throws(() => parseState(bytes.toString('latin1')), SyntaxError, text);
    return;
  }
  // deepStrictEqual tells -0 from 0, and a sparse array or a missing field from a null.
  assert.deepStrictEqual(parseState(bytes.toString('latin1')), expected, text);
};

const awkwardNumber = fc.constantFrom(0, -0, 1, -1, 0.1, 0.5, 1.005, 4.35, 123.456, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e15, 1e16, 123456789012345.6, 0.1 + 0.2, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 1767225600123);
const scalar = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }).map((n) => n / 100),
  fc.maxSafeInteger(),
  awkwardNumber,
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', 'plain', 'São Paulo', 'a"b', 'back\\slash', 'line\nbreak', '\u2028', '\ud800', '9223372036854775807'),
  fc.boolean(),
  fc.constant(null),
);
const version = fc.tuple(fc.oneof(fc.maxSafeInteger(), awkwardNumber), fc.nat(), fc.array(fc.oneof({ weight: 8, arbitrary: scalar }, { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.dictionary(fc.string(), scalar, { maxKeys: 2 }) }), { maxLength: 25 }));
const state = fc.oneof(
  { weight: 6, arbitrary: version.map((b) => ({ b })) },
  { weight: 1, arbitrary: fc.record({ b: version, f: fc.array(version, { maxLength: 2 }) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.record({ w: fc.array(fc.array(scalar, { maxLength: 4 }), { maxLength: 3 }) }) },
);

test('states as JSON.stringify writes them read back as JSON.parse reads them', () => {
  fc.assert(fc.property(state, (s) => same(JSON.stringify(s))), { numRuns: 5000 });
});

test('any other text (cut, changed, spaced, not JSON) reads as JSON.parse reads it, or throws as it does', () => {
  const variants = (text: string, cut: number, c: string): string[] => [text.slice(0, cut), text.slice(0, cut) + text.slice(cut + 1), text.slice(0, cut) + c + text.slice(cut), text.slice(0, cut) + c + text.slice(cut + 1), ' ' + text, text + ' '];
  fc.assert(
    fc.property(state, fc.nat(), fc.constantFrom('0', '-', '.', 'e', 'E', '+', ',', ']', '[', '"', '\\', ' ', '\n', 'n', 't', 'f', '1', '}'), (s, n, c) => {
      const text = JSON.stringify(s);
      for (const v of variants(text, n % (text.length + 1), c)) same(v);
    }),
    { numRuns: 5000 },
  );
  for (const t of ['{"b":[1,2,[01]]}', '{"b":[1,2,[1.]]}', '{"b":[1,2,[-]]}', '{"b":[1,2,[.5]]}', '{"b":[1,2,[1e5]]}', '{"b":[-0,0,[-0.0,-0]]}', '{"b":[1,2,[]]}', '{"b":[1,2,[nul]]}', '{"b":[1,2,["a\u0001"]]}', '{"b":[1,2,[1]]}x', '{"b":[1,2,[1]],"b":[3,4,[5]]}']) same(t);
});

test('one large state read as text does not keep its scratch buffer: megabytes of events, then a small state', () => {
  const held = (): number => heapAfterGc() + process.memoryUsage().arrayBuffers;
  const before = held();
  ((): void => {
    const text = JSON.stringify({ b: [1, 2, [3]], w: Array.from({ length: 400_000 }, (_, i) => [1_700_000_000_000 + i, i, i * 0.25]) });
    assert.ok(text.length > 8e6);
    assert.equal(parseState(text).w!.length, 400_000);
  })();
  assert.deepEqual(parseState('{"b":[1,2,[3]]}'), { b: [1, 2, [3]] });
  const grown = held() - before;
  assert.ok(grown < 4e6, `reading left ${(grown / 1e6).toFixed(1)} MB behind`);
});
