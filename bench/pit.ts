/**
 * Training-set benchmark (DESIGN.md "training set"): 100k entity rows x 1M
 * feature rows, point-in-time join to a Parquet file, asof against DuckDB's
 * ASOF JOIN on the same data in the same run.
 *
 * Setup (not timed): the same generated rows go into an asof data folder
 * (a log table `features`, a view `fv` over it, a log table `labels`) and a
 * DuckDB database file (tables `f` and `l`). Then, alternating, a fresh child
 * process per run: asof opens its data folder and writes the training set
 * (`entities: {table: "labels"}`, pointInTime "event") to Parquet; DuckDB opens
 * its database and runs `COPY (... ASOF LEFT JOIN ...) TO 'x.parquet'`. Each
 * child runs it 3 times untimed, then 3 times timed (steady state: compiled
 * code and warm caches on both sides, as in a serving process; the first,
 * cold run is reported too), and reports its peak RSS. Finally DuckDB compares
 * the two files row for row.
 *
 * Event times are distinct per entity, so DuckDB's ASOF JOIN (which breaks
 * ties arbitrarily) and asof's rule (ties to the highest offset) must agree.
 *
 * Usage: npm run bench:pit [-- --features 1000000 --labels 100000 --entities 100000 --runs 3 --data <dir>]
 * (--data keeps the generated data in <dir> and reuses it next time.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance, timestampTZValue } from '@duckdb/node-api';
import { UNRESTRICTED } from '../src/access.js';
import { ConfigSchema } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { FeatureRegistry } from '../src/features/registry.js';
import { silentLogger } from '../src/logger.js';
import { TrainingSets } from '../src/offline/training-set.js';
import { rng } from '../support/rng.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const FEATURES = Number(args.get('features') ?? 1_000_000);
const LABELS = Number(args.get('labels') ?? 100_000);
const ENTITIES = Number(args.get('entities') ?? 100_000);
const RUNS = Number(args.get('runs') ?? 3);
const BASE = Date.UTC(2024, 0, 1);
/** Event times spread over 90 days (more for more rows), 1 s resolution; not a multiple of 7919 (see below). */
const SPAN_S = (() => {
  let span = Math.max(90 * 86_400, 2 * FEATURES);
  while (span % 7919 === 0) span++;
  return span;
})();


interface FeatureRow {
  entity: number;
  ts: number;
  v1: number;
  v2: number | null;
  v3: number;
}
interface LabelRow {
  entity: number;
  timestamp: number;
  label: number;
}

/**
 * The generated rows, in batches (10M rows never sit in memory at once); the
 * same seed gives the same rows, so asof and DuckDB are loaded from two replays.
 */
function* featureBatches(): Generator<FeatureRow[]> {
  const r = rng(42);
  // Distinct event times overall: 7919 is prime and does not divide SPAN_S, so i * 7919 mod SPAN_S never repeats for i < SPAN_S.
  for (let s = 0; s < FEATURES; s += 10_000) {
    yield Array.from({ length: Math.min(10_000, FEATURES - s) }, (_, k) => ({
      entity: Math.floor(r() * ENTITIES),
      ts: BASE + (((s + k) * 7919) % SPAN_S) * 1000,
      v1: Math.round(r() * 1e6) / 1e3,
      v2: r() < 0.05 ? null : Math.round(r() * 1e6) / 1e3,
      v3: Math.floor(r() * 1000),
    }));
  }
}

function* labelBatches(): Generator<LabelRow[]> {
  const r = rng(43);
  for (let s = 0; s < LABELS; s += 10_000) {
    yield Array.from({ length: Math.min(10_000, LABELS - s) }, (_, k) => ({ entity: Math.floor(r() * ENTITIES), timestamp: BASE + Math.floor(r() * SPAN_S * 1000), label: (s + k) % 2 }));
  }
}

