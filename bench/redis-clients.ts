/**
 * The two Redis lookup clients alone, in one process: what one lookup's HMGET
 * (21 fields of a hash of 1,000 entity states, as a GET of 20 features reads
 * them) costs this process in CPU, through the lean client
 * (src/online/redis-reader.ts) and through ioredis configured as asof
 * configures its lookup connection (src/online/redis.ts), 32 in flight, in
 * alternating rounds of 2 s. A client's CPU is what a server pays per lookup
 * on top of the rest of it; it is far steadier on a loaded machine than req/s.
 * Then large replies: HMGETs of 100 states of 100 kB (10 MB a reply, read in
 * the socket's 64 kB chunks), one at a time, as a batch lookup of entities
 * with long windows reads them: the client's CPU per lookup, which is also
 * how long it holds the event loop.
 * Not a test: it prints, it asserts nothing.
 *
 *   npm run bench:redis-clients   (REDIS_URL=redis://127.0.0.1:6379 ROUNDS=5 by default)
 */
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { RedisLookupReader } from '../src/online/redis-reader.js';
import { connectRedis } from '../src/online/redis.js';
import { silentLogger } from '../src/logger.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const KEY = `asof-bench-redis-clients-${process.pid}`;

/** An entity's state as the online store holds it in Redis: JSON of about 20 values. */
const state = (i: number): string => JSON.stringify({ b: Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`f${k}`, { v: [k < 10 ? (i * (k + 7)) / 100 : `value-${i % 8}`], t: 1767225600000 + i }])) });

async function main(): Promise<void> {
  const setup = new Redis(REDIS_URL);
  await setup.hset(KEY, '_w', '1', ...Array.from({ length: 1000 }, (_, i) => [`e:${i}`, state(i)]).flat());
  const lean = new RedisLookupReader(REDIS_URL, 500, silentLogger);
  await lean.whenReady(2000);
  const io = await connectRedis(REDIS_URL, silentLogger, 500);
  const clients: [string, (f: string[]) => Promise<unknown>][] = [
    ['lean client', (f) => lean.hmget(KEY, f)],
    ['ioredis', (f) => io.hmget(KEY, ...f)],
  ];
  const us = new Map<string, number[]>(clients.map(([n]) => [n, []]));
  try {
    // Round 0 warms up.
    for (let round = 0; round <= ROUNDS; round++) {
      for (const [name, hmget] of clients) {
        let n = 0;
        const cpu0 = process.cpuUsage();
        const until = performance.now() + 2000;
        await Promise.all(
          Array.from({ length: 32 }, async (_, w) => {
            for (let i = w; performance.now() < until; i += 32, n++) {
              const f = ['_w'];
              for (let k = 0; k < 20; k++) f.push(`e:${(i * 7 + k) % 1000}`);
              await hmget(f);
            }
          }),
        );
        const cpu = process.cpuUsage(cpu0);
        if (round > 0) us.get(name)!.push((cpu.user + cpu.system) / n);
      }
    }
  } finally {
    await setup.del(KEY);
    setup.disconnect();
    lean.close();
    io.disconnect();
  }
  console.log(`HMGET of 21 fields, 32 in flight, client CPU µs per lookup, median of ${ROUNDS} alternating rounds of 2 s (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}):`);
  for (const [name, xs] of us) console.log(`  ${name}: ${median(xs).toFixed(2)} (rounds ${xs.map((x) => x.toFixed(2)).join(', ')})`);
  await largeReplies();
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** HMGETs of 100 states of 100 kB each, one at a time: client CPU ms per lookup, lean client against ioredis (Buffer replies, as asof's ioredis reader asks for them). */
async function largeReplies(): Promise<void> {
  const key = `${KEY}-large`;
  const setup = new Redis(REDIS_URL);
  const big = (i: number): string => JSON.stringify({ b: [1767225600000 + i, i, Array.from({ length: 7000 }, (_, k) => (i * 7 + k) / 100)] }).slice(0, 100_000);
  await setup.hset(key, '_w', '1', ...Array.from({ length: 100 }, (_, i) => [`e:${i}`, big(i)]).flat());
  const lean = new RedisLookupReader(REDIS_URL, 5000, silentLogger);
  await lean.whenReady(2000);
  const io = await connectRedis(REDIS_URL, silentLogger, 5000);
  const fields = ['_w', ...Array.from({ length: 100 }, (_, i) => `e:${i}`)];
  const clients: [string, () => Promise<unknown>][] = [
    ['lean client', () => lean.hmget(key, fields)],
    ['ioredis', () => io.hmgetBuffer(key, ...fields)],
  ];
  const ms = new Map<string, number[]>(clients.map(([n]) => [n, []]));
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      for (const [name, hmget] of clients) {
        const cpu0 = process.cpuUsage();
        for (let i = 0; i < 5; i++) await hmget();
        const cpu = process.cpuUsage(cpu0);
        if (round > 0) ms.get(name)!.push((cpu.user + cpu.system) / 5 / 1000);
      }
    }
  } finally {
    await setup.del(key);
    setup.disconnect();
    lean.close();
    io.disconnect();
  }
  console.log(`HMGET of 100 states of 100 kB (10 MB replies), one at a time, client CPU ms per lookup, median of ${ROUNDS} alternating rounds of 5:`);
  for (const [name, xs] of ms) console.log(`  ${name}: ${median(xs).toFixed(1)} (rounds ${xs.map((x) => x.toFixed(1)).join(', ')})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
