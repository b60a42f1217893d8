/**
 * Ingest benchmark (DESIGN.md "Performance"): rows/s that asof acknowledges,
 * fsync'd, for JSON batches of 1,000 rows with RFC 3339 timestamps, against a
 * bare Fastify route that parses and drops the same body, in one run, same
 * load driver, same bodies, with two row shapes: 8 columns and 5 columns
 * (bench/events.ts). Printed for each: the rows/s ratio and server CPU ms per
 * 1,000 rows of both sides (target: ratio >= 0.5), and asof's main-thread
 * (event loop) share of its CPU, and the load driver's own CPU per 1,000
 * rows (it runs on the same cores: on a 2-core machine the bare route's rate
 * is partly the driver's). Also: Arrow IPC stream bodies into the
 * 8-column table, and pk upserts.
 *
 *   npm run bench:ingest [-- --seconds 8 --rounds 3 --connections 8 --only-json --no-tiering --cpu-prof DIR]
 *
 * --cpu-prof DIR: the asof server writes V8 CPU profiles into DIR (node
 * --cpu-prof; one per thread, written when it stops).
 *
 * asof runs at its default configuration, as `npm start` runs it: tiering on
 * (ASOF_TIER_AFTER=10s), so records written in one round are copied into
 * Lance, in the cold tier's worker thread, during the later ones, and their
 * CPU counts in asof's. --no-tiering (ASOF_TIER_AFTER=off) measures the
 * ingest path alone; bench:tiering measures tiering itself.
 *
 * Each server runs alone in its own child process (one after the other); this
 * process only sends prepared bodies. Not a test: it prints, it asserts nothing.
 */
import * as A from 'apache-arrow';
import Fastify from 'fastify';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COUNTRIES, EVENTS, EVENTS_5, ROWS, eventRows, eventRows5 } from './events.js';
import { freePort, readyChild, spawnChild, waitReady } from '../support/child-server.js';
import { drive, fmt, machine, type LoadResult } from './lib.js';

const BODIES = 16;

const ACCOUNTS = {
  kind: 'pk',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'balance', type: 'float64', nullable: false },
    { name: 'country', type: 'string' },
    { name: 'updated', type: 'timestamp' },
  ],
};


function accountRows(b: number): Record<string, unknown>[] {
  return Array.from({ length: ROWS }, (_, i) => ({ user: (b * ROWS + i) % 50_000, balance: (b * i) % 1000, country: COUNTRIES[i % 6], updated: 1767225600000 + b * 1000 + i }));
}

function arrowBody(rows: Record<string, unknown>[]): Buffer {
  const col = <T extends A.DataType>(type: T, f: (r: Record<string, unknown>) => unknown): A.Vector<T> => A.vectorFromArray(rows.map(f) as never[], type);
  const table = new A.Table({
    user: col(new A.Int64(), (r) => BigInt(r.user as number)),
    ts: col(new A.TimestampMillisecond('UTC'), (r) => Date.parse(r.ts as string)),
    kind: col(new A.Utf8(), (r) => r.kind),
    amount: col(new A.Float64(), (r) => r.amount),
    country: col(new A.Utf8(), (r) => r.country),
    device: col(new A.Utf8(), (r) => r.device),
    score: col(new A.Float32(), (r) => r.score),
    flagged: col(new A.Bool(), (r) => r.flagged),
  });
  return Buffer.from(A.tableToIPC(table, 'stream'));
}

/** The reference: Fastify's own JSON parsing, then the body is dropped. */
async function bareServer(port: number): Promise<void> {
  const app = Fastify({ bodyLimit: 64 * 1024 * 1024, keepAliveTimeout: 65_000 });
  app.post('/ingest', async (req) => ({ count: (req.body as { rows: unknown[] }).rows.length }));
  app.get('/readyz', async () => ({ status: 'ready' }));
  await app.listen({ port, host: '127.0.0.1' });
  process.on('SIGTERM', () => process.exit(0));
}

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function put(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`PUT ${url}: ${res.status} ${await res.text()}`);
}

/** Server CPU ms per row acknowledged. */
const cpuPerRow = (r: LoadResult): number => r.serverCpuMs / r.rows;
/** The main thread's (event loop's) part of it. */
const mainCpuPerRow = (r: LoadResult): number => r.serverMainCpuMs / r.rows;