async function setup(dir: string): Promise<void> {
  const engine = await Engine.open({ dataDir: join(dir, 'asof'), logger: silentLogger });
  await engine.defineTable('features', {
    kind: 'log',
    eventTime: 'ts',
    columns: [
      { name: 'entity', type: 'int64', nullable: false },
      { name: 'ts', type: 'timestamp', nullable: false },
      { name: 'v1', type: 'float64', nullable: true },
      { name: 'v2', type: 'float64', nullable: true },
      { name: 'v3', type: 'int32', nullable: true },
    ],
  });
  await engine.defineTable('labels', {
    kind: 'log',
    eventTime: 'timestamp',
    columns: [
      { name: 'entity', type: 'int64', nullable: false },
      { name: 'timestamp', type: 'timestamp', nullable: false },
      { name: 'label', type: 'int32', nullable: true },
    ],
  });
  for (const batch of featureBatches()) await engine.table('features').write(batch as never[], 'upsert');
  for (const batch of labelBatches()) await engine.table('labels').write(batch as never[], 'upsert');
  const registry = await FeatureRegistry.open(join(dir, 'asof'), engine, Date.now);
  await registry.defineView('fv', { source: 'features', entity: 'entity', features: [{ name: 'v1', column: 'v1' }, { name: 'v2', column: 'v2' }, { name: 'v3', column: 'v3' }] });
  await engine.close();

  const db = await DuckDBInstance.create(join(dir, 'duck.db'));
  const c = await db.connect();
  await c.run('CREATE TABLE f (entity BIGINT, ts TIMESTAMPTZ, v1 DOUBLE, v2 DOUBLE, v3 INTEGER)');
  await c.run('CREATE TABLE l (entity BIGINT, "timestamp" TIMESTAMPTZ, label INTEGER)');
  const ts = (ms: number) => timestampTZValue(BigInt(ms) * 1000n);
  const app = await c.createAppender('f');
  for (const batch of featureBatches()) for (const x of batch) {
    app.appendBigInt(BigInt(x.entity));
    app.appendTimestampTZ(ts(x.ts));
    app.appendDouble(x.v1);
    if (x.v2 === null) app.appendNull();
    else app.appendDouble(x.v2);
    app.appendInteger(x.v3);
    app.endRow();
  }
  app.closeSync();
  const lapp = await c.createAppender('l');
  for (const batch of labelBatches()) for (const x of batch) {
    lapp.appendBigInt(BigInt(x.entity));
    lapp.appendTimestampTZ(ts(x.timestamp));
    lapp.appendInteger(x.label);
    lapp.endRow();
  }
  lapp.closeSync();
  await c.run('CHECKPOINT');
  c.closeSync();
  db.closeSync();
}

/** Runs per child: the first ones untimed (code compiled and hot, caches warm: a serving process), then the timed ones. */
const WARMUP = 3;
const TIMED = 3;

/** Times `run` WARMUP + TIMED times; reports the first (cold) run and the median of the timed ones. */
async function measure(run: () => Promise<void>): Promise<{ ms: number; coldMs: number }> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + TIMED; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  return { ms: median(times.slice(WARMUP)), coldMs: times[0] };
}

