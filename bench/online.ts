/**
 * Online serving benchmark (DESIGN.md "Performance"), in one run:
 *   - `GET /features/{entity}` with 20 features: req/s at full load beside a
 *     bare Fastify route returning the same bytes (target >= 0.8 of it), and
 *     p50/p99 latency at half of asof's full-load rate (target p99 <= 2 ms);
 *     with the embedded store and with Redis;
 *   - `POST /features` with 100 entities: entity lookups/s (target >= 200k),
 *     beside the bare route returning the same bytes;
 *   - both lookups over a hot set of entities (the lookup cache answers) and
 *     over every entity in turn (cold: the cache cannot);
 *   - resident memory of an asof process holding 1M entities x 10 features
 *     online with the embedded store (target <= 400 MB RSS), for a pk and a
 *     log source, with two-place decimals and with full-precision doubles.
 *
 *   npm run bench:online [-- --seconds 6 --rounds 5 --connections 32 --processes 1 --skip-memory --skip-redis --skip-embedded --memory-only --memory-case pk:double --only-post --bare-remembered-queries --redis-ioredis-lookups]
 *
 * `--redis-ioredis-lookups` also runs the Redis case with lookups through
 * ioredis instead of the lean client (redis-reader.ts), in the same run: the
 * URL gets a harmless option (`?family=0`), and factory.ts hands URLs with
 * options to ioredis. `npm run bench:redis-clients` compares the two clients
 * alone, in one process.
 *
 * `--only-post` measures the POST batches alone (no GET rounds), for work on the batch path.
 *
 * With Redis, the tables also give the Redis server's own CPU per request (INFO cpu): on a small machine
 * it runs on the cores the asof server and the load generator use, which the bare route never shares.
 *
 * Every server is the real thing in its own child process (`asof serve`, or
 * the bare route: this file with `bare`); this process only drives load, so
 * the load generator never shares an event loop with a server: full load with
 * the raw-socket driver in lib.ts (requests handed out round-robin over all
 * connections, so traffic walks the whole entity list), latency at a set rate
 * with autocannon (even pacing).
 * Not a test: it prints, it asserts nothing.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, rawRequest } from './lib.js';
import { alternate, closeRedisInfo, drive, onRedis, paced, REDIS_URL, type Load, type Paired } from './online-load.js';
import { spawnChild, waitReady, type ChildServer } from '../support/child-server.js';
import { deletePrefix, redisAnswers } from '../support/redis.js';
import { BATCH, call, ENTITIES, entityId, FEATURES, HOT, loadUsers, tiered } from './online-data.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(HERE, '../src/cli/main.js');
const SELF = fileURLToPath(import.meta.url);

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const SECONDS = arg('seconds', 6);
const CONNECTIONS = arg('connections', 32);
const ROUNDS = arg('rounds', 5);
/**
 * --processes N: after the usual phases, the GET rounds again with N - 1 more pairs of fresh processes (asof restarted
 * on its data folder, the bare route restarted). A Node server process runs its HTTP path 20-30% slower for its whole
 * life in about half the starts on some machines (bench/RESULTS.md, session 22; bench:node-bodies), so one pair of
 * processes is one draw.
 */
const PROCESSES = arg('processes', 1);

// ---------------------------------------------------------------- bare server

/**
 * The reference: a bare Fastify app whose routes return fixed bytes, as
 * ready-made buffers (the cheapest way to send them: no encoding per request).
 */
async function bare(port: number, bodiesFile: string, rememberedQueries: boolean): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const bodies = JSON.parse(await readFile(bodiesFile, 'utf8')) as { one: string; batch: string };
  const one = Buffer.from(bodies.one);
  const batch = Buffer.from(bodies.batch);
  // --bare-remembered-queries: the bare route parses query strings as asof does (server.ts), so the ratio leaves that saving out.
  const app = rememberedQueries ? Fastify({ routerOptions: { querystringParser: (await import('../src/http/server.js')).rememberedQueries() } }) : Fastify();
  app.get('/features/:entity', (_req, reply) => {
    void reply.type('application/json; charset=utf-8').send(one);
  });
  app.post('/features', (_req, reply) => {
    void reply.type('application/json; charset=utf-8').send(batch);
  });
  app.get('/readyz', async () => ({ status: 'ready' }));
  await app.listen({ port, host: '127.0.0.1' });
}

