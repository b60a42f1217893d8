/**
 * One suite for the OnlineStore interface, run against every implementation:
 * the embedded store, Redis through ioredis-mock, and the real Redis at
 * 127.0.0.1:6379, with lookups over ioredis and over the lean client asof
 * serve uses (skipped locally when it does not answer; CI=true fails
 * instead). The definition mirror (Redis only) has its own suite below.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import RedisMock from 'ioredis-mock';
import type { EntityState } from '../../src/features/evaluator.js';
import type { FeatureViewDef } from '../../src/features/definitions.js';
import { EmbeddedOnlineStore } from '../../src/online/embedded.js';
import { RedisOnlineStore } from '../../src/online/redis.js';
import { RedisDefinitionMirror } from '../../src/online/redis-mirror.js';
import { RedisLookupReader } from '../../src/online/redis-reader.js';
import { silentLogger } from '../../src/logger.js';
import { WatermarkConflict, type OnlineStore } from '../../src/online/store.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

interface Impl {
  name: string;
  make(): Promise<{ store: OnlineStore; redis?: Redis; cleanup(): Promise<void> }>;
  skip?: () => boolean;
}

let realRedis = false;

/** A namespace reset and, in a shared store, marked built: what the materializer leaves once caught up. */
async function fresh(store: OnlineStore, ns: string, lineage: string): Promise<void> {
  await store.reset(ns, lineage);
  await store.built?.(ns);
}

/** Decoded states and the watermark, as the materializer reads them. */
async function read(store: OnlineStore, ns: string, keys: string[]): Promise<{ states: (EntityState | undefined)[]; watermark: number | null }> {
  const { encoded, watermark, decode } = await store.readEncoded(ns, keys);
  return { states: encoded.map((x, e) => (x === undefined ? undefined : decode(e))), watermark };
}

const IMPLS: Impl[] = [
  { name: 'embedded', make: async () => ({ store: new EmbeddedOnlineStore(), cleanup: async () => undefined }) },
  {
    name: 'redis (ioredis-mock)',
    make: async () => {
      const redis = new RedisMock() as unknown as Redis;
      return { store: new RedisOnlineStore(redis, uniquePrefix('mock')), redis, cleanup: async () => redis.disconnect() };
    },
  },
  {
    name: 'redis (127.0.0.1:6379)',
    skip: () => !realRedis,
    make: async () => {
      const redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
      const prefix = uniquePrefix('contract');
      return {
        store: new RedisOnlineStore(redis, prefix),
        redis,
        cleanup: async () => {
          await deletePrefix(SHARED_REDIS_URL, prefix);
          redis.disconnect();
        },
      };
    },
  },
  {
    // Lookups over the lean client (redis-reader.ts), as asof serve uses it for redis:// URLs.
    name: 'redis (127.0.0.1:6379, lean lookup client)',
    skip: () => !realRedis,
    make: async () => {
      const redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
      const prefix = uniquePrefix('contract-lean');
      const reader = new RedisLookupReader(SHARED_REDIS_URL, 500, silentLogger);
      await reader.whenReady(2000);
      return {
        store: new RedisOnlineStore(redis, prefix, reader),
        redis,
        cleanup: async () => {
          await deletePrefix(SHARED_REDIS_URL, prefix);
          redis.disconnect();
          reader.close();
        },
      };
    },
  },
];

before(async () => {
  realRedis = await sharedRedisOrSkip();
});

/** States with every kind of value a state can hold (JSON-safe; int64 beyond 2^53 as strings). */
const STATES: Record<string, EntityState> = {
  pk: { b: [1767225600123, 42, [1.5, -0.1, 0, 17, -9007199254740991, '9223372036854775807', 'héllo ✓ 𝄞', '', true, false, null]] },
  log: {
    b: [1767225600000, 7, [3.25, null]],
    f: [[1767229200000, 9, [4, 'later']]],
    w: [
      [1767225000000, 3, 2.5, 'a'],
      [1767225600000, 7, null, 'b'],
    ],
  },
  nested: { b: [0, 0, [[1, [2, { a: 'x', 'b:c': [null, 1e300, -1e-300] }]], { deep: { er: [true] } }]] },
  empty: {},
};

