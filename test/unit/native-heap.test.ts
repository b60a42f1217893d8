/**
 * trimNativeHeap (native-heap.ts) gives freed C heap memory back to the OS.
 * The oracle is the kernel's count of the process's resident memory
 * (/proc/self/status), around memory glibc is known to keep: 160 MB of
 * 64 KiB blocks (below glibc's mmap threshold, so from the main arena), all
 * written, each followed by a small block that stays held while the large
 * ones are freed: free memory between live allocations, which glibc never
 * returns by itself (it trims only a free top of a heap), as after a tiering
 * step. Runs where glibc is (Linux
 * with libc.so.6); elsewhere trimNativeHeap must say it did nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { StepTrimmer, TRIM_EVERY_MS, TRIM_FOR_MS, trimNativeHeap } from '../../src/engine/native-heap.js';

const rssMb = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;

function libc(): { malloc: (n: number) => unknown; free: (p: unknown) => void; memset: (p: unknown, c: number, n: number) => unknown } | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    return { malloc: lib.func('void *malloc(size_t)'), free: lib.func('void free(void *)'), memset: lib.func('void *memset(void *, int, size_t)') };
  } catch {
    return undefined;
  }
}

test('freed C heap memory held by glibc goes back to the OS', () => {
  const c = libc();
  if (!c) {
    assert.equal(trimNativeHeap(), false);
    return;
  }
  const BLOCK = 64 * 1024;
  const blocks: unknown[] = [];
  const pins: unknown[] = [];
  for (let i = 0; i < 2560; i++) {
    const p = c.malloc(BLOCK);
    c.memset(p, 1, BLOCK);
    blocks.push(p);
    pins.push(c.malloc(64));
  }
  const held = rssMb();
  for (const p of blocks) c.free(p);
  const freed = rssMb();
  try {
    // glibc kept (nearly) all of it: each freed block lies between two held ones.
    assert.ok(held - freed < 40, `glibc returned ${(held - freed).toFixed(0)} MB by itself; the test's premise does not hold`);
    assert.equal(trimNativeHeap(), true);
    const trimmed = rssMb();
    assert.ok(freed - trimmed > 120, `RSS ${held.toFixed(0)} MB held, ${freed.toFixed(0)} freed, ${trimmed.toFixed(0)} after the trim: under 120 MB returned`);
  } finally {
    for (const p of pins) c.free(p);
  }
});

test('after a tiering step: a trim at once, then every TRIM_EVERY_MS until TRIM_FOR_MS after the last step', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  // In steps of a second: Node 20's mock runs a timer set by a timer's callback only on a later tick.
  const advance = (ms: number) => {
    for (let i = 0; i < ms; i += 1000) t.mock.timers.tick(Math.min(1000, ms - i));
  };
  let trims = 0;
  const s = new StepTrimmer(() => trims++);
  s.afterStep();
  assert.equal(trims, 1);
  advance(TRIM_EVERY_MS - 1);
  assert.equal(trims, 1);
  advance(1);
  assert.equal(trims, 2);
  // A new step: trimmed at once, and the period starts again from it (no second timer).
  s.afterStep();
  assert.equal(trims, 3);
  advance(TRIM_FOR_MS);
  assert.equal(trims, 3 + TRIM_FOR_MS / TRIM_EVERY_MS);
  advance(10 * TRIM_EVERY_MS);
  assert.equal(trims, 3 + TRIM_FOR_MS / TRIM_EVERY_MS, 'no trims once the period after the last step is over');
  s.afterStep();
  assert.equal(trims, 4 + TRIM_FOR_MS / TRIM_EVERY_MS);
  advance(TRIM_EVERY_MS);
  assert.equal(trims, 5 + TRIM_FOR_MS / TRIM_EVERY_MS, 'a step after the period starts it again');
});
