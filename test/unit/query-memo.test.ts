import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rememberedQueries } from '../../src/http/server.js';

// The oracle is node:querystring, not fast-querystring (which the memo wraps).
import { parse as nodeParse } from 'node:querystring';

const plain = (o: object): Record<string, unknown> => JSON.parse(JSON.stringify(o));

test('remembered query strings: the same text answers the same frozen object, parsed as node:querystring parses it', () => {
  const parse = rememberedQueries(3, 64);
  const texts = ['features=a:x,a:y', 'view=v&decision=d1', 'a=1&a=2&b=%20c', '', 'x=y+z'];
  for (const t of texts) {
    const first = parse(t);
    assert.deepEqual(plain(first), plain(nodeParse(t)), t);
    assert.ok(Object.isFrozen(first), 'shared between requests, so frozen');
    for (const v of Object.values(first)) if (Array.isArray(v)) assert.ok(Object.isFrozen(v));
    // A copy of the text (another string object with the same characters) finds the same answer.
    assert.equal(parse((' ' + t).slice(1)), first, t);
  }
  // More texts than the last few compared and than the map holds: answers stay right.
  for (let i = 0; i < 20; i++) assert.deepEqual(plain(parse(`k=${i}`)), { k: String(i) });
  assert.deepEqual(plain(parse('features=a:x,a:y')), { features: 'a:x,a:y' });
});

test('remembered query strings: texts longer than the limit are parsed each time, never kept', () => {
  const parse = rememberedQueries(10, 16);
  const long = 'features=' + 'a:x,'.repeat(10);
  const a = parse(long);
  for (let i = 0; i < 5; i++) parse(`k=${i}`); // pushes it out of the recent texts
  const b = parse(long);
  assert.notEqual(a, b, 'a long text is not remembered');
  assert.deepEqual(plain(a), plain(b));
});
