/**
 * bench:vectors' reference: direct LanceDB queries on asof's dataset, in a
 * process of their own, as a user of LanceDB alone would run them. In the
 * bench's own process they would share the process with asof's LanceDB thread
 * (engine/lance-host.ts): two isolates using LanceDB in one process, which
 * napi-rs 3.9.4 does not support (buffers one drops are released by the
 * other) and which moved the reference's own speed (bench/RESULTS.md, session
 * 14). The parent sends one query at a time, alternating with asof's, and
 * this process times only the LanceDB call (wall and its CPU).
 */
import * as lancedb from '@lancedb/lancedb';

export type DirectInit = { uri: string; table: string; column: string; k: number; kind: 'hnsw_sq' | 'ivf_pq'; ef: number; refine: number };
export type DirectAsk = { init: DirectInit } | { query: number[] } | { close: true };
/** `ms`: wall time of the LanceDB call; `cpuMs`: this process's CPU time over it, every thread (LanceDB's own included). */
export type DirectReply = { ready: true } | { ms: number; cpuMs: number; keys: string[] } | { error: string };

let table: lancedb.Table | undefined;
let db: lancedb.Connection | undefined;
let init: DirectInit | undefined;

async function answer(m: DirectAsk): Promise<DirectReply | undefined> {
  if ('init' in m) {
    init = m.init;
    db = await lancedb.connect(init.uri);
    table = await db.openTable(init.table);
    return { ready: true };
  }
  if ('close' in m) {
    table?.close();
    db?.close();
    process.exit(0);
  }
  if (!table || !init) throw new Error('vectors-direct: query before init');
  const x = table.vectorSearch(Float32Array.from(m.query)).column(init.column).distanceType('cosine').limit(init.k).select(['_asof_key', '_asof_offset', '_asof_row', init.column, '_distance']);
  const c = process.cpuUsage();
  const s = performance.now();
  const rows = (await (init.kind === 'hnsw_sq' ? x.ef(init.ef) : x.refineFactor(init.refine)).toArray()) as { _asof_key: string }[];
  const ms = performance.now() - s;
  const cpu = process.cpuUsage(c);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, keys: rows.map((r) => r._asof_key) };
}

process.on('message', (m: DirectAsk) => {
  answer(m).then(
    (r) => r && process.send!(r),
    (e: unknown) => process.send!({ error: e instanceof Error ? e.message : String(e) }),
  );
});