/** Child: asof writes the training set; prints {ms, coldMs, rssMb}. */
async function runAsof(dir: string, out: string): Promise<void> {
  const engine = await Engine.open({ dataDir: join(dir, 'asof'), logger: silentLogger });
  const registry = await FeatureRegistry.open(join(dir, 'asof'), engine, Date.now);
  // The server's defaults (ASOF_TRAINING_SET_CHUNK_ROWS, ASOF_OFFLINE_MEMORY_MB).
  const config = ConfigSchema.parse({});
  const sets = new TrainingSets(engine, registry, { chunkRows: config.trainingSetChunkRows, memoryBytes: config.offlineMemoryMb * 1024 * 1024 });
  const r = await measure(async () => {
    const p = await sets.prepare({ entities: { table: 'labels' }, features: ['fv:v1', 'fv:v2', 'fv:v3'], pointInTime: 'event', format: 'parquet' }, UNRESTRICTED);
    await p.write(out);
    await p.close();
  });
  await engine.close();
  process.stdout.write(JSON.stringify({ ...r, rssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

/** Child: DuckDB's ASOF JOIN from its own tables to Parquet; prints {ms, coldMs, rssMb}. */
async function runDuck(dir: string, out: string): Promise<void> {
  const db = await DuckDBInstance.create(join(dir, 'duck.db'), { access_mode: 'READ_ONLY' });
  const c = await db.connect();
  const r = await measure(async () => {
    await c.run(`COPY (SELECT l.entity, l."timestamp", l.label, f.v1, f.v2, f.v3 FROM l ASOF LEFT JOIN f ON l.entity = f.entity AND l."timestamp" >= f.ts) TO '${out}' (FORMAT parquet)`);
  });
  c.closeSync();
  db.closeSync();
  process.stdout.write(JSON.stringify({ ...r, rssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

interface RunResult {
  ms: number;
  coldMs: number;
  rssMb: number;
}

function child(kind: 'asof' | 'duckdb', dir: string, out: string): RunResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', kind, '--dir', dir, '--out', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${kind} run failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function compare(a: string, b: string): Promise<{ rows: number; onlyA: number; onlyB: number }> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const q = async (sql: string) => Number((await c.runAndReadAll(sql)).getRows()[0][0]);
  const sel = (p: string) => `SELECT entity::BIGINT e, "timestamp"::TIMESTAMPTZ t, label::INTEGER lb, v1::DOUBLE v1, v2::DOUBLE v2, v3::INTEGER v3 FROM read_parquet('${p}')`;
  const rows = await q(`SELECT count(*) FROM read_parquet('${a}')`);
  const onlyA = await q(`SELECT count(*) FROM (${sel(a)} EXCEPT ALL ${sel(b)})`);
  const onlyB = await q(`SELECT count(*) FROM (${sel(b)} EXCEPT ALL ${sel(a)})`);
  c.closeSync();
  db.closeSync();
  return { rows, onlyA, onlyB };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  if (args.has('child')) {
    const dir = args.get('dir')!;
    const out = args.get('out')!;
    return args.get('child') === 'asof' ? runAsof(dir, out) : runDuck(dir, out);
  }
  // --data <dir>: keep the generated data there and reuse it on later runs (for profiling).
  const keep = args.get('data');
  const dir = keep ?? (await mkdtemp(join(tmpdir(), 'asof-bench-pit-')));
  await mkdir(dir, { recursive: true });
  try {
    console.log(`training set: ${LABELS.toLocaleString()} entity rows x ${FEATURES.toLocaleString()} feature rows (${ENTITIES.toLocaleString()} entities), ${RUNS} runs each`);
    console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GB, node ${process.version}`);
    let t = performance.now();
    if (!keep || !existsSync(join(dir, 'duck.db'))) await setup(dir);
    console.log(`setup (not timed): ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const asofOut = join(dir, 'asof.parquet');
    const duckOut = join(dir, 'duck.parquet');
    const asof: RunResult[] = [];
    const duck: RunResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      asof.push(child('asof', dir, asofOut));
      duck.push(child('duckdb', dir, duckOut));
    }
    t = median(asof.map((r) => r.ms));
    const d = median(duck.map((r) => r.ms));
    const cmp = await compare(asofOut, duckOut);
    const cold = (rs: RunResult[]) => median(rs.map((r) => r.coldMs));
    console.log(`asof:   median ${t.toFixed(0)} ms  (processes: ${asof.map((r) => r.ms.toFixed(0)).join(', ')})  first run in a fresh process ${cold(asof).toFixed(0)} ms  peak RSS ${Math.max(...asof.map((r) => r.rssMb)).toFixed(0)} MB`);
    console.log(`duckdb: median ${d.toFixed(0)} ms  (processes: ${duck.map((r) => r.ms.toFixed(0)).join(', ')})  first run in a fresh process ${cold(duck).toFixed(0)} ms  peak RSS ${Math.max(...duck.map((r) => r.rssMb)).toFixed(0)} MB`);
    console.log(`ratio asof/duckdb: ${(t / d).toFixed(2)}x steady state (target <= 1.5x); first runs: ${(cold(asof) / cold(duck)).toFixed(2)}x`);
    console.log(`rows: ${cmp.rows.toLocaleString()}; only in asof: ${cmp.onlyA}; only in duckdb: ${cmp.onlyB} -> ${cmp.onlyA === 0 && cmp.onlyB === 0 ? 'identical' : 'DIFFERENT'}`);
    if (cmp.onlyA || cmp.onlyB) process.exitCode = 1;
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}

await main();
