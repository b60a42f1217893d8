/**
 * Ingest benchmark (DESIGN.md "Performance"): rows/s that asof acknowledges,
 * fsync'd, for JSON batches of 1,000 rows, against a bare Fastify route that
 * parses and drops the same body, in one run, same load driver, same bodies.
 * Also: Arrow IPC stream bodies into the same table, and pk upserts.
 *
 *   npm run bench:ingest [-- --seconds 8 --rounds 3 --connections 8]
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
import { COUNTRIES, EVENTS, ROWS, eventRows } from './events.js';
import { drive, fmt, freePort, machine, spawnServer, type LoadResult } from './lib.js';

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

const line = (name: string, r: LoadResult): string =>
  `${name.padEnd(34)} ${fmt(r.rowsPerSec).padStart(10)} rows/s  (${r.requests} requests in ${r.seconds.toFixed(1)} s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, server ${(cpuPerRow(r) * 1000).toFixed(1)} CPU-ms per 1,000 rows${r.errors ? `, ${r.errors} errors` : ''})`;

async function main(): Promise<void> {
  if (process.argv[2] === 'bare') return bareServer(Number(process.argv[3]));
  const seconds = flag('seconds', 8);
  const connections = flag('connections', 8);
  const warmupSeconds = flag('warmup', 1);
  const rounds = flag('rounds', 3);
  const self = fileURLToPath(import.meta.url);
  const mainJs = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const json = Array.from({ length: BODIES }, (_, b) => Buffer.from(JSON.stringify({ rows: eventRows(b) })));
  const arrow = Array.from({ length: BODIES }, (_, b) => arrowBody(eventRows(b)));
  const upserts = Array.from({ length: BODIES }, (_, b) => Buffer.from(JSON.stringify({ rows: accountRows(b) })));
  console.log(`ingest benchmark: ${ROWS}-row batches (${(json[0].length / 1024).toFixed(0)} KiB JSON, ${(arrow[0].length / 1024).toFixed(0)} KiB Arrow), ${connections} connections, ${rounds} rounds of ${seconds} s per case after ${warmupSeconds} s warm-up`);
  console.log(`machine: ${machine()}`);
  const load = { rowsPerBody: ROWS, connections, seconds, warmupSeconds };

  // Both servers stay up; the load alternates between them round by round, so a
  // noisy neighbour on a shared machine hits both sides alike. Reported: the median round.
  const barePort = await freePort();
  const bare = await spawnServer([self, 'bare', String(barePort)], {}, barePort);
  const dataDir = await mkdtemp(join(tmpdir(), 'asof-bench-ingest-'));
  const port = await freePort();
  const asof = await spawnServer([mainJs, 'serve'], { PORT: String(port), ASOF_DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, port).catch(async (e) => {
    await bare.kill();
    throw e;
  });
  try {
    await put(`${asof.url}/tables/events`, EVENTS);
    await put(`${asof.url}/tables/accounts`, ACCOUNTS);
    const runs: Record<string, LoadResult[]> = { bare: [], json: [], arrow: [], pk: [] };
    for (let round = 1; round <= rounds; round++) {
      const a = { serverPid: asof.proc.pid };
      runs.bare.push(await drive({ ...load, url: `${bare.url}/ingest`, bodies: json, contentType: 'application/json', serverPid: bare.proc.pid }));
      runs.json.push(await drive({ ...load, ...a, url: `${asof.url}/tables/events/rows`, bodies: json, contentType: 'application/json' }));
      runs.arrow.push(await drive({ ...load, ...a, url: `${asof.url}/tables/events/rows`, bodies: arrow, contentType: 'application/vnd.apache.arrow.stream' }));
      runs.pk.push(await drive({ ...load, ...a, url: `${asof.url}/tables/accounts/rows`, bodies: upserts, contentType: 'application/json' }));
      const [b, j] = [runs.bare[round - 1], runs.json[round - 1]];
      console.log(`round ${round}: bare ${fmt(b.rowsPerSec)}, asof JSON ${fmt(j.rowsPerSec)} (ratio ${(j.rowsPerSec / b.rowsPerSec).toFixed(2)}; CPU per row ${(cpuPerRow(b) / cpuPerRow(j)).toFixed(2)}), Arrow ${fmt(runs.arrow[round - 1].rowsPerSec)}, pk upserts ${fmt(runs.pk[round - 1].rowsPerSec)} rows/s; load average ${loadavg()[0].toFixed(1)}`);
    }
    const med = (rs: LoadResult[]): LoadResult => [...rs].sort((a, b) => a.rowsPerSec - b.rowsPerSec)[rs.length >> 1];
    const ratios = runs.json.map((r, i) => r.rowsPerSec / runs.bare[i].rowsPerSec).sort((a, b) => a - b);
    const ratio = ratios[ratios.length >> 1];
    console.log('');
    console.log('median round:');
    console.log(line('bare Fastify, parse and drop', med(runs.bare)));
    console.log(line('asof, JSON into a log table', med(runs.json)));
    console.log(line('asof, Arrow IPC into a log table', med(runs.arrow)));
    console.log(line('asof, JSON upserts into a pk table', med(runs.pk)));
    console.log('');
    console.log(`ratio asof JSON / bare Fastify: ${ratio.toFixed(2)} (median of ${rounds} rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.5)`);
    const cpuRatios = runs.json.map((r, i) => cpuPerRow(runs.bare[i]) / cpuPerRow(r)).sort((a, b) => a - b);
    console.log(`server CPU per row, bare Fastify / asof JSON: ${cpuRatios[cpuRatios.length >> 1].toFixed(2)} (median; ${cpuRatios.map((r) => r.toFixed(2)).join(', ')}): the same ratio with a noisy neighbour factored out (${(cpuPerRow(med(runs.bare)) * 1000).toFixed(1)} vs ${(cpuPerRow(med(runs.json)) * 1000).toFixed(1)} CPU-ms per 1,000 rows)`);
    console.log(`ratio asof Arrow / bare Fastify JSON: ${(med(runs.arrow).rowsPerSec / med(runs.bare).rowsPerSec).toFixed(2)}`);
    console.log(`ratio asof pk upserts / bare Fastify: ${(med(runs.pk).rowsPerSec / med(runs.bare).rowsPerSec).toFixed(2)}`);
    const errors = Object.values(runs).flat().reduce((n, r) => n + r.errors, 0);
    if (errors) console.log(`WARNING: ${errors} requests failed`);
    console.log(JSON.stringify({ bench: 'ingest', machine: machine(), connections, seconds, rounds, ratio, cpuRatio: cpuRatios[cpuRatios.length >> 1], bare: med(runs.bare).rowsPerSec, json: med(runs.json).rowsPerSec, arrow: med(runs.arrow).rowsPerSec, pkUpsert: med(runs.pk).rowsPerSec }));
  } finally {
    await bare.kill();
    await asof.kill('SIGTERM');
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
