#!/usr/bin/env node
/**
 * Stress test: which ways of using LanceDB from several V8 isolates (worker
 * threads) of one process crash it. Each run is a child process; its exit code
 * and signal are tallied.
 *
 *   node scripts/lance-crash.mjs <mode> [runs=20] [ms=1500]
 *   node scripts/lance-crash.mjs all [runs] [ms]
 *
 * Modes (each isolate works in a folder of its own, as asof's users do):
 *   single        one worker thread uses LanceDB (control)
 *   main          the main thread alone (control)
 *   two-workers   two worker threads at once (two asof instances in one process)
 *   main-worker   the main thread and a worker at once (vectors + cold tier)
 *   terminate     a worker is terminated mid-operation and a new one started, 4 times
 *   terminate-busy  the same, but terminated only once LanceDB is loaded and its first table made (mid-loop)
 *   terminate-load  terminated while it loads LanceDB (0-250 ms after the worker starts)
 *   replace       a worker finishes, closes and exits by itself; a new one starts, 4 times
 *   overlap       workers with overlapping lives: each exits by itself while the next still works, 4 times
 *   exit-idle     a worker finishes its work and stays (unref'd, idle): the process exits under it
 *   shared        one worker serves two users' folders at once, and stays to the exit (the fix's design)
 *
 * The work is what asof does: appends of Arrow batches (binary and vector
 * columns), filtered scans read back with toArrow, vector searches, row counts.
 * LanceDB 0.31.0 is built on napi-rs 3.9.4, whose custom GC routes every Buffer a
 * native async call drops off the JS thread through ONE process-wide threadsafe
 * function, the first isolate's (napi-rs/napi-rs#3357, fixed in napi 3.10.0).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';

const SELF = fileURLToPath(import.meta.url);
const MODES = ['single', 'main', 'two-workers', 'main-worker', 'terminate', 'terminate-busy', 'terminate-load', 'replace', 'overlap', 'exit-idle', 'shared'];

async function work(dir, ms) {
  const lance = await import('@lancedb/lancedb');
  const A = await import('apache-arrow');
  const db = await lance.connect(dir);
  const dim = 16;
  const schema = new A.Schema([
    new A.Field('off', new A.Int64(), false),
    new A.Field('key', new A.Utf8(), false),
    new A.Field('blob', new A.Binary(), true),
    new A.Field('vec', new A.FixedSizeList(dim, new A.Field('item', new A.Float32(), true)), false),
  ]);
  let end = 0;
  const batch = (n) => {
    const rows = [];
    for (let i = 0; i < n; i++) {
      const v = new Float32Array(dim);
      for (let j = 0; j < dim; j++) v[j] = Math.random();
      rows.push({ off: BigInt(end + i), key: `k${(end + i) % 50}`, blob: i === 0 ? new Uint8Array(4096).fill(7) : null, vec: Array.from(v) });
    }
    end += n;
    return lance.makeArrowTable(rows, { schema });
  };
  let t = await db.createTable('t', batch(200), { mode: 'overwrite' });
  if (!isMainThread) parentPort.postMessage('ready');
  const stop = Date.now() + ms;
  let ops = 0;
  while (Date.now() < stop) {
    await t.add(batch(200));
    const from = Math.max(0, end - 1000);
    await t.query().where(`off >= ${from} AND off < ${end}`).select(['off', 'blob']).toArrow();
    await t.vectorSearch(Float32Array.from({ length: dim }, Math.random)).column('vec').limit(5).toArrow();
    await t.countRows(`key = 'k3'`);
    if (++ops % 8 === 0) await t.optimize();
  }
  t.close();
  db.close();
  return ops;
}

function worker(dir, ms) {
  return new Worker(SELF, { workerData: { role: 'work', dir, ms } });
}

const exited = (w) => new Promise((r) => w.once('exit', r));

async function one(mode, ms) {
  const base = mkdtempSync(join(tmpdir(), 'lance-crash-'));
  const dir = (n) => join(base, String(n));
  try {
    switch (mode) {
      case 'single':
        await exited(worker(dir(1), ms));
        break;
      case 'main':
        await work(dir(1), ms);
        break;
      case 'two-workers':
        await Promise.all([exited(worker(dir(1), ms)), exited(worker(dir(2), ms))]);
        break;
      case 'main-worker':
        await Promise.all([work(dir(1), ms), exited(worker(dir(2), ms))]);
        break;
      case 'terminate':
        for (let i = 0; i < 4; i++) {
          const w = worker(dir(i), ms);
          // Mid-operation: LanceDB is loaded and calls are under way after ~0.5 s.
          await new Promise((r) => setTimeout(r, 500 + Math.random() * 300));
          await w.terminate();
        }
        await exited(worker(dir(9), ms / 2));
        break;
      case 'terminate-busy':
      case 'terminate-load':
        for (let i = 0; i < 4; i++) {
          const w = worker(dir(i), ms);
          if (mode === 'terminate-busy') await new Promise((r) => w.once('message', r));
          await new Promise((r) => setTimeout(r, Math.random() * (mode === 'terminate-busy' ? 200 : 250)));
          await w.terminate();
        }
        await exited(worker(dir(9), ms / 2));
        break;
      case 'replace':
        for (let i = 0; i < 4; i++) await exited(worker(dir(i), ms / 4));
        break;
      case 'overlap': {
        const all = [];
        for (let i = 0; i < 4; i++) {
          all.push(exited(worker(dir(i), ms / 2)));
          await new Promise((r) => setTimeout(r, ms / 4));
        }
        await Promise.all(all);
        break;
      }
      case 'exit-idle': {
        const w = new Worker(SELF, { workerData: { role: 'stay', dir: dir(1), ms } });
        await new Promise((r) => w.on('message', (m) => m !== 'ready' && r()));
        w.unref();
        break;
      }
      case 'shared': {
        const w = new Worker(SELF, { workerData: { role: 'stay', dirs: [dir(1), dir(2)], ms } });
        await new Promise((r) => w.on('message', (m) => m !== 'ready' && r()));
        w.unref();
        break;
      }
      default:
        throw new Error(`unknown mode ${mode} (${MODES.join(', ')})`);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

if (!isMainThread) {
  const { role, dir, dirs, ms } = workerData;
  const done = Promise.all((dirs ?? [dir]).map((d) => work(d, ms)));
  // 'stay': answers, then keeps its port open (alive and idle until the process exits).
  done.then((ops) => parentPort.postMessage(ops));
  if (role === 'work') done.then(() => parentPort.close());
} else if (process.argv[2] === '--one') {
  await one(process.argv[3], Number(process.argv[4]));
} else {
  const mode = process.argv[2] ?? 'all';
  const runs = Number(process.argv[3] ?? 20);
  const ms = Number(process.argv[4] ?? 1500);
  for (const m of mode === 'all' ? MODES : [mode]) {
    const tally = new Map();
    for (let i = 0; i < runs; i++) {
      const r = spawnSync(process.execPath, [SELF, '--one', m, String(ms)], { encoding: 'utf8', timeout: 120_000 });
      const how = r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
      tally.set(how, (tally.get(how) ?? 0) + 1);
      if (how !== 'exit 0') {
        const why = (r.stderr || '').split('\n').find((l) => /Check failed|free\(\)|Fatal|Segmentation|abort|Error/.test(l));
        if (why) tally.set(`  e.g. ${why.trim().slice(0, 110)}`, 1);
      }
    }
    console.log(`${m}: ${runs} runs: ${[...tally].map(([k, v]) => (k.startsWith('  ') ? `\n${k}` : `${k} x${v}`)).join(', ')}`);
  }
}
