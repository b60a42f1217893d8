/**
 * Tiering benchmark (issue 11): records/s copied into Lance, and the tiering
 * lag, while bench:ingest's load (JSON batches of 1,000 rows into a log table,
 * 8 connections) runs; then start-up time with tiered data.
 *
 *   npm run bench:tiering [-- --seconds 20 --connections 8]
 *
 * References measured in the same run:
 *  - the same ingest load against a server with tiering off (ASOF_TIER_AFTER=off):
 *    what tiering costs ingest;
 *  - LanceDB's own `add` of the same records (one dataset, the same batch sizes
 *    as the tiering steps took), in this process: what tiering gets of Lance's rate;
 *  - start-up of the tiering-off server's data folder (same records, all hot) and
 *    of an empty one.
 * The tiering server runs with ASOF_TIER_AFTER=0s and ASOF_HOT_RETENTION=0s and
 * 4 MiB segments, so what the lag shows is tiering's own capacity, and segments
 * are deleted as it goes. Not a test: it prints, it asserts nothing.
 */
import * as lancedb from '@lancedb/lancedb';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENTS, ROWS, eventRows } from './events.js';
import { readyChild, type ChildServer } from '../support/child-server.js';
import { drive, fmt, machine, type LoadResult } from './lib.js';

const BODIES = 16;

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function metrics(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(asof_tier\w*|asof_tiered\w*|asof_hot_segments\w*)(\{table="events"\})? (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[3]);
  }
  return out;
}

interface Served {
  child: ChildServer & { readyMs: number };
  dataDir: string;
}

async function serve(dataDir: string, env: Record<string, string>): Promise<Served> {
  const child = await readyChild(dataDir, env, { timeoutMs: 120_000, pollMs: 2 });
  return { child, dataDir };
}

const TIERING = { ASOF_TIER_AFTER: '0s', ASOF_HOT_RETENTION: '0s', ASOF_SEGMENT_BYTES: String(4 << 20) };

