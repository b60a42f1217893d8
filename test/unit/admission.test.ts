import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gate, retryAfterOf } from '../../src/admission.js';
import { AsofError } from '../../src/errors.js';

const overloaded = (fn: () => unknown): AsofError => {
  try {
    fn();
  } catch (e) {
    return e as AsofError;
  }
  throw new Error('expected ASOF_OVERLOADED');
};

test('a gate admits up to its limit at once, queues in order up to its queue, refuses beyond with Retry-After', async () => {
  const g = new Gate('writes', { inFlight: 2, queue: 2, maxWaitMs: 10_000 });
  const a = g.enter();
  const b = g.enter();
  assert.equal(typeof a, 'function', 'a free slot answers without a promise');
  assert.equal(typeof b, 'function');
  const order: string[] = [];
  const c = (g.enter() as Promise<() => void>).then((r) => (order.push('c'), r));
  const d = (g.enter() as Promise<() => void>).then((r) => (order.push('d'), r));
  const e = overloaded(() => g.enter());
  assert.equal(e.code, 'ASOF_OVERLOADED');
  assert.equal(e.httpStatus, 429);
  assert.equal(retryAfterOf(e), 1);
  assert.equal(g.refused, 1);
  assert.equal(g.queued, 2);
  (a as () => void)();
  (a as () => void)(); // releasing twice frees one slot only
  const rc = await c;
  assert.deepEqual(order, ['c']);
  assert.equal(g.active, 2);
  (b as () => void)();
  const rd = await d;
  assert.deepEqual(order, ['c', 'd']);
  rc();
  rd();
  assert.equal(g.active, 0);
});

test('the byte budget: bodies admitted together stay under it; one larger body is admitted alone', async () => {
  const g = new Gate('writes', { inFlight: 10, queue: 10, maxWaitMs: 10_000, bytes: 100 });
  const a = g.enter(60) as () => void;
  const waiting = g.enter(60);
  assert.ok(waiting instanceof Promise, '60 + 60 > 100 waits');
  a();
  const b = await waiting;
  assert.equal(g.activeBytes, 60);
  b();
  const huge = g.enter(500);
  assert.equal(typeof huge, 'function', 'alone, a body over the budget is admitted');
  assert.ok(g.enter(1) instanceof Promise, 'nothing joins it');
});

test('a request that waits longer than maxWaitMs is refused; drain refuses the queue with 503', async () => {
  const g = new Gate('lookups', { inFlight: 1, queue: 5, maxWaitMs: 30 });
  g.enter();
  // The gate's timers are unref'd (they never hold a stopping server up): keep the loop alive meanwhile.
  const alive = setTimeout(() => undefined, 1000);
  await assert.rejects(g.enter() as Promise<unknown>, (e: AsofError) => e.code === 'ASOF_OVERLOADED');
  clearTimeout(alive);
  const q = g.enter() as Promise<unknown>;
  g.drain();
  await assert.rejects(q, (e: AsofError) => e.code === 'ASOF_NOT_READY');
  assert.equal(g.queued, 0);
});

test('a charge of an admitted call never queues behind calls waiting for a slot (no deadlock)', () => {
  const g = new Gate('writes', { inFlight: 1, queue: 5, maxWaitMs: 10_000, bytes: 100 });
  const stream = g.enter() as () => void;
  const next = g.enter(10);
  assert.ok(next instanceof Promise, 'the next call waits for the one slot, which the stream holds');
  // The stream's next message: if it queued behind that call, neither would ever go on.
  const message = g.charge(50);
  assert.equal(typeof message, 'function', 'charged at once');
  assert.equal(g.activeBytes, 50);
  (message as () => void)();
  assert.equal(g.activeBytes, 0);
  stream();
  return next.then((r) => r());
});