// ---------------------------------------------------------------- processes


type Server = ChildServer;

/** Starts `node <args>` listening on `port` through the shared child-server helper and waits for /readyz. */
async function startServer(args: string[], port: number): Promise<Server> {
  const child = spawnChild(args, { port });
  await waitReady(child, { timeoutMs: 120_000 });
  return child;
}

/** Every Redis key the benchmark's asof processes write starts with this; removed at the end. */
const REDIS_PREFIX = `asof-bench-online-${process.pid}-${Date.now()}:`;


async function startAsof(dataDir: string, redis?: string): Promise<Server> {
  const port = await freePort();
  // ASOF_BENCH_NODE_OPTIONS: extra node flags for the asof process (e.g. --cpu-prof), to see where its time goes.
  // The documented default configuration: no log level given (info), logs written to stdout as `npm start` does (here into /dev/null).
  const args = [...(process.env.ASOF_BENCH_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []), CLI, 'serve', '--port', String(port), '--data-dir', dataDir, '--grpc-port', '0'];
  if (redis) args.push('--redis-url', redis, '--redis-prefix', REDIS_PREFIX);
  return startServer(args, port);
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/**
 * Drives `requests` until one second of them evaluates almost nothing afresh
 * (asof's lookup-cache misses, /metrics): "hot" means the cache holds the
 * set. The cache admits an evaluation on its second miss, so a fixed two
 * seconds (the warm-up before) left the first measured round evaluating
 * half its lookups where the machine is slower.
 */
async function warmCache(server: Server, requests: Buffer[], lookupsEach: number, full: { seconds: number; connections: number }): Promise<void> {
  const misses = async (): Promise<number> => Number(/asof_lookup_cache_total\{result="miss"\} (\d+)/.exec(await (await fetch(server.url + '/metrics')).text())?.[1] ?? 0);
  for (let i = 0; i < 20; i++) {
    const before = await misses();
    await drive(server, requests, { ...full, seconds: 1 });
    if ((await misses()) - before < (requests.length * lookupsEach) / 100) return;
  }
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

interface StoreFigures {
  store: string;
  /** asof (a) against the bare route (b); the GET figures are absent with --only-post. */
  get?: Paired;
  halfBare?: Load;
  halfAsof?: Load;
  cold?: Paired;
  batch: Paired;
  coldBatch: Paired;
  oneBytes: number;
  /** The GET rounds of each pair of processes (--processes), the first pair's included. */
  byProcess: { get: Paired; cold: Paired }[];
}

/** REDIS_URL with an option ioredis accepts and ignores here (family 0: IPv4 or IPv6, as without it): factory.ts sends lookups over ioredis. */
function ioredisLookupsUrl(): string {
  const u = new URL(REDIS_URL);
  u.searchParams.set('family', '0');
  return u.toString();
}

async function benchStore(store: 'embedded' | 'redis' | 'redis, ioredis lookups'): Promise<StoreFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'asof-bench-online-'));
  const redisUrl = store === 'embedded' ? undefined : store === 'redis' ? REDIS_URL : ioredisLookupsUrl();
  let asof = await startAsof(join(dir, 'data'), redisUrl);
  if (redisUrl) onRedis.add(asof);
  let bareServer: Server | undefined;
  try {
    process.stdout.write(`[${store}] loading ${fmt(ENTITIES)} entities x 20 features ...\n`);
    await loadUsers(asof.url, ENTITIES);
    const getsOf = (n: number, from = 0): Buffer[] => Array.from({ length: n }, (_, i) => rawRequest('GET', `/features/${entityId(from + i)}?features=${FEATURES}`));
    const batchesOf = (n: number, from = 0): Buffer[] => Array.from({ length: n / BATCH }, (_, b) => rawRequest('POST', '/features', JSON.stringify({ entities: Array.from({ length: BATCH }, (_, i) => entityId(from + b * BATCH + i)), features: FEATURES.split(',') })));
    const gets = getsOf(HOT);
    const coldGets = getsOf(ENTITIES - HOT, HOT);
    const batches = batchesOf(HOT);
    const coldBatches = batchesOf(ENTITIES - HOT, HOT);
    const one = await (await fetch(asof.url + `/features/${entityId(0)}?features=${FEATURES}`)).text();
    const batch = await (await fetch(asof.url + '/features', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entities: Array.from({ length: BATCH }, (_, i) => entityId(i)), features: FEATURES.split(',') }) })).text();
    if (!one.includes('"PRESENT"') || JSON.parse(batch).results.length !== BATCH) throw new Error(`unexpected answer: ${one.slice(0, 300)}`);
    const bodiesFile = join(dir, 'bodies.json');
    await writeFile(bodiesFile, JSON.stringify({ one, batch }));
    // A new port for each start: a restarted asof may be given the port a stopped bare route let go, and a bare
    // route started on it again then failed to listen while asof answered its readiness check (a run died so).
    const startBare = async (): Promise<Server> => {
      const port = await freePort();
      return startServer([SELF, 'bare', String(port), bodiesFile, ...(flag('bare-remembered-queries') ? ['--remembered-queries'] : [])], port);
    };
    bareServer = await startBare();

    const full = { seconds: SECONDS, connections: CONNECTIONS };
    process.stdout.write(`[${store}] warming up ...\n`);
    const onlyPost = flag('only-post');
    await tiered(asof.url);
    await drive(bareServer, gets, { ...full, seconds: 2 });
    if (!onlyPost) await warmCache(asof, gets, 1, full);
    await warmCache(asof, batches, BATCH, full);
    // Alternating rounds: a machine whose load drifts affects both sides of a pair alike (see alternate).
    let get: Paired | undefined, cold: Paired | undefined, halfBare: Load | undefined, halfAsof: Load | undefined;
    if (!onlyPost) {
      process.stdout.write(`[${store}] GET full load, ${ROUNDS} alternating rounds of ${SECONDS} s ...\n`);
      get = await alternate(ROUNDS, () => drive(asof, gets, full), () => drive(bareServer!, gets, full));
      const rate = get.a.rps / 2;
      process.stdout.write(`[${store}] GET at half load (${fmt(rate)} req/s) ...\n`);
      const half = { seconds: SECONDS, connections: 8, rate };
      const hotPaths = Array.from({ length: HOT }, (_, i) => `/features/${entityId(i)}?features=${FEATURES}`);
      halfBare = await paced(bareServer, hotPaths, half);
      halfAsof = await paced(asof, hotPaths, half);
      process.stdout.write(`[${store}] GET full load, every entity in turn (cold) ...\n`);
      cold = await alternate(ROUNDS, () => drive(asof, coldGets, full), () => drive(bareServer!, coldGets, full));
    }
    process.stdout.write(`[${store}] POST /features, ${BATCH} entities ...\n`);
    const batched = await alternate(ROUNDS, () => drive(asof, batches, full), () => drive(bareServer!, batches, full));
    process.stdout.write(`[${store}] POST /features, every entity in turn (cold) ...\n`);
    const coldBatch = await alternate(ROUNDS, () => drive(asof, coldBatches, full), () => drive(bareServer!, coldBatches, full));
    const byProcess = get && cold ? [{ get, cold }] : [];
    for (let p = 1; p < PROCESSES && !onlyPost; p++) {
      process.stdout.write(`[${store}] GET hot and cold with fresh processes (${p + 1} of ${PROCESSES}) ...\n`);
      await bareServer.stop();
      await asof.stop();
      asof = await startAsof(join(dir, 'data'), redisUrl);
      if (redisUrl) onRedis.add(asof);
      bareServer = await startBare();
      await drive(bareServer, gets, { ...full, seconds: 2 });
      await warmCache(asof, gets, 1, full);
      byProcess.push({
        get: await alternate(ROUNDS, () => drive(asof, gets, full), () => drive(bareServer!, gets, full)),
        cold: await alternate(ROUNDS, () => drive(asof, coldGets, full), () => drive(bareServer!, coldGets, full)),
      });
    }
    process.stdout.write(`[${store}] done; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
    return { store, get, halfBare, halfAsof, cold, batch: batched, coldBatch, oneBytes: Buffer.byteLength(one), byProcess };
  } catch (e) {
    // A server that died mid-run leaves only "ENOENT /proc/<pid>/stat" behind: say which one, and what it printed last.
    for (const [name, s] of [['asof', asof], ['bare route', bareServer]] as const) {
      if (s && (s.proc.exitCode !== null || s.proc.signalCode !== null)) process.stderr.write(`[${store}] the ${name} process (pid ${s.proc.pid}) exited (${s.proc.exitCode ?? s.proc.signalCode}); its last output:\n${s.output().slice(-4000)}\n`);
    }
    throw e;
  } finally {
    await bareServer?.stop();
    await asof.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- memory

/**
 * RSS of an asof process serving 1M entities x 10 features from the embedded
 * store, for a pk source (the engine also holds each row) and for a log
 * source (the engine holds nothing per entity beyond its key index).
 */
async function benchMemory(kind: 'pk' | 'log', values: 'decimal' | 'double'): Promise<{ kind: string; base: number; ingested: number; online: number; lookupOk: boolean }> {
  const N = 1_000_000;
  const dir = await mkdtemp(join(tmpdir(), 'asof-bench-mem-'));
  const asof = await startAsof(join(dir, 'data'));
  try {
    const base = await rssMb(asof.proc.pid!);
    const cols = [{ name: 'user', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, ...Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, type: 'float64', nullable: true }))];
    await call(asof.url, 'PUT', '/tables/m', kind === 'pk' ? { kind, primaryKey: ['user'], eventTime: 'ts', columns: cols } : { kind, eventTime: 'ts', columns: cols });
    const t0 = Date.now() - 3_600_000;
    // Materialize while ingesting, as a live deployment does.
    await call(asof.url, 'PUT', '/feature-views/m10', { source: 'm', entity: 'user', features: Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, column: `f${i}` })) });
    for (let b = 0; b < N; b += 10_000) {
      const rows = [];
      for (let id = b; id < b + 10_000; id++) {
        const r: Record<string, unknown> = { user: id, ts: t0 + (id % 3600) * 1000 };
        // "decimal": amounts with two places, as prices and balances are; "double": full-precision doubles, as model scores are.
        for (let i = 0; i < 10; i++) r[`f${i}`] = values === 'decimal' ? Math.round(((id * (i + 11)) % 1_000_000) * 1.3) / 100 : Math.sin(id * 10 + i) * 1000;
        rows.push(r);
      }
      await call(asof.url, 'POST', '/tables/m/rows', { rows });
    }
    const got = await call(asof.url, 'GET', `/features/${N - 1}?view=m10`);
    const lookupOk = Object.values(got.statuses).every((s) => s === 'PRESENT');
    // RSS right after ingest still holds ingest garbage the collector has not given back, and tiering (ASOF_TIER_AFTER,
    // 10 s by default) copies the records into Lance for a while after it: sample it as the server idles, every 5 s.
    // V8's memory reducer returns the garbage on a timer, 30 to 100 s after the last full GC in our runs (its watchdog
    // starts one 100 s after the last), and the tiering steps of the backlog (the last full GCs) ran past the old 90 s
    // window under load; the LanceDB thread trims malloc's free memory for 150 s after the last step (native-heap.ts):
    // sample at least 90 s and until 160 s after tiering caught up, at most 300 s (session 15).
    const samples: number[] = [];
    let caughtUp: number | undefined;
    for (let t = 5; t <= 300 && (t <= 90 || caughtUp === undefined || t <= caughtUp + 160); t += 5) {
      await new Promise((r) => setTimeout(r, 5000));
      samples.push(Math.round(await rssMb(asof.proc.pid!)));
      const m = await call(asof.url, 'GET', '/tables/m');
      if (caughtUp === undefined && m.tieredOffset === m.latestOffset) caughtUp = t;
    }
    const metrics = await (await fetch(asof.url + '/metrics')).text();
    const mem = (k: string): string => fmt(Number(new RegExp(`asof_process_memory_bytes\\{kind="${k}"\\} (\\d+)`).exec(metrics)?.[1]) / 2 ** 20);
    const tiered = caughtUp === undefined ? 'tiering not caught up in 300 s' : `tiering caught up by ${caughtUp} s`;
    console.log(`  [${kind}, ${values}] RSS every 5 s after ingest: ${samples.join(', ')} MB (at 90 s ${samples[17]} MB; ${tiered}); then V8 heap used ${mem('heap_used')} of ${mem('heap_total')} MB, typed arrays and buffers ${mem('array_buffers')} MB`);
    const online = samples[samples.length - 1];
    return { kind, base, ingested: N, online, lookupOk };
  } finally {
    await asof.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main


function report(figures: StoreFigures[]): void {
  const ratio = (p: Paired): string => `${fmt(p.ratio, 2)} (CPU ${fmt(p.cpuRatio, 2)}; pairs ${p.ratios.map((r) => fmt(r, 2)).join(', ')})`;
  const withGet = figures.filter((f) => f.get && f.cold && f.halfAsof && f.halfBare) as Required<StoreFigures>[];
  if (withGet.length) {
    if (flag('bare-remembered-queries')) console.log("\n--bare-remembered-queries: the bare route remembers parsed query strings as asof's server does");
    console.log('\nGET /features/{entity}, 20 features (%s bytes). Ratios: asof / bare in req/s, and (CPU) bare / asof in server CPU per request, each the median over %d alternating pairs of runs; req/s and CPU columns: the median run of each side', withGet[0].oneBytes, ROUNDS);
    console.log('| store | lookups | asof req/s | bare req/s | ratio (target >= 0.8) | server CPU µs/req asof / bare | server busy asof / bare | Redis server CPU µs/req |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const f of withGet) {
      for (const [label, p] of [[`hot (${fmt(HOT)} entities)`, f.get], [`cold (the other ${fmt(ENTITIES - HOT)})`, f.cold]] as const) {
        console.log(`| ${f.store} | ${label} | ${fmt(p.a.rps)} | ${fmt(p.b.rps)} | ${ratio(p)} | ${fmt(p.a.cpuUs, 1)} / ${fmt(p.b.cpuUs, 1)} | ${fmt(p.a.busy * 100)}% / ${fmt(p.b.busy * 100)}% | ${p.a.redisCpuUs === undefined ? '' : fmt(p.a.redisCpuUs, 1)} |`);
      }
    }
    if (PROCESSES > 1) {
      console.log('\nGET by pair of processes (--processes %d: the first pair is the one above; each later pair started afresh, asof on the same data folder)', PROCESSES);
      console.log('| store | pair | hot ratio | hot server CPU µs/req asof / bare | cold ratio | cold server CPU µs/req asof / bare |');
      console.log('| --- | --- | --- | --- | --- | --- |');
      for (const f of withGet) {
        f.byProcess.forEach(({ get, cold }, i) => console.log(`| ${f.store} | ${i + 1} | ${ratio(get)} | ${fmt(get.a.cpuUs, 1)} / ${fmt(get.b.cpuUs, 1)} | ${ratio(cold)} | ${fmt(cold.a.cpuUs, 1)} / ${fmt(cold.b.cpuUs, 1)} |`));
      }
    }
    console.log('\nGET at half of asof\'s full-load rate (hot), the same offered rate for both (target p99 <= 2 ms)');
    console.log('| store | rate | asof p50 / p99 ms | bare p50 / p99 ms | server CPU µs/req asof / bare (ratio) |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const f of withGet) {
      console.log(`| ${f.store} | ${fmt(f.halfAsof.rps)} req/s | ${fmt(f.halfAsof.p50, 2)} / ${fmt(f.halfAsof.p99, 2)} | ${fmt(f.halfBare.p50, 2)} / ${fmt(f.halfBare.p99, 2)} | ${fmt(f.halfAsof.cpuUs, 1)} / ${fmt(f.halfBare.cpuUs, 1)} (${fmt(f.halfBare.cpuUs / f.halfAsof.cpuUs, 2)}) |`);
    }
  }
  console.log(`\nPOST /features, ${BATCH} entities x 20 features (target >= 200k entity lookups/s)`);
  console.log('| store | lookups | asof entity lookups/s | bare route, same bytes | ratio | server CPU µs per entity asof / bare | server busy asof / bare | Redis server CPU µs per entity |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const f of figures) {
    for (const [label, p] of [[`hot (${fmt(HOT)} entities)`, f.batch], [`cold (the other ${fmt(ENTITIES - HOT)})`, f.coldBatch]] as const) {
      console.log(`| ${f.store} | ${label} | ${fmt(p.a.rps * BATCH)} | ${fmt(p.b.rps * BATCH)} | ${ratio(p)} | ${fmt(p.a.cpuUs / BATCH, 2)} / ${fmt(p.b.cpuUs / BATCH, 2)} | ${fmt(p.a.busy * 100)}% / ${fmt(p.b.busy * 100)}% | ${p.a.redisCpuUs === undefined ? '' : fmt(p.a.redisCpuUs / BATCH, 2)} |`);
    }
  }
  const errors = figures.flatMap((f) => [...f.byProcess.slice(1).flatMap((p) => [p.get.a, p.get.b, p.cold.a, p.cold.b]), f.get?.a, f.get?.b, f.halfAsof, f.halfBare, f.cold?.a, f.cold?.b, f.batch.a, f.batch.b, f.coldBatch.a, f.coldBatch.b]).reduce((n, l) => n + (l?.errors ?? 0), 0);
  if (errors) console.log(`\nWARNING: ${errors} requests failed or answered non-2xx`);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'bare') return bare(Number(process.argv[3]), process.argv[4], flag('remembered-queries'));
  const cpu = cpus();
  console.log(`machine: ${cpu.length} x ${cpu[0]?.model ?? '?'}, ${fmt(totalmem() / 2 ** 30, 1)} GiB, node ${process.version}`);
  console.log(`load: raw keep-alive sockets from this process, ${CONNECTIONS} connections for full load, 8 at half load, ${SECONDS} s per run\n`);
  const figures: StoreFigures[] = [];
  if (!flag('memory-only')) {
    if (!flag('skip-embedded')) figures.push(await benchStore('embedded'));
    if (flag('skip-redis')) console.log('redis: skipped (--skip-redis)');
    else if (await redisAnswers(REDIS_URL)) {
      try {
        figures.push(await benchStore('redis'));
        if (flag('redis-ioredis-lookups')) figures.push(await benchStore('redis, ioredis lookups'));
      } finally {
        await deletePrefix(REDIS_URL, REDIS_PREFIX);
        closeRedisInfo();
      }
    }
    else console.log(`redis: nothing answers at ${REDIS_URL}; skipped`);
  }
  if (figures.length) report(figures);

  if (!flag('skip-memory')) {
    console.log('\nmemory: 1M entities x 10 features online, embedded store (target <= 400 MB RSS)');
    const rows: string[] = [];
    // --memory-case pk:double runs one case only.
    const only = process.argv.includes('--memory-case') ? process.argv[process.argv.indexOf('--memory-case') + 1] : undefined;
    for (const values of ['decimal', 'double'] as const) {
      for (const kind of ['log', 'pk'] as const) {
        if (only && only !== `${kind}:${values}`) continue;
        const m = await benchMemory(kind, values);
        rows.push(`| ${m.kind} | ${values} | ${fmt(m.base)} MB | ${fmt(m.online)} MB | ${m.lookupOk} |`);
      }
    }
    console.log('| source table | feature values | RSS at start | RSS serving 1M entities (last sample: 90 s or more after the ingest, 160 s after tiering caught up) | lookup ok |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(r);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