async function main(): Promise<void> {
  const seconds = flag('seconds', 20);
  const connections = flag('connections', 8);
  const bodies = Array.from({ length: BODIES }, (_, b) => Buffer.from(JSON.stringify({ rows: eventRows(b) })));
  console.log(`tiering benchmark: bench:ingest's load (${ROWS}-row JSON batches, ${connections} connections) for ${seconds} s, tiering at 0s with 0s hot retention`);
  console.log(`machine: ${machine()}; load average ${loadavg()[0].toFixed(1)}`);
  const load = { rowsPerBody: ROWS, connections, seconds, warmupSeconds: 1, bodies, contentType: 'application/json' };
  const dirs: string[] = [];
  const tmp = async (what: string) => {
    const d = await mkdtemp(join(tmpdir(), `asof-bench-tiering-${what}-`));
    dirs.push(d);
    return d;
  };
  try {
    // Reference: tiering off.
    const off = await serve(await tmp('off'), { ASOF_TIER_AFTER: 'off' });
    let offRun: LoadResult;
    try {
      await fetch(`${off.child.url}/tables/events`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(EVENTS) });
      offRun = await drive({ ...load, url: `${off.child.url}/tables/events/rows`, serverPid: off.child.proc.pid });
    } finally {
      await off.child.kill('SIGTERM');
    }

    // Tiering on: ingest while polling the lag.
    const on = await serve(await tmp('on'), TIERING);
    let onRun: LoadResult;
    const lags: { records: number; seconds: number }[] = [];
    let drainMs = 0;
    let tiered = 0;
    let tierSeconds = 0;
    try {
      await fetch(`${on.child.url}/tables/events`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(EVENTS) });
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const m = await metrics(on.child.url).catch(() => ({}) as Record<string, number>);
          if ('asof_tiering_lag_records' in m) lags.push({ records: m.asof_tiering_lag_records, seconds: m.asof_tiering_lag_seconds });
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      const t0 = performance.now();
      onRun = await drive({ ...load, url: `${on.child.url}/tables/events/rows`, serverPid: on.child.proc.pid });
      polling = false;
      await poller;
      // After the load: how long until everything is in Lance.
      const loadEnd = performance.now();
      for (;;) {
        const m = await metrics(on.child.url);
        if (m.asof_tiering_lag_records === 0) {
          tiered = m.asof_tiered_records_total;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      drainMs = performance.now() - loadEnd;
      tierSeconds = (performance.now() - t0) / 1000;
    } finally {
      await on.child.kill('SIGTERM');
    }

    // Tiering's capacity, with no ingest competing: the tiering-off folder's records, all at once as a backlog.
    const backlog = await serve(off.dataDir, { ...TIERING, ASOF_HOT_RETENTION: 'off' });
    const b0 = performance.now();
    let backlogRecords = 0;
    try {
      for (;;) {
        const m = await metrics(backlog.child.url);
        if (m.asof_tiering_lag_records === 0) {
          backlogRecords = m.asof_tiered_records_total;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await backlog.child.kill('SIGTERM');
    }
    const backlogRate = (backlogRecords / (performance.now() - b0)) * 1000;

    // Reference: LanceDB's own add of the same number of records, in batches like the tiering steps'.
    const lanceRate = await directLance(await tmp('lance'), backlogRecords, 32);

    // Start-up with tiered data: from the snapshot, and without one (frames below the hot log replayed from Lance).
    const fromSnap = await serve(on.dataDir, TIERING);
    await fromSnap.child.kill('SIGKILL');
    await rename(join(on.dataDir, 'tables', 'events', 'state.snapshot'), join(on.dataDir, 'old.snapshot'));
    const noSnap = await serve(on.dataDir, TIERING);
    await noSnap.child.kill('SIGTERM');
    const offStart = await serve(off.dataDir, { ASOF_TIER_AFTER: 'off' });
    await offStart.child.kill('SIGKILL');
    const empty = await serve(await tmp('empty'), TIERING);
    await empty.child.kill('SIGKILL');

    const maxLag = lags.reduce((m, l) => ({ records: Math.max(m.records, l.records), seconds: Math.max(m.seconds, l.seconds) }), { records: 0, seconds: 0 });
    const sorted = (k: 'records' | 'seconds') => lags.map((l) => l[k]).sort((a, b) => a - b);
    const p50 = (k: 'records' | 'seconds') => sorted(k)[sorted(k).length >> 1] ?? 0;
    const tierRate = tiered / tierSeconds;
    console.log('');
    console.log(`ingest, tiering off:         ${fmt(offRun.rowsPerSec).padStart(9)} rows/s (p99 ${offRun.p99.toFixed(1)} ms)`);
    console.log(`ingest, tiering on (0s/0s):  ${fmt(onRun.rowsPerSec).padStart(9)} rows/s (p99 ${onRun.p99.toFixed(1)} ms); ratio on/off ${(onRun.rowsPerSec / offRun.rowsPerSec).toFixed(2)}`);
    console.log(`tiering under load:          ${fmt(tierRate).padStart(9)} records/s into Lance (${fmt(tiered)} records in ${tierSeconds.toFixed(1)} s, load and drain), ${(tierRate / onRun.rowsPerSec).toFixed(2)} of the ingest rate`);
    console.log(`tiering capacity (backlog):  ${fmt(backlogRate).padStart(9)} records/s (${fmt(backlogRecords)} records already written, tiered with no ingest running)`);
    console.log(`LanceDB add, same records:   ${fmt(lanceRate).padStart(9)} records/s (in this process, 32,000-row adds); tiering capacity / direct ${(backlogRate / lanceRate).toFixed(2)}`);
    console.log(`tiering lag under load:      median ${fmt(p50('records'))} records / ${p50('seconds').toFixed(1)} s, max ${fmt(maxLag.records)} records / ${maxLag.seconds.toFixed(1)} s (${lags.length} samples); drained ${(drainMs / 1000).toFixed(1)} s after the load stopped`);
    console.log(`start-up, tiered data:       ${fromSnap.child.readyMs.toFixed(0)} ms from the snapshot, ${noSnap.child.readyMs.toFixed(0)} ms without it (replaying Lance below the hot log)`);
    console.log(`start-up, references:        ${offStart.child.readyMs.toFixed(0)} ms all hot (tiering off, ${fmt(offRun.rows)} records, from its snapshot), ${empty.child.readyMs.toFixed(0)} ms empty data folder`);
    console.log(`load average at the end: ${loadavg()[0].toFixed(1)}`);
    console.log(JSON.stringify({ bench: 'tiering', machine: machine(), seconds, connections, ingestOff: offRun.rowsPerSec, ingestOn: onRun.rowsPerSec, tierRate, backlogRate, lanceRate, lagP50: { records: p50('records'), seconds: p50('seconds') }, lagMax: maxLag, drainMs, startup: { snapshot: fromSnap.child.readyMs, noSnapshot: noSnap.child.readyMs, allHot: offStart.child.readyMs, empty: empty.child.readyMs } }));
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}

/** LanceDB add of `records` rows shaped like the tiered ones (offset, change, commit time, frame bytes on 1 in 1,000, the columns), in batches of 1,000 x `perCommit` bodies. */
async function directLance(dir: string, records: number, perCommit: number): Promise<number> {
  const A: typeof import('apache-arrow') = createRequire(import.meta.url)('apache-arrow');
  const db = await lancedb.connect(dir);
  const batchRows = ROWS * perCommit;
  const make = (first: number, n: number) => {
    const rows = Array.from({ length: n / ROWS }, (_, b) => eventRows(b)).flat();
    const col = <T extends import('apache-arrow').DataType>(type: T, f: (r: Record<string, unknown>, i: number) => unknown) => A.vectorFromArray(rows.map(f) as never[], type);
    return new A.Table({
      _asof_offset: col(new A.Int64(), (_, i) => BigInt(first + i)),
      _asof_change: col(new A.Int8(), () => 0),
      _asof_commit_time: col(new A.TimestampMillisecond('UTC'), () => Date.now()),
      _asof_frame: col(new A.Binary(), (_, i) => (i % ROWS === 0 ? new Uint8Array(80_000) : null)),
      user: col(new A.Int64(), (r) => BigInt(r.user as number)),
      ts: col(new A.TimestampMillisecond('UTC'), (r) => Date.parse(r.ts as string)),
      kind: col(new A.Utf8(), (r) => r.kind),
      amount: col(new A.Float64(), (r) => r.amount),
      country: col(new A.Utf8(), (r) => r.country),
      device: col(new A.Utf8(), (r) => r.device),
      score: col(new A.Float32(), (r) => r.score),
      flagged: col(new A.Bool(), (r) => r.flagged),
    });
  };
  // Batches are built before the clock starts: only Lance's write is timed.
  const batches = [];
  for (let at = 0; at < records; at += batchRows) batches.push(make(at, Math.min(batchRows, Math.ceil((records - at) / ROWS) * ROWS)));
  const t0 = performance.now();
  const t = await db.createTable('events', batches[0]);
  for (const b of batches.slice(1)) await t.add(b);
  const ms = performance.now() - t0;
  db.close();
  return (batches.reduce((n, b) => n + b.numRows, 0) / ms) * 1000;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
