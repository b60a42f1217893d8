/**
 * The CPU cost of a cold lookup in one process, without HTTP: the lookup
 * service's `evaluate` and the REST renderer's `renderMany` over the cold
 * batches of bench/online.ts (100 entities each, every one evaluated afresh),
 * for two asof instances in this process, interleaved slice by slice:
 *
 *   npm run bench:online-cpu [-- --redis --rounds 200 --against ../other-checkout/dist]
 *
 * With `--against DIR`, the second instance is another build (the `dist`
 * folder of a built checkout, e.g. main before a change), and the ratio of
 * pairs says what the change did. Without it, both are this build: the ratio
 * shows how far apart two identical runs land (the noise floor).
 *
 * Why: on shared machines the server-level figures of bench/online.ts swing
 * by 1.5x or more from one round to the next for the same build (3.7 to 6.6
 * µs of CPU per entity, session 18), more than most changes to the lookup
 * path are worth. Here each slice of 100 batches runs on both instances
 * within milliseconds, in alternating order, so drift weighs on both alike.
 * The figure is lower than a server's (no parsing, routing or socket
 * writes, and warmer caches); it measures the lookup path, not the product.
 * Not a test: it prints, it asserts nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './lib.js';
import { BATCH, ENTITIES, entityId, FEATURES, HOT, loadUsers, tiered } from './online-data.js';
import { REDIS_URL } from './online-load.js';
import { deletePrefix, redisAnswers } from '../support/redis.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ROUNDS = Number(arg('rounds') ?? 200);
/** Batches each instance runs in turn before the other's turn. */
const SLICE = 100;
const REDIS = process.argv.includes('--redis');
/** This build's output folder (this file runs as dist/bench/online-cpu.js). */
const THIS_BUILD = resolve(fileURLToPath(new URL('..', import.meta.url)));

type App = typeof import('../src/app.js');
type Render = typeof import('../src/http/features-json.js');

interface Instance {
  asof: Awaited<ReturnType<App['startAsof']>>;
  render: Render['renderMany'];
  plan: import('../src/online/service.js').Plan;
  dir: string;
  prefix: string;
}

/** An asof of the build in `dist` (its modules, its services), serving on a free port so the users load over REST, as in the server bench. */
async function instance(dist: string, k: number): Promise<Instance> {
  const load = <T>(path: string): Promise<T> => import(join(dist, path)) as Promise<T>;
  const [app, { loadConfig }, { silentLogger }, { renderMany }] = await Promise.all([
    load<App>('src/app.js'),
    load<typeof import('../src/config.js')>('src/config.js'),
    load<typeof import('../src/logger.js')>('src/logger.js'),
    load<Render>('src/http/features-json.js'),
  ]);
  const dir = await mkdtemp(join(tmpdir(), 'asof-bench-online-cpu-'));
  const prefix = `asof-bench-online-cpu-${process.pid}-${k}:`;
  const env: Record<string, string> = { ASOF_DATA_DIR: dir, PORT: '0', GRPC_PORT: '0', HOST: '127.0.0.1' };
  if (REDIS) Object.assign(env, { REDIS_URL, ASOF_REDIS_PREFIX: prefix });
  const asof = await app.startAsof(loadConfig(env), silentLogger);
  await loadUsers(asof.url, ENTITIES);
  await tiered(asof.url);
  const plan = await asof.services.online.plan({ features: FEATURES.split(',') });
  return { asof, render: renderMany, plan, dir, prefix };
}

/**
 * Looks up and renders each batch, as `POST /features` does once its body is
 * parsed: the process's CPU time per entity, ns (every thread's, as the
 * server bench counts it: with Redis the socket's system calls, never the
 * wait for its replies).
 */
async function run(x: Instance, batches: number[][]): Promise<number> {
  const t0 = process.cpuUsage();
  for (const entities of batches) {
    const answer = x.render(entities, await x.asof.services.online.evaluate(entities, x.plan));
    answer.release?.();
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / (batches.length * BATCH);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  if (REDIS && !(await redisAnswers(REDIS_URL))) throw new Error(`--redis: no Redis answers at ${REDIS_URL}`);
  const against = arg('against');
  const builds = [THIS_BUILD, against ? resolve(against) : THIS_BUILD];
  console.log(`machine: ${machine()}`);
  console.log(`evaluate + renderMany, ${BATCH} entities a batch, the cold entities of bench/online.ts, ${REDIS ? 'Redis' : 'embedded'} store; a: ${builds[0]}, b: ${against ? builds[1] : 'the same build'}\n`);
  const xs: Instance[] = [];
  try {
    for (const [k, b] of builds.entries()) xs.push(await instance(b, k));
    const cold = Array.from({ length: (ENTITIES - HOT) / BATCH }, (_, b) => Array.from({ length: BATCH }, (_, i) => entityId(HOT + b * BATCH + i)));
    // Warm-up from the far end of the list: batches looked up again within the lookup cache's doorkeeper memory would be admitted and hit.
    for (const x of xs) await run(x, cold.slice(cold.length - 3 * SLICE));
    const ns: number[][] = [[], []];
    let at = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const slice = Array.from({ length: SLICE }, (_, j) => cold[(at + j) % cold.length]);
      at = (at + SLICE) % cold.length;
      for (const k of r % 2 ? [1, 0] : [0, 1]) ns[k].push(await run(xs[k], slice));
    }
    const pairs = ns[1].map((b, i) => b / ns[0][i]);
    console.log('| build | CPU ns per entity, median | mean | rounds |');
    console.log('| --- | --- | --- | --- |');
    for (const k of [0, 1]) console.log(`| ${k ? 'b' : 'a'} | ${median(ns[k]).toFixed(0)} | ${(ns[k].reduce((s, x) => s + x, 0) / ROUNDS).toFixed(0)} | ${ROUNDS} |`);
    console.log(`\nb / a: ${median(pairs).toFixed(3)} (median of ${ROUNDS} pairs; middle half ${pairs.sort((p, q) => p - q)[Math.floor(ROUNDS / 4)].toFixed(3)}-${pairs[Math.floor((3 * ROUNDS) / 4)].toFixed(3)})`);
    const hits = xs.map((x) => x.asof.services.online.cache.hits);
    if (hits.some((h) => h * 100 > ROUNDS * SLICE * BATCH)) console.log(`note: the lookup cache answered ${hits.join(' and ')} lookups: more than 1% of the figures are not cold`);
  } finally {
    for (const x of xs) {
      await x.asof.close();
      await rm(x.dir, { recursive: true, force: true });
      if (REDIS) await deletePrefix(REDIS_URL, x.prefix);
    }
  }
}

await main();
