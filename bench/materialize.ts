/**
 * Materializing windowed aggregates: what one large write for a single
 * entity costs with a windowed view over the table, against the same write
 * into a table with no view, in the same run (the reference).
 *
 * Each case writes N events of one entity in one JSON request (POST
 * /tables/{t}/rows, through Fastify's inject, in this process), event times
 * one second apart inside the last 30 days, either in time order or shuffled
 * (late and out-of-order events). Views: `count(*)` over 90d (the case that
 * took minutes), and count/sum/max over 1d and 90d plus a column feature.
 * Every write goes into a fresh table, so each starts from an empty state;
 * cases alternate with the reference, repeated --rounds times; the median is
 * printed. Figures: server CPU ms of the write (process.cpuUsage, this
 * process is the server) and the longest event-loop stall during it (what a
 * concurrent lookup of any view would wait). Linear materializing keeps the
 * ratio to the reference flat as N grows; quadratic would grow it with N.
 * Then 1-row writes into an entity already holding N events, CPU ms per write
 * with and without the view: a commit's cost still grows with the entity's
 * window state (see RESULTS.md), which this part keeps in view.
 *
 *   npm run bench:materialize [-- --sizes 10000,30000,90000 --rounds 3]
 *
 * Not a test: it prints, it asserts nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAsof, type Asof } from '../src/app.js';
import { ConfigSchema } from '../src/config.js';
import { silentLogger } from '../src/logger.js';
import { machine } from './lib.js';
import { rng } from '../support/rng.js';

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const SIZES = flag('sizes', '10000,30000,90000').split(',').map(Number);
const ROUNDS = Number(flag('rounds', '3'));
const NOW = Date.parse('2026-06-01T00:00:00Z');

const VIEWS: Record<string, unknown[] | null> = {
  'no view (reference)': null,
  'count(*) 90d': [{ name: 'n90d', agg: { fn: 'count', window: '90d' } }],
  'count/sum/max 1d+90d, last value': [
    { name: 'n1d', agg: { fn: 'count', window: '1d' } },
    { name: 'sum1d', agg: { fn: 'sum', column: 'amount', window: '1d' } },
    { name: 'sum90d', agg: { fn: 'sum', column: 'amount', window: '90d' } },
    { name: 'max90d', agg: { fn: 'max', column: 'amount', window: '90d' } },
    { name: 'amount', column: 'amount' },
  ],
};


function body(n: number, shuffled: boolean): string {
  const rows = Array.from({ length: n }, (_, i) => ({ user: 42, ts: NOW - 1000 * (n - i), amount: Math.round(i * 1.37) / 100 }));
  if (shuffled) {
    const r = rng(n);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
  }
  return JSON.stringify({ rows });
}

let tables = 0;

async function req(asof: Asof, method: string, url: string, payload: string): Promise<void> {
  const res = await asof.http.inject({ method: method as 'POST', url, payload, headers: { 'content-type': 'application/json' } });
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
}

/** One write of `payload` into a fresh table (with the view, if any): server CPU ms and the longest event-loop stall, ms. */
async function once(asof: Asof, features: unknown[] | null, payload: string): Promise<{ cpuMs: number; stallMs: number }> {
  const t = `ev${tables++}`;
  await req(asof, 'PUT', `/tables/${t}`, JSON.stringify({ kind: 'log', eventTime: 'ts', columns: [{ name: 'user', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'amount', type: 'float64' }] }));
  if (features) await req(asof, 'PUT', `/feature-views/v_${t}`, JSON.stringify({ source: t, entity: 'user', features }));
  (globalThis as { gc?: () => void }).gc?.();
  // The longest gap between ticks of a 1 ms timer: how long the event loop was held.
  let last = performance.now();
  let stall = 0;
  const tick = setInterval(() => {
    const t = performance.now();
    stall = Math.max(stall, t - last);
    last = t;
  }, 1);
  const cpu = process.cpuUsage();
  await req(asof, 'POST', `/tables/${t}/rows`, payload);
  const used = process.cpuUsage(cpu);
  await new Promise((resolve) => setTimeout(resolve, 5));
  clearInterval(tick);
  return { cpuMs: (used.user + used.system) / 1000, stallMs: stall };
}

