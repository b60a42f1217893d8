import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameIndex, KeyIndex } from '../../src/engine/indexes.js';

test('key index: offsets survive serialisation (large values, unicode keys), and adds after a load append to loaded keys', () => {
  const idx = new KeyIndex();
  const want = new Map<string, number[]>();
  const add = (k: string, o: number) => {
    idx.add(k, o);
    want.set(k, [...(want.get(k) ?? []), o]);
  };
  let o = 0;
  for (let i = 0; i < 5000; i++) add(`k${i % 700}`, o++);
  add('ünï ☃', 2 ** 40);
  add('ünï ☃', 2 ** 52 + 7);
  add('1', 127);
  add('1', 128);
  add('1', 16384);
  const loaded = KeyIndex.deserialize(idx.serialize());
  for (const [k, v] of want) assert.deepEqual([...loaded.offsetsOf(k)], v, k);
  assert.equal(loaded.entries, idx.entries);
  loaded.add('k3', 2 ** 53 - 1);
  loaded.add('new', 9);
  want.set('k3', [...want.get('k3')!, 2 ** 53 - 1]);
  want.set('new', [9]);
  const again = KeyIndex.deserialize(loaded.serialize());
  for (const [k, v] of want) assert.deepEqual([...again.offsetsOf(k)], v, k);
  assert.deepEqual(again.offsetsOf('absent'), []);
  // lastOffset: the newest of offsetsOf, for loaded keys, keys added since, and both.
  for (const i of [idx, loaded, again]) {
    for (const k of want.keys()) {
      const all = i.offsetsOf(k);
      assert.equal(i.lastOffset(k), all.length ? all[all.length - 1] : -1, k);
    }
  }
  assert.equal(loaded.lastOffset('k3'), 2 ** 53 - 1);
  assert.equal(again.lastOffset('absent'), -1);
  const bytes = idx.serialize();
  assert.throws(() => KeyIndex.deserialize(bytes.subarray(0, bytes.length - 1)), /end early|bytes/);
});

test('frame index: entries survive serialisation and find() maps an offset to its frame', () => {
  const f = new FrameIndex();
  let pos = 0;
  for (let i = 0; i < 3000; i++) {
    f.push({ firstOffset: i * 3, count: 3, schemaVersion: 1 + (i % 2), commitTime: 1700000000000 + i, pos, length: 100 + i });
    pos += 100 + i;
  }
  const g = FrameIndex.deserialize(f.serialize());
  assert.equal(g.size, 3000);
  assert.equal(g.endPos, pos);
  assert.deepEqual(g.get(1234), f.get(1234));
  assert.equal(g.find(3 * 1234 + 2), 1234);
  assert.equal(g.find(0), 0);
  assert.equal(g.commitTimeOf(3 * 1234 + 2), 1700000000000 + 1234);
  assert.equal(g.commitTimeOf(3 * 2999), 1700000000000 + 2999);
});

test('a numeric key index answers canonical key strings, keeps keys beyond 2^53 as strings, and survives serialisation', () => {
  const idx = new KeyIndex(true);
  idx.add(5, 0);
  idx.add(-3, 1);
  idx.add('9007199254740993', 2);
  idx.add('5', 3); // a canonical string is the same key as its number
  idx.add(0, 4);
  const check = (i: KeyIndex) => {
    assert.deepEqual([...i.offsetsOf('5')], [0, 3]);
    assert.deepEqual([...i.offsetsOf('-3')], [1]);
    assert.deepEqual([...i.offsetsOf('9007199254740993')], [2]);
    assert.deepEqual([...i.offsetsOf('0')], [4]);
    assert.deepEqual([...i.offsetsOf('05')], [], 'not a canonical key');
    assert.deepEqual([i.lastOffset(5), i.lastOffset('5'), i.lastOffset(-3), i.lastOffset('9007199254740993'), i.lastOffset('05'), i.lastOffset(6)], [3, 3, 1, 2, -1, -1]);
  };
  check(idx);
  check(KeyIndex.deserialize(idx.serialize(), true));
});

