/**
 * The lookup cache's doorkeeper: admission on the second miss, and memory
 * bounded whatever the size of the keys (encoded states can be megabytes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Doorkeeper, LookupCache } from '../../src/online/lookup-cache.js';
import { entityEval } from '../../src/online/evaluation.js';
import { heapAfterGc } from '../helpers.js';

const entry = () => entityEval({ values: [1], statuses: ['PRESENT'], eventTimes: [null] }, 0, Infinity);

test('a state is admitted on its second miss, string and number keys alike, and forgotten after two generations', () => {
  const cache = new LookupCache(4096 * 1000);
  for (const key of ['s1', 7, 2 ** 40 + 3, 'x'.repeat(5000)]) {
    assert.equal(cache.offer('v@1', key, entry()), false, `first miss of ${String(key).slice(0, 10)}`);
    assert.equal(cache.offer('v@1', key, entry()), true, `second miss of ${String(key).slice(0, 10)}`);
  }
  const door = new Doorkeeper(1000);
  assert.equal(door.firstSight('k'), true);
  for (let i = 0; i < 1500; i++) door.firstSight(`other ${i}`);
  assert.equal(door.firstSight('k'), false, 'still remembered in the previous generation');
  for (let i = 0; i < 2000; i++) door.firstSight(`more ${i}`);
  assert.equal(door.firstSight('k'), true, 'forgotten after two generations');
  // Numbers that differ only above 32 bits (versions) are told apart.
  assert.equal(door.firstSight(2 ** 33), true);
  assert.equal(door.firstSight(2 ** 34), true);
  // Long keys that differ in their sampled characters are told apart too.
  const long = (c: string) => 'a'.repeat(100_000) + c + 'a'.repeat(100_000);
  assert.equal(door.firstSight(long('a')), true);
  assert.equal(door.firstSight('b'.repeat(200_001)), true);
  door.clear();
  assert.equal(door.firstSight('k'), true, 'cleared');
});

test('the doorkeeper keeps no key: 64 states of 1 MB each leave the heap as it was', () => {
  const cache = new LookupCache(64 * 1024 * 1024);
  const before = heapAfterGc();
  for (let i = 0; i < 64; i++) {
    // A flat, distinct 1 MB string each (an encoded window state), offered once: remembered, not admitted.
    const key = Buffer.alloc(1 << 20, 97 + (i % 26)).toString('latin1') + i;
    assert.equal(cache.offer('v@1', key, entry()), false);
  }
  const grown = heapAfterGc() - before;
  assert.ok(grown < 8 << 20, `the heap grew by ${(grown / 2 ** 20).toFixed(1)} MB`);
  assert.equal(cache.size, 0);
});

test('cold traffic: the cache is consulted by one lookup in 8 while nearly nothing hits, and by every lookup again once a working set comes back', () => {
  const cache = new LookupCache(64 * 1024 * 1024);
  const look = (key: string): boolean => {
    if (cache.get('v@1', key, 0) !== undefined) return true;
    cache.offer('v@1', key, entry());
    return false;
  };
  look('hot');
  look('hot');
  assert.equal(look('hot'), true, 'admitted on its second miss');
  // Every key once, and the admitted one every 100th lookup: 1% hits, below the 1 in 64 that keeps the cache consulted.
  let hotHits = 0;
  for (let i = 0; i < 400_000; i++) {
    if (i % 100 === 0) {
      const hit = look('hot');
      if (i >= 300_000) hotHits += Number(hit);
    } else look(`cold ${i}`);
  }
  // 1,000 lookups of 'hot' in the last 100,000: answered by about 1 in 8 (every one, without sampling).
  assert.ok(hotHits > 60 && hotHits < 200, `hot hits ${hotHits} of 1000`);
  // A cycle longer than the doorkeeper remembers (16,384 to 32,768 lookups here) is admitted no more than without
  // sampling: the skipped lookups count toward its generations, or it would remember 8 times as many lookups.
  let cycleHits = 0;
  for (let i = 0; i < 500_000; i++) cycleHits += Number(look(`cycle ${i % 90_000}`));
  assert.ok(cycleHits < 1000, `cycle hits ${cycleHits}`);
  // The cached state alone again (hot traffic after cold): every lookup consults the cache again within 70,000.
  let back = 0;
  for (let i = 0; i < 80_000; i++) if (look('hot') && i >= 70_000) back++;
  assert.equal(back, 10_000, 'hits of the last 10,000');
  // A working set of 1,000 states again: within two windows it is admitted and hits nearly always.
  let recent = 0;
  for (let i = 0; i < 1_200_000; i++) {
    const hit = look(`set ${i % 1000}`);
    if (i >= 1_190_000) recent += Number(hit);
  }
  assert.ok(recent >= 9_900, `hits ${recent} of the last 10,000`);
});