/**
 * Then `writes` 1-row writes into an entity that already holds `held` events (one write, not timed):
 * server CPU ms per write. What a stream into a hot entity pays per commit.
 */
async function stream(asof: Asof, features: unknown[] | null, held: number, writes: number): Promise<number> {
  const t = `ev${tables++}`;
  await req(asof, 'PUT', `/tables/${t}`, JSON.stringify({ kind: 'log', eventTime: 'ts', columns: [{ name: 'user', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'amount', type: 'float64' }] }));
  if (features) await req(asof, 'PUT', `/feature-views/v_${t}`, JSON.stringify({ source: t, entity: 'user', features }));
  await req(asof, 'POST', `/tables/${t}/rows`, body(held, false));
  (globalThis as { gc?: () => void }).gc?.();
  const cpu = process.cpuUsage();
  for (let i = 0; i < writes; i++) await req(asof, 'POST', `/tables/${t}/rows`, JSON.stringify({ rows: [{ user: 42, ts: NOW - writes + i, amount: 1 }] }));
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / 1000 / writes;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'asof-bench-materialize-'));
  const asof = await startAsof(ConfigSchema.parse({ dataDir: dir, port: 0, grpcPort: 0 }), silentLogger, { listen: false, now: () => NOW });
  console.log(`bench:materialize  ${machine()}  load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}  ${new Date().toISOString()}`);
  console.log(`one write of N events for one entity into a fresh table; median of ${ROUNDS} rounds (cases alternate); server CPU ms of the write, longest event-loop stall during it`);
  console.log('| events | order | view | CPU ms | CPU µs/event | / reference (CPU) | longest stall ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  try {
    // Warm-up: compiled code on every path before anything is measured.
    for (const f of Object.values(VIEWS)) await once(asof, f, body(2000, true));
    for (const n of SIZES) {
      for (const shuffled of [false, true]) {
        const payload = body(n, shuffled);
        const runs = new Map<string, { cpuMs: number; stallMs: number }[]>(Object.keys(VIEWS).map((k) => [k, []]));
        for (let r = 0; r < ROUNDS; r++) for (const [name, f] of Object.entries(VIEWS)) runs.get(name)!.push(await once(asof, f, payload));
        const ref = median(runs.get('no view (reference)')!.map((x) => x.cpuMs));
        for (const [name, xs] of runs) {
          const cpu = median(xs.map((x) => x.cpuMs));
          const stall = median(xs.map((x) => x.stallMs));
          console.log(`| ${n.toLocaleString('en-US')} | ${shuffled ? 'shuffled' : 'in order'} | ${name} | ${cpu.toFixed(0)} | ${((cpu * 1000) / n).toFixed(1)} | ${(cpu / ref).toFixed(2)} | ${stall.toFixed(0)} |`);
        }
      }
    }
    // Not linear yet: each commit decodes and re-encodes the entity's whole window state (RESULTS.md).
    console.log('\n1-row writes into an entity already holding N events (a stream into a hot entity): server CPU ms per write, median of rounds');
    console.log('| events held | view | CPU ms per write | / reference |');
    console.log('| --- | --- | --- | --- |');
    for (const n of SIZES) {
      const runs = new Map<string, number[]>(Object.keys(VIEWS).map((k) => [k, []]));
      for (let r = 0; r < ROUNDS; r++) for (const [name, f] of Object.entries(VIEWS)) runs.get(name)!.push(await stream(asof, f, n, 100));
      const ref = median(runs.get('no view (reference)')!);
      for (const [name, xs] of runs) console.log(`| ${n.toLocaleString('en-US')} | ${name} | ${median(xs).toFixed(2)} | ${(median(xs) / ref).toFixed(2)} |`);
    }
  } finally {
    await asof.close();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

await main();
