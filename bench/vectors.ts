/**
 * Vector search benchmark (DESIGN.md "vector search"): 100k x 128-d vectors
 * with cluster structure (200 Gaussian clusters of different spreads, not
 * uniform noise), top-10, cosine.
 *
 * The rows go through asof's ingest into a pk table; the vector column's
 * state is flushed into its Lance dataset and the index trained (timed, in
 * the background path the server uses). Then, in the same process and run:
 *   - recall@10 of asof's search against exact top-10 computed here by brute force;
 *   - asof's VectorService.search against a direct LanceDB query on the same
 *     dataset and index (the same vector, the same search breadth `ef`, the 10
 *     nearest with key, row and vector: the answer asof gives), alternating
 *     per query, so both see the same machine load: queries/s, p50/p99, and
 *     CPU per query (each process's, every thread: asof's includes its
 *     LanceDB thread and anything else its process ran meanwhile). The
 *     direct queries run in a child process (vectors-direct.ts says why),
 *     timed there around the LanceDB call alone;
 *   - ingest-to-searchable: a new row is upserted and the next search for its
 *     vector must return it first (time from the write's acknowledgement to
 *     the search's answer, and whether it was found);
 *   - the same recall with 5% of the rows updated after the index was built
 *     (rows in memory merged with the index's candidates).
 *
 * Usage: npm run bench:vectors [-- --rows 100000 --dim 128 --queries 300 --index hnsw_sq|ivf_pq]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fork } from 'node:child_process';
import { UNRESTRICTED } from '../src/access.js';
import { buildServices, closeServices } from '../src/app.js';
import { silentLogger } from '../src/logger.js';
import { DISTANCE } from '../src/vectors/distance.js';
import { DEFAULT_INDEX } from '../src/vectors/service.js';
import { VECTOR } from '../src/vectors/lance-store.js';
import { machine } from './lib.js';
import type { DirectAsk, DirectInit, DirectReply } from './vectors-direct.js';
import { rng } from '../support/rng.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const ROWS = Number(args.get('rows') ?? 100_000);
const DIM = Number(args.get('dim') ?? 128);
const QUERIES = Number(args.get('queries') ?? 300);
const KIND = (args.get('index') ?? DEFAULT_INDEX.kind) as 'hnsw_sq' | 'ivf_pq';
const K = 10;
const CLUSTERS = 200;

const r = rng(42);
const gauss = (): number => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const centers = Array.from({ length: CLUSTERS }, () => Float32Array.from({ length: DIM }, gauss));
const spreads = Array.from({ length: CLUSTERS }, () => 0.2 + r() * 0.6);
function point(): Float32Array {
  const c = Math.floor(r() * CLUSTERS);
  const v = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) v[i] = centers[c][i] + spreads[c] * gauss();
  return v;
}

/** Exact top-K ids by brute force (a small sorted list, no allocation per vector). */
function exactTop(q: Float32Array, vectors: Float32Array[]): Set<string> {
  const best: { i: number; d: number }[] = [];
  for (let i = 0; i < vectors.length; i++) {
    const d = DISTANCE.cosine(q, vectors[i]);
    if (best.length === K && d >= best[K - 1].d) continue;
    let j = best.length < K ? best.length : K - 1;
    best[j] = { i, d };
    while (j > 0 && best[j - 1].d > d) {
      [best[j - 1], best[j]] = [best[j], best[j - 1]];
      j--;
    }
  }
  return new Set(best.map((x) => String(x.i)));
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** The direct LanceDB reference, in a process of its own (vectors-direct.ts). */
async function directProcess(init: DirectInit): Promise<{ query(q: Float32Array): Promise<{ ms: number; cpuMs: number; keys: string[] }>; close(): void }> {
  const fromSource = import.meta.url.endsWith('.ts');
  const child = fork(new URL(fromSource ? './vectors-direct.ts' : './vectors-direct.js', import.meta.url), [], { execArgv: fromSource ? ['--import', 'tsx'] : [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let waiting: ((r: DirectReply) => void) | undefined;
  child.on('message', (r: DirectReply) => waiting?.(r));
  child.on('exit', (code, signal) => waiting?.({ error: `the direct LanceDB process exited (${signal ?? code})` }));
  const ask = (m: DirectAsk) =>
    new Promise<DirectReply>((resolve) => {
      waiting = resolve;
      child.send(m);
    }).then((r) => {
      if ('error' in r) throw new Error(r.error);
      return r;
    });
  await ask({ init });
  return {
    query: async (q) => (await ask({ query: Array.from(q) })) as { ms: number; cpuMs: number; keys: string[] },
    close: () => child.send({ close: true } satisfies DirectAsk),
  };
}

async function main(): Promise<void> {
  console.log(`bench:vectors — ${ROWS} x ${DIM}-d (${CLUSTERS} clusters), top-${K}, cosine, index ${KIND}; ${machine()}`);
  const dataDir = await mkdtemp(join(tmpdir(), 'asof-bench-vectors-'));
  const services = await buildServices(
    { dataDir, maxBatchRows: 100_000, maxBatchCells: 2_000_000, trainingSetChunkRows: 1_000_000, offlineMemoryMb: 512, vectorFlushMs: 3_600_000, vectorIndexMinRows: 1000 },
    silentLogger,
  );
  try {
    if (KIND !== DEFAULT_INDEX.kind) Object.assign((services.vectors as unknown as { index: object }).index, { kind: KIND });
    await services.engine.defineTable('items', {
      kind: 'pk',
      primaryKey: ['id'],
      columns: [
        { name: 'id', type: 'int64', nullable: false },
        { name: 'cat', type: 'string', nullable: true },
        { name: 'emb', type: `vector<${DIM}>`, nullable: true },
      ],
    });
    const vectors: Float32Array[] = [];
    let t0 = performance.now();
    for (let i = 0; i < ROWS; i += 5000) {
      const rows = [];
      for (let j = i; j < Math.min(ROWS, i + 5000); j++) {
        const v = point();
        vectors.push(v);
        rows.push({ id: j, cat: `c${j % 10}`, emb: Array.from(v) });
      }
      await services.ingest.write('items', rows, 'upsert');
    }
    const ingestMs = performance.now() - t0;
    const col = services.vectors.column('items', 'emb')!;
    t0 = performance.now();
    await col.flushNow();
    const flushMs = performance.now() - t0;
    t0 = performance.now();
    await col.settle();
    const indexMs = performance.now() - t0;
    const stats = await col.lance.indexStats();
    console.log(`ingest ${Math.round(ingestMs)} ms; into Lance ${Math.round(flushMs)} ms; index trained in ${Math.round(indexMs)} ms (${JSON.stringify(stats)})`);

    const queries = Array.from({ length: QUERIES }, point);
    t0 = performance.now();
    const truth = queries.map((q) => exactTop(q, vectors));
    console.log(`exact top-${K} by brute force: ${Math.round(performance.now() - t0)} ms`);

    // The search breadth asof asks for with an empty memory part (search.ts: k + k/2 candidates).
    const ef = Math.max(DEFAULT_INDEX.ef * (K + Math.ceil(K / 2)), 64);
    const direct = await directProcess({ uri: join(dataDir, 'lance', '_asof_vectors'), table: 'items.emb', column: VECTOR, k: K, kind: KIND, ef, refine: DEFAULT_INDEX.refine });
    const directQuery = (q: Float32Array) => direct.query(q);
    const asofQuery = (q: Float32Array) => services.vectors.search({ table: 'items', vector: Array.from(q), k: K }, UNRESTRICTED);
    // Warm-up: both paths, untimed.
    for (let i = 0; i < 20; i++) {
      await asofQuery(queries[i]);
      await directQuery(queries[i]);
    }
    const asofMs: number[] = [], directMs: number[] = [];
    let hitsAsof = 0, hitsDirect = 0, asofCpu = 0, directCpu = 0;
    let plan = '';
    for (let i = 0; i < QUERIES; i++) {
      const c = process.cpuUsage();
      const s = performance.now();
      const a = await asofQuery(queries[i]);
      asofMs.push(performance.now() - s);
      const cpu = process.cpuUsage(c);
      asofCpu += (cpu.user + cpu.system) / 1000;
      plan = a.search.index;
      const d = await directQuery(queries[i]);
      directMs.push(d.ms);
      directCpu += d.cpuMs;
      hitsAsof += a.results.filter((h) => truth[i].has(h.key!)).length;
      hitsDirect += d.keys.filter((key) => truth[i].has(key)).length;
    }
    const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
    const rateAsof = (1000 * QUERIES) / sum(asofMs), rateDirect = (1000 * QUERIES) / sum(directMs);
    console.log(`recall@${K}: asof ${(hitsAsof / (K * QUERIES)).toFixed(4)} (search: ${plan}); direct LanceDB ${(hitsDirect / (K * QUERIES)).toFixed(4)} (target asof >= 0.95)`);
    console.log(`queries/s, one at a time: asof ${rateAsof.toFixed(0)}, direct LanceDB ${rateDirect.toFixed(0)}, ratio ${(rateAsof / rateDirect).toFixed(2)} (target >= 0.8)`);
    console.log(`latency ms: asof p50 ${pct(asofMs, 50).toFixed(2)} p99 ${pct(asofMs, 99).toFixed(2)}; direct p50 ${pct(directMs, 50).toFixed(2)} p99 ${pct(directMs, 99).toFixed(2)}`);
    console.log(`CPU ms per query, every thread of its process: asof ${(asofCpu / QUERIES).toFixed(2)}, direct LanceDB ${(directCpu / QUERIES).toFixed(2)}, ratio ${(asofCpu / directCpu).toFixed(2)}`);

    // Ingest-to-searchable: the next search after the write's acknowledgement.
    const fresh: number[] = [];
    let found = 0;
    for (let i = 0; i < 50; i++) {
      const v = point();
      const id = ROWS + i;
      await services.ingest.write('items', [{ id, cat: 'new', emb: Array.from(v) }], 'upsert');
      const s = performance.now();
      const a = await asofQuery(v);
      fresh.push(performance.now() - s);
      if (a.results[0]?.key === String(id)) found++;
    }
    console.log(`ingest-to-searchable: ${found}/50 new rows first in the very next search; that search took p50 ${pct(fresh, 50).toFixed(2)} ms, p99 ${pct(fresh, 99).toFixed(2)} ms`);

    // 5% of the rows moved after the index was built: found in their new version only.
    const moved = Math.floor(ROWS / 20);
    for (let i = 0; i < moved; i += 1000) {
      const rows = [];
      for (let j = i; j < Math.min(moved, i + 1000); j++) {
        vectors[j] = point();
        rows.push({ id: j, cat: 'moved', emb: Array.from(vectors[j]) });
      }
      await services.ingest.write('items', rows, 'upsert');
    }
    let hits = 0, stale = 0;
    const n = Math.min(100, QUERIES);
    const hotMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const q = queries[i];
      const want = exactTop(q, vectors);
      const s = performance.now();
      const a = await asofQuery(q);
      hotMs.push(performance.now() - s);
      hits += a.results.filter((h) => want.has(h.key!)).length;
      stale += a.results.filter((h) => Number(h.key) < moved && (h.row as { cat: string }).cat !== 'moved').length;
    }
    console.log(`with ${moved} rows updated in memory (${col.hotRows} rows not in Lance): recall@${K} ${(hits / (K * n)).toFixed(4)}, stale versions returned ${stale}, p50 ${pct(hotMs, 50).toFixed(2)} ms`);
    direct.close();
  } finally {
    await closeServices(services);
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