for (const impl of IMPLS) {
  describe(`OnlineStore contract: ${impl.name}`, () => {
    let store: OnlineStore;
    let cleanup: () => Promise<void>;
    before(async () => {
      if (impl.skip?.()) return;
      ({ store, cleanup } = await impl.make());
    });
    after(async () => {
      if (impl.skip?.()) return;
      await cleanup();
      await store.close();
    });
    const it = (name: string, fn: () => Promise<void>) => test(name, async (t) => (impl.skip?.() ? t.skip('Redis does not answer at 127.0.0.1:6379') : fn()));

    it('a namespace that does not exist reads as no states and a null watermark, and has no meta', async () => {
      const r = await read(store, 'absent@1', ['a', 'b']);
      assert.deepEqual(r, { states: [undefined, undefined], watermark: null });
      assert.equal(await store.meta('absent@1'), undefined);
    });

    it('reset creates an empty namespace at watermark -1 with its lineage', async () => {
      await fresh(store, 'ns1@1', 'lineage-1');
      assert.deepEqual(await store.meta('ns1@1'), { watermark: -1, lineage: 'lineage-1' });
      assert.deepEqual(await read(store, 'ns1@1', ['x']), { states: [undefined], watermark: -1 });
    });

    it('a shared store reads a namespace as none from its reset until it is built, writes included; an in-process one has no such step', async () => {
      await store.reset('building@1', 'l');
      await store.write('building@1', [['a', { b: [1, 0, [1]] }]], -1, 0);
      if (!store.built) {
        assert.equal((await read(store, 'building@1', ['a'])).watermark, 0);
        return;
      }
      // Its states are an older state than the changelog's while it is rebuilt: a replica must not serve them.
      assert.deepEqual(await read(store, 'building@1', ['a']), { states: [{ b: [1, 0, [1]] }], watermark: null });
      assert.deepEqual(await store.meta('building@1'), { watermark: 0, lineage: 'l', building: true });
      await store.built('building@1');
      assert.deepEqual(await read(store, 'building@1', ['a']), { states: [{ b: [1, 0, [1]] }], watermark: 0 });
    });

    it('written states read back equal, in key order, with the watermark of the write', async () => {
      await fresh(store, 'rt@1', 'l');
      const keys = Object.keys(STATES);
      await store.write('rt@1', keys.map((k) => [k, STATES[k]]), -1, 10);
      const r = await read(store, 'rt@1', ['nope', ...keys.slice().reverse()]);
      assert.equal(r.watermark, 10);
      assert.deepEqual(r.states, [undefined, ...keys.slice().reverse().map((k) => STATES[k])]);
      // Encoded reads decode to the same states, synchronously where the store can.
      const encoded = await store.readEncoded('rt@1', ['nope', ...keys]);
      assert.equal(encoded.watermark, 10);
      assert.equal(encoded.encoded[0], undefined);
      assert.deepEqual(keys.map((_, i) => encoded.decode(i + 1)), keys.map((k) => STATES[k]));
      if (store.readEncodedSync) {
        const sync = store.readEncodedSync('rt@1', ['nope', ...keys]);
        assert.deepEqual([sync.encoded, sync.watermark, keys.map((_, i) => sync.decode(i + 1))], [encoded.encoded, 10, keys.map((k) => STATES[k])]);
      }
      assert.deepEqual((await store.readEncoded('absent@1', ['a'])).watermark, null);
    });

    it('undefined deletes an entity; other entities stay', async () => {
      await fresh(store, 'del@1', 'l');
      await store.write('del@1', [['a', STATES.pk], ['b', STATES.log]], -1, 0);
      await store.write('del@1', [['a', undefined]], 0, 1);
      assert.deepEqual(await read(store, 'del@1', ['a', 'b']), { states: [undefined, STATES.log], watermark: 1 });
    });

    it('a write expecting another watermark is refused and changes nothing', async () => {
      await fresh(store, 'cas@1', 'l');
      await store.write('cas@1', [['a', STATES.pk]], -1, 5);
      await assert.rejects(store.write('cas@1', [['a', STATES.log], ['b', STATES.log]], 3, 6), (e: unknown) => e instanceof WatermarkConflict && e.found === 5 && e.expected === 3);
      assert.deepEqual(await read(store, 'cas@1', ['a', 'b']), { states: [STATES.pk, undefined], watermark: 5 });
    });

    it('a write to a namespace that does not exist is refused (the store lost it; the writer must rebuild)', async () => {
      await assert.rejects(store.write('never@1', [['a', STATES.pk]], -1, 0), (e: unknown) => e instanceof WatermarkConflict && e.found === null);
      assert.equal(await store.meta('never@1'), undefined);
    });

    it('reset drops every state of the namespace and only of that namespace', async () => {
      await fresh(store, 'r1@1', 'l');
      await fresh(store, 'r2@1', 'l');
      await store.write('r1@1', [['a', STATES.pk]], -1, 3);
      await store.write('r2@1', [['a', STATES.log]], -1, 4);
      await fresh(store, 'r1@1', 'l2');
      assert.deepEqual(await read(store, 'r1@1', ['a']), { states: [undefined], watermark: -1 });
      assert.deepEqual(await store.meta('r1@1'), { watermark: -1, lineage: 'l2' });
      assert.deepEqual(await read(store, 'r2@1', ['a']), { states: [STATES.log], watermark: 4 });
    });

    it('clear removes the namespace', async () => {
      await fresh(store, 'gone@1', 'l');
      await store.write('gone@1', [['a', STATES.pk]], -1, 0);
      await store.clear('gone@1');
      assert.equal(await store.meta('gone@1'), undefined);
      assert.deepEqual(await read(store, 'gone@1', ['a']), { states: [undefined], watermark: null });
    });

    it('entity keys with separators, unicode, and the names of meta fields do not collide', async () => {
      await fresh(store, 'keys@1', 'l');
      const keys = ['', ':', 'e:x', '_w', '_l', 'ключ', '{"a":1}', 'a b', '-1'];
      await store.write('keys@1', keys.map((k, i) => [k, { b: [i, i, [k]] }]), -1, 0);
      const r = await read(store, 'keys@1', keys);
      assert.deepEqual(r.states, keys.map((k, i) => ({ b: [i, i, [k]] })));
      assert.deepEqual(await store.meta('keys@1'), { watermark: 0, lineage: 'l' }, 'entities named like meta fields leave the meta alone');
    });

    it('a large write (10,000 entities) is one unit', async () => {
      await fresh(store, 'big@1', 'l');
      const entries: [string, EntityState][] = Array.from({ length: 10_000 }, (_, i) => [`k${i}`, { b: [i, i, [i * 0.5, `v${i}`]] }]);
      await store.write('big@1', entries, -1, 9_999);
      const pick = [0, 1, 4_999, 9_999];
      const r = await read(store, 'big@1', pick.map((i) => `k${i}`));
      assert.equal(r.watermark, 9_999);
      assert.deepEqual(r.states, pick.map((i) => ({ b: [i, i, [i * 0.5, `v${i}`]] })));
      await store.write('big@1', entries.slice(0, 5_000).map(([k]) => [k, undefined]), 9_999, 10_000);
      assert.deepEqual((await read(store, 'big@1', ['k0', 'k4999', 'k5000'])).states, [undefined, undefined, { b: [5000, 5000, [2500, 'v5000']] }]);
    });

    it('a read of 2,500 keys, for a lookup or for a write, gives the same states and watermark', async () => {
      await fresh(store, 'wide@1', 'l');
      const keys = Array.from({ length: 2_500 }, (_, i) => `k${i}`);
      await store.write('wide@1', keys.map((k, i): [string, EntityState] => [k, { b: [i, i, [`${'x'.repeat(i % 50)}${i}`]] }]), -1, 4);
      const decoded = async (forWrite: boolean) => {
        const r = await store.readEncoded('wide@1', ['nope', ...keys], forWrite);
        return { watermark: r.watermark, states: r.encoded.map((x, e) => (x === undefined ? undefined : r.decode(e))) };
      };
      const want = { watermark: 4, states: [undefined, ...keys.map((_, i) => ({ b: [i, i, [`${'x'.repeat(i % 50)}${i}`]] }))] };
      assert.deepEqual(await decoded(false), want);
      assert.deepEqual(await decoded(true), want);
    });
  });
}