test('a charge waits only for bytes, goes before calls waiting for a slot, and passes alone whatever its size', async () => {
  const g = new Gate('writes', { inFlight: 3, queue: 5, maxWaitMs: 10_000, bytes: 100 });
  const body = g.enter(80) as () => void;
  const stream = g.enter() as () => void;
  const order: string[] = [];
  const charged = (g.charge(50) as Promise<() => void>).then((r) => (order.push('charge'), r));
  assert.equal(g.active, 2, 'a waiting charge takes no slot');
  // Room for this one (a slot, and 80 + 10 <= 100), but the charge waits first.
  const small = g.enter(10);
  assert.ok(small instanceof Promise, 'a new call does not pass a waiting charge');
  const admitted = small.then((r) => (order.push('small'), r));
  body();
  const [c, s] = await Promise.all([charged, admitted]);
  assert.deepEqual(order, ['charge', 'small']);
  assert.equal(g.activeBytes, 60);
  c();
  s();
  const huge = g.charge(500);
  assert.equal(typeof huge, 'function', 'with no bytes in use, a message over the budget is charged');
  const after = g.charge(1);
  assert.ok(after instanceof Promise, 'nothing joins it');
  (huge as () => void)();
  (await after)();
  stream();
  assert.deepEqual([g.active, g.activeBytes], [0, 0]);
});

test('drain refuses waiting charges with 503, as it does waiting calls', async () => {
  const g = new Gate('writes', { inFlight: 2, queue: 5, maxWaitMs: 10_000, bytes: 10 });
  g.enter(10);
  g.enter();
  const waiting = g.charge(5) as Promise<unknown>;
  g.drain();
  await assert.rejects(waiting, (e: AsofError) => e.code === 'ASOF_NOT_READY');
});

test('a 429 says what is in flight (requests and bytes of the byte budget), not only the limits', () => {
  const budget = 64 * 1024 * 1024;
  const g = new Gate('writes', { inFlight: 16, queue: 0, maxWaitMs: 10_000, bytes: budget });
  const whole = g.enter(budget) as () => void;
  assert.equal(typeof whole, 'function');
  const e = overloaded(() => g.enter(100));
  // One body holds the whole budget: the message says one, and its bytes, not "16 at once".
  assert.match(e.message, /^too many writes in flight: 1 at once \(limit 16\), holding 64 MiB of the 64 MiB byte budget; /);
  assert.deepEqual(
    { inFlight: (e.details as any).inFlight, inFlightBytes: (e.details as any).inFlightBytes, maxInFlightBytes: (e.details as any).maxInFlightBytes },
    { inFlight: 1, inFlightBytes: budget, maxInFlightBytes: budget },
  );
  whole();
});

test('tryCharge: a body of unknown length grows while the budget has room, alone past it, and never waits', () => {
  const g = new Gate('writes', { inFlight: 4, queue: 4, maxWaitMs: 10_000, bytes: 100 });
  const a = g.enter(10) as () => void;
  const b = g.enter(40) as () => void;
  const more = g.tryCharge(40, 10);
  assert.equal(typeof more, 'function', '10 + 40 + 40 fit in 100');
  assert.equal(g.tryCharge(20, 50), undefined, '90 + 20 is past 100 with another body in flight');
  assert.equal(g.activeBytes, 90);
  b();
  const alone = g.tryCharge(500, 50);
  assert.equal(typeof alone, 'function', 'the only body in flight grows past the budget, as one larger body is admitted alone');
  alone!();
  more!();
  a();
  assert.equal(g.activeBytes, 0);
});

test('small bodies are not charged to the byte budget and pass bodies that wait for bytes, never slots', async () => {
  const g = new Gate('writes', { inFlight: 3, queue: 10, maxWaitMs: 10_000, bytes: 100, smallBytes: 10 });
  const whole = g.enter(100) as () => void;
  const large = g.enter(50);
  assert.ok(large instanceof Promise, 'a large body waits for bytes');
  const small = g.enter(10);
  assert.equal(typeof small, 'function', 'a small body passes it: a slot is free and it takes no bytes');
  assert.equal(g.activeBytes, 100);
  const third = g.enter(5) as () => void;
  assert.equal(typeof third, 'function');
  const fourth = g.enter(5);
  assert.ok(fourth instanceof Promise, 'with every slot taken, a small body waits for one like any other');
  (small as () => void)();
  await fourth;
  assert.equal(g.active, 3);
  whole();
  third();
  await large;
  assert.equal(g.activeBytes, 50, 'the large body goes once the bytes are back');
});