test('key index: random adds across loads answer offsetsOf, lastOffset and serialize as a plain map of arrays does', () => {
  // Oracle: key -> its offsets, in the order added. Keys repeat (a hot key gets many offsets) and the index is reloaded between rounds.
  // Two streams of one exact 32-bit generator (Math.imul keeps every bit; the top bits choose): keys and gaps, and offsetsIn's ranges.
  const generator = (seed: number) => (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return Math.floor((seed / 2 ** 32) * n);
  };
  const rand = generator(11);
  const draw = generator(7);
  for (const numeric of [false, true]) {
    const want = new Map<string, number[]>();
    let idx = new KeyIndex(numeric);
    let offset = 0;
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3000; i++) {
        const k = rand(10) < 3 ? 'hot' : String(rand(500));
        offset += 1 + rand(3) * rand(2 ** 23); // gaps: a rare key's delta sometimes passes 2^31
        idx.add(numeric && k !== 'hot' ? Number(k) : k, offset);
        want.set(k, [...(want.get(k) ?? []), offset]);
      }
      for (const i of [idx, KeyIndex.deserialize(idx.serialize(), numeric)]) {
        assert.equal(i.entries, [...want.values()].reduce((n, v) => n + v.length, 0));
        for (const [k, v] of want) {
          assert.deepEqual(i.offsetsOf(k), v, k);
          assert.equal(i.lastOffset(k), v[v.length - 1], k);
          // offsetsIn: a range (bounds on, between and beyond the key's offsets) and a limit, against filtering the oracle.
          const pick = () => (draw(4) === 0 ? draw(offset + 2) : v[draw(v.length)] + draw(2));
          const [from, to] = [pick(), pick()].sort((a, b) => a - b);
          const limit = draw(3) === 0 ? 1 + draw(5) : Infinity;
          assert.deepEqual(i.offsetsIn(k, from, to, limit), v.filter((o) => o >= from && o < to).slice(0, limit), `${k} [${from}, ${to}) limit ${limit}`);
          assert.deepEqual(i.offsetsIn(k, 0, Infinity), v, k);
        }
        assert.deepEqual(i.offsetsIn('never', 0, Infinity), []);
        assert.deepEqual(i.offsetsOf('never'), []);
        assert.equal(i.lastOffset('never'), -1);
      }
      idx = KeyIndex.deserialize(idx.serialize(), numeric);
    }
  }
});

test('key index: a hot key past the largest block and many keys across several arena chunks answer as a plain map of arrays does', () => {
  // Oracle: key -> its offsets in the order added. One key gets 20,000 offsets (blocks of up to 4,096), 40,000 others
  // one to three each, interleaved, so blocks of many keys sit in chunks of every size (8,192 slots doubling to 2^20).
  for (const numeric of [false, true]) {
    const want = new Map<string, number[]>();
    const idx = new KeyIndex(numeric);
    let offset = 0;
    const add = (k: string): void => {
      offset += 1 + (offset % 7 === 0 ? 2 ** 33 : 0); // some deltas past 2^32
      idx.add(numeric ? Number(k) : k, offset);
      const w = want.get(k);
      if (w) w.push(offset);
      else want.set(k, [offset]);
    };
    for (let i = 0; i < 60_000; i++) {
      add(i % 3 === 0 ? '7' : String(1000 + ((i * 7919) % 40_000)));
      if (i % 11 === 0) add('7');
    }
    const again = KeyIndex.deserialize(idx.serialize(), numeric);
    again.add(numeric ? 7 : '7', offset + 1);
    again.add(numeric ? 99 : '99', offset + 2);
    const wantAgain = new Map(want);
    wantAgain.set('7', [...want.get('7')!, offset + 1]);
    wantAgain.set('99', [offset + 2]);
    for (const [i, w] of [[idx, want], [again, wantAgain], [KeyIndex.deserialize(again.serialize(), numeric), wantAgain]] as const) {
      assert.equal(i.entries, [...w.values()].reduce((n, v) => n + v.length, 0));
      for (const [k, v] of w) {
        assert.deepEqual(i.offsetsOf(k), v, k);
        assert.equal(i.lastOffset(numeric ? Number(k) : k), v[v.length - 1], k);
      }
    }
    assert.ok(want.get('7')!.length > 20_000);
  }
});