test('Redis: a commit of 150,000 entities is written and read back (arguments past what a spread can carry)', async (t) => {
  if (!realRedis) return t.skip('Redis does not answer at 127.0.0.1:6379');
  // A commit of 100,000 rows (the default ASOF_MAX_BATCH_ROWS) writes 200,000 arguments; spread into a call they overflowed the stack, and the view's runner retried that commit forever.
  const redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
  const prefix = uniquePrefix('contract-huge');
  const store = new RedisOnlineStore(redis, prefix);
  try {
    await fresh(store, 'huge@1', 'l');
    const keys = Array.from({ length: 150_000 }, (_, i) => `k${i}`);
    await store.write('huge@1', keys.map((k, i): [string, EntityState] => [k, { b: [i, i, [i]] }]), -1, 149_999);
    const r = await store.readEncoded('huge@1', keys, true);
    assert.equal(r.watermark, 149_999);
    for (const e of [0, 1, 77_777, 149_999]) assert.deepEqual(r.decode(e), { b: [e, e, [e]] });
    assert.equal(r.encoded.filter((x) => x === undefined).length, 0);
    await store.write('huge@1', keys.map((k): [string, undefined] => [k, undefined]), 149_999, 150_000);
    assert.deepEqual((await read(store, 'huge@1', ['k0', 'k149999'])).states, [undefined, undefined]);
  } finally {
    await deletePrefix(SHARED_REDIS_URL, prefix);
    await store.close();
  }
});