const line = (name: string, r: LoadResult): string =>
  `${name.padEnd(34)} ${fmt(r.rowsPerSec).padStart(10)} rows/s  (${r.requests} requests in ${r.seconds.toFixed(1)} s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, server ${(cpuPerRow(r) * 1000).toFixed(1)} CPU-ms per 1,000 rows, ${(mainCpuPerRow(r) * 1000).toFixed(1)} on its main thread${r.errors ? `, ${r.errors} errors` : ''})`;

/** One pairing of asof against the bare route with the same JSON bodies. */
interface JsonCase {
  name: string;
  table: string;
  bodies: Buffer[];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function main(): Promise<void> {
  if (process.argv[2] === 'bare') return bareServer(Number(process.argv[3]));
  const seconds = flag('seconds', 8);
  const connections = flag('connections', 8);
  const warmupSeconds = flag('warmup', 1);
  const rounds = flag('rounds', 3);
  // --only-json: just the two JSON pairings (8 and 5 columns), for profiling and quick checks.
  const onlyJson = process.argv.includes('--only-json');
  // Tiering is on, as by default: each record is copied again into Lance 10 s after its commit, in a worker thread.
  const tiering = !process.argv.includes('--no-tiering');
  const self = fileURLToPath(import.meta.url);
  const bodiesOf = (rows: (b: number) => Record<string, unknown>[]): Buffer[] => Array.from({ length: BODIES }, (_, b) => Buffer.from(JSON.stringify({ rows: rows(b) })));
  const cases: JsonCase[] = [
    { name: '8 columns', table: 'events', bodies: bodiesOf(eventRows) },
    { name: '5 columns', table: 'events5', bodies: bodiesOf(eventRows5) },
  ];
  const arrow = Array.from({ length: BODIES }, (_, b) => arrowBody(eventRows(b)));
  const upserts = bodiesOf(accountRows);
  const kib = (b: Buffer): string => `${(b.length / 1024).toFixed(0)} KiB`;
  console.log(`ingest benchmark: ${ROWS}-row batches (JSON: 8 columns ${kib(cases[0].bodies[0])}, 5 columns ${kib(cases[1].bodies[0])}; Arrow ${kib(arrow[0])}), RFC 3339 timestamps, ${connections} connections, ${rounds} rounds of ${seconds} s per case after ${warmupSeconds} s warm-up`);
  console.log(`machine: ${machine()}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${tiering ? 'asof at its defaults: tiering on (ASOF_TIER_AFTER=10s, into Lance in a worker thread; its CPU counts in asof\'s; --no-tiering for the ingest path alone)' : 'asof at its defaults but tiering off (ASOF_TIER_AFTER=off, --no-tiering)'}`);
  const load = { rowsPerBody: ROWS, connections, seconds, warmupSeconds };

  // Both servers stay up; the load alternates between them round by round, so a
  // noisy neighbour on a shared machine hits both sides alike. Reported: the median round.
  const barePort = await freePort();
  const bare = spawnChild([self, 'bare', String(barePort)], { port: barePort });
  await waitReady(bare);
  const dataDir = await mkdtemp(join(tmpdir(), 'asof-bench-ingest-'));
  const profDir = process.argv.includes('--cpu-prof') ? process.argv[process.argv.indexOf('--cpu-prof') + 1] : undefined;
  const nodeArgs = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const asof = await readyChild(dataDir, tiering ? {} : { ASOF_TIER_AFTER: 'off' }, { nodeArgs }).catch(async (e) => {
    await bare.kill();
    throw e;
  });
  try {
    await put(`${asof.url}/tables/events`, EVENTS);
    await put(`${asof.url}/tables/events5`, EVENTS_5);
    await put(`${asof.url}/tables/accounts`, ACCOUNTS);
    const runs = cases.map(() => ({ bare: [] as LoadResult[], asof: [] as LoadResult[] }));
    const arrowRuns: LoadResult[] = [];
    const pkRuns: LoadResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      const a = { serverPid: asof.proc.pid };
      const parts: string[] = [];
      for (const [i, c] of cases.entries()) {
        const b = await drive({ ...load, url: `${bare.url}/ingest`, bodies: c.bodies, contentType: 'application/json', serverPid: bare.proc.pid });
        const j = await drive({ ...load, ...a, url: `${asof.url}/tables/${c.table}/rows`, bodies: c.bodies, contentType: 'application/json' });
        runs[i].bare.push(b);
        runs[i].asof.push(j);
        parts.push(`${c.name}: bare ${fmt(b.rowsPerSec)}, asof ${fmt(j.rowsPerSec)} rows/s (ratio ${(j.rowsPerSec / b.rowsPerSec).toFixed(2)}, CPU per row ${(cpuPerRow(b) / cpuPerRow(j)).toFixed(2)})`);
      }
      if (!onlyJson) {
        arrowRuns.push(await drive({ ...load, ...a, url: `${asof.url}/tables/events/rows`, bodies: arrow, contentType: 'application/vnd.apache.arrow.stream' }));
        pkRuns.push(await drive({ ...load, ...a, url: `${asof.url}/tables/accounts/rows`, bodies: upserts, contentType: 'application/json' }));
        parts.push(`Arrow ${fmt(arrowRuns[round - 1].rowsPerSec)}, pk upserts ${fmt(pkRuns[round - 1].rowsPerSec)} rows/s`);
      }
      console.log(`round ${round}: ${parts.join('; ')}; load average ${loadavg()[0].toFixed(1)}`);
    }
    const med = (rs: LoadResult[]): LoadResult => [...rs].sort((a, b) => a.rowsPerSec - b.rowsPerSec)[rs.length >> 1];
    const summary: Record<string, unknown> = { bench: 'ingest', machine: machine(), connections, seconds, rounds, tiering, loadavg: loadavg()[0] };
    console.log('');
    console.log('median round:');
    for (const [i, c] of cases.entries()) {
      console.log(line(`bare Fastify, parse and drop, ${c.name}`, med(runs[i].bare)));
      console.log(line(`asof, JSON into a log table, ${c.name}`, med(runs[i].asof)));
    }
    if (!onlyJson) {
      console.log(line('asof, Arrow IPC into a log table', med(arrowRuns)));
      console.log(line('asof, JSON upserts into a pk table', med(pkRuns)));
    }
    for (const [i, c] of cases.entries()) {
      const { bare: bs, asof: js } = runs[i];
      const ratios = js.map((r, k) => r.rowsPerSec / bs[k].rowsPerSec);
      const cpuRatios = js.map((r, k) => cpuPerRow(bs[k]) / cpuPerRow(r));
      const cpuMsPer1000 = (rs: LoadResult[]): number => median(rs.map(cpuPerRow)) * 1000;
      console.log('');
      console.log(`${c.name}: ratio asof JSON / bare Fastify: ${median(ratios).toFixed(2)} rows/s (median of ${rounds} rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.5)`);
      const mainMsPer1000 = median(js.map(mainCpuPerRow)) * 1000;
      console.log(`${c.name}: server CPU per row, bare / asof: ${median(cpuRatios).toFixed(2)} (${cpuRatios.map((r) => r.toFixed(2)).join(', ')}): the same ratio with a noisy neighbour factored out; ${cpuMsPer1000(bs).toFixed(1)} (bare) vs ${cpuMsPer1000(js).toFixed(1)} (asof) CPU-ms per 1,000 rows, ${mainMsPer1000.toFixed(1)} of asof's on its main thread`);
      const driverMsPer1000 = (rs: LoadResult[]): number => median(rs.map((r) => r.driverCpuMs / r.rows)) * 1000;
      console.log(`${c.name}: the load driver (this process, same bodies for both) used ${driverMsPer1000(bs).toFixed(2)} (bare) and ${driverMsPer1000(js).toFixed(2)} (asof) CPU-ms per 1,000 rows on the same cores`);
      summary[c.table] = { ratio: median(ratios), cpuRatio: median(cpuRatios), bareCpuMsPer1000: cpuMsPer1000(bs), asofCpuMsPer1000: cpuMsPer1000(js), asofMainCpuMsPer1000: mainMsPer1000, driverCpuMsPer1000: { bare: driverMsPer1000(bs), asof: driverMsPer1000(js) }, bare: med(bs).rowsPerSec, asof: med(js).rowsPerSec };
    }
    if (!onlyJson) {
      console.log('');
      console.log(`ratio asof Arrow / bare Fastify JSON (8 columns): ${(med(arrowRuns).rowsPerSec / med(runs[0].bare).rowsPerSec).toFixed(2)}`);
      console.log(`ratio asof pk upserts / bare Fastify (8-column JSON): ${(med(pkRuns).rowsPerSec / med(runs[0].bare).rowsPerSec).toFixed(2)}`);
      Object.assign(summary, { arrow: med(arrowRuns).rowsPerSec, pkUpsert: med(pkRuns).rowsPerSec });
    }
    const errors = [...runs.flatMap((r) => [...r.bare, ...r.asof]), ...arrowRuns, ...pkRuns].reduce((n, r) => n + r.errors, 0);
    if (errors) console.log(`WARNING: ${errors} requests failed`);
    console.log(JSON.stringify(summary));
  } finally {
    await bare.kill();
    await asof.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