test('Redis with the lean reader: lookups of any size read on the lookup connection, the materializer\'s reads on the writes\' one', async (t) => {
  if (!realRedis) return t.skip('Redis does not answer at 127.0.0.1:6379');
  // A large lookup on the writes' connection would sit in line with the writes that ingest acknowledgements wait for.
  const redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
  const reader = new RedisLookupReader(SHARED_REDIS_URL, 500, silentLogger);
  const prefix = uniquePrefix('contract-route');
  const store = new RedisOnlineStore(redis, prefix, reader);
  try {
    await reader.whenReady(2000);
    const calls = { lookups: 0, writes: 0 };
    const hmget = reader.hmget.bind(reader);
    reader.hmget = (key, fields) => (calls.lookups++, hmget(key, fields));
    const hmgetBuffer = redis.hmgetBuffer.bind(redis) as (key: string, ...fields: string[]) => Promise<(Buffer | null)[]>;
    (redis as unknown as { hmgetBuffer: typeof hmgetBuffer }).hmgetBuffer = (key, ...fields) => (calls.writes++, hmgetBuffer(key, ...fields));
    await fresh(store, 'route@1', 'l');
    const keys = Array.from({ length: 2_500 }, (_, i) => `k${i}`);
    await store.write('route@1', keys.map((k, i): [string, EntityState] => [k, { b: [i, i, [i]] }]), -1, 1);
    assert.equal((await store.readEncoded('route@1', keys)).watermark, 1);
    assert.deepEqual(calls, { lookups: 1, writes: 0 }, 'a 2,500-key lookup reads on the lookup connection');
    assert.equal((await store.readEncoded('route@1', keys.slice(0, 3), true)).watermark, 1);
    assert.deepEqual(calls, { lookups: 1, writes: 1 }, "the materializer's read goes on the writes' connection");
  } finally {
    await deletePrefix(SHARED_REDIS_URL, prefix);
    await store.close();
  }
});

describe('definition mirror contract (Redis: ioredis-mock and 127.0.0.1:6379)', () => {
  const view = (name: string, version: number): FeatureViewDef => ({ name, source: 't', entity: 'id', features: [{ name: 'f', column: 'c' }], version, createdAt: 1, updatedAt: 2 });
  for (const real of [false, true]) {
    test(real ? 'real Redis' : 'ioredis-mock', async (t) => {
      if (real && !realRedis) return t.skip('Redis does not answer at 127.0.0.1:6379');
      const redis = real ? new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 }) : (new RedisMock() as unknown as Redis);
      const prefix = uniquePrefix('mirror');
      try {
        const a = new RedisDefinitionMirror(redis, prefix);
        assert.deepEqual(await a.load(), { views: [], services: [], tables: [], revision: 0 });
        const r0 = await a.revision();
        const table = { name: 't', kind: 'pk' as const, columns: [{ name: 'id', type: 'string', nullable: false }], primaryKey: ['id'], schemaVersions: [{ version: 1, columnCount: 1, createdAt: 0 }], createdAt: 0 };
        await a.publish({ views: [view('v1', 1)], services: [], tables: [table] });
        const r1 = await a.revision();
        assert.notEqual(r1, r0, 'publishing moves the revision');
        // A second primary publishes its own view: both are kept.
        const b = new RedisDefinitionMirror(redis, prefix);
        await b.publish({ views: [view('v2', 1)], services: [{ name: 's', features: ['v2:f'], createdAt: 3 }], tables: [] });
        await a.publish({ views: [view('v1', 2)], services: [], tables: [] });
        const loaded = await b.load();
        assert.deepEqual(loaded.views.sort((x, y) => x.name.localeCompare(y.name)), [view('v1', 2), view('v2', 1)]);
        assert.deepEqual(loaded.services, [{ name: 's', features: ['v2:f'], createdAt: 3 }]);
        assert.deepEqual(loaded.tables, [table]);
        assert.equal(loaded.revision, await a.revision());
        const other = new RedisDefinitionMirror(redis, uniquePrefix('mirror-other'));
        assert.deepEqual((await other.load()).views, [], 'prefixes separate deployments');
      } finally {
        if (real) await deletePrefix(SHARED_REDIS_URL, prefix);
        redis.disconnect();
      }
    });
  }
});
