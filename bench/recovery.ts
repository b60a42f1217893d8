/**
 * Recovery benchmark (DESIGN.md "Performance"): time from process start to
 * GET /readyz answering 200, after a table reached 1M changelog records and
 * its writer was killed with SIGKILL (no clean close, so no final snapshot).
 *
 *   npm run bench:recovery [-- --records 1000000 --restarts 3 --worst-case]
 *
 * Each case is built by a child process that writes through the engine (real
 * fsync, group commit) and then kills itself with SIGKILL. Then asof is started
 * on that folder `--restarts` times (each start is itself SIGKILLed once ready,
 * so every start sees the same unclean state), then once more without the
 * snapshot (a full replay: the bound if snapshots were lost). Reference: the
 * same start on an empty folder, i.e. what Node, the modules and Fastify cost
 * before any table.
 */
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UNRESTRICTED } from '../src/access.js';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/logger.js';
import { readyChild } from '../support/child-server.js';
import { fmt, machine } from './lib.js';

interface Case {
  name: string;
  describe: string;
  /** Only with --worst-case (slow to build). */
  worstCase?: boolean;
  /** Writes `records` changelog records into `engine`. */
  build(engine: Engine, records: number): Promise<void>;
}

const ACCOUNTS = {
  kind: 'pk' as const,
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'balance', type: 'float64', nullable: false },
    { name: 'country', type: 'string', nullable: true },
    { name: 'tier', type: 'int32', nullable: true },
    { name: 'updated', type: 'timestamp', nullable: true },
  ],
};
const EVENTS = {
  kind: 'log' as const,
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'kind', type: 'string', nullable: true },
    { name: 'amount', type: 'float64', nullable: true },
  ],
};
const COUNTRIES = ['PT', 'DE', 'FR', 'US', 'BR', 'JP'];
const KEYS = 100_000;

/** Runs `concurrency` loops of `write(i)` until `done()`; concurrent writes share frames (group commit). */
async function loops(concurrency: number, done: () => boolean, write: () => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (!done()) await write();
  }));
}

function accountRows(from: number, n: number, round: number) {
  return Array.from({ length: n }, (_, i) => ({ id: (from + i) % KEYS, balance: (round * 7 + i) % 10_000, country: COUNTRIES[(from + i) % 6], tier: round % 5, updated: 1767225600000 + round * 1000 + i }));
}

const CASES: Case[] = [
  {
    name: 'pk-batched',
    describe: `pk table, ${fmt(KEYS)} keys inserted then updated (an update writes -U and +U), 1,000-row writes, 4 concurrent`,
    async build(engine, records) {
      await engine.defineTable('accounts', ACCOUNTS);
      const t = engine.table('accounts');
      let next = 0;
      await loops(4, () => t.endOffset >= records, async () => {
        const from = next;
        next += 1000;
        await t.write(t.schema.validate(accountRows(from, 1000, Math.floor(from / KEYS))).rows, 'upsert');
      });
    },
  },
  {
    name: 'pk-small-writes',
    describe: `pk table, ${fmt(KEYS)} keys, 1-row upserts from 64 concurrent writers (frames as group commit makes them)`,
    async build(engine, records) {
      await engine.defineTable('accounts', ACCOUNTS);
      const t = engine.table('accounts');
      let next = 0;
      await loops(64, () => t.endOffset >= records, async () => {
        const i = next++;
        await t.write(t.schema.validate(accountRows(i, 1, Math.floor(i / KEYS))).rows, 'upsert');
      });
    },
  },
  {
    name: 'log-batched',
    describe: `log table keyed by user (${fmt(KEYS)} users), 1,000-row appends, 4 concurrent`,
    async build(engine, records) {
      await engine.defineTable('events', EVENTS);
      const t = engine.table('events');
      let next = 0;
      await loops(4, () => t.endOffset >= records, async () => {
        const from = next;
        next += 1000;
        const rows = Array.from({ length: 1000 }, (_, i) => ({ user: (from + i) % KEYS, ts: 1767225600000 + from + i, kind: 'click', amount: i / 4 }));
        await t.write(t.schema.validate(rows).rows, 'upsert');
      });
    },
  },
  {
    name: 'log-one-record-frames',
    describe: `log table keyed by user, one record per commit (a frame per record: the worst case for replay); built with fdatasync skipped to save time (a SIGKILL keeps the page cache, so the files are the same)`,
    worstCase: true,
    async build(engine, records) {
      await engine.defineTable('events', EVENTS);
      const t = engine.table('events');
      const probe = await open(join(tmpdir(), `asof-probe-${process.pid}`), 'w');
      (Object.getPrototypeOf(probe) as { datasync: () => Promise<void> }).datasync = async () => undefined;
      await probe.close();
      for (let i = 0; i < records; i++) await t.write(t.schema.validate([{ user: i % KEYS, ts: 1767225600000 + i, kind: 'click', amount: i / 4 }]).rows, 'upsert');
    },
  },
];

/** The builder child: writes, then dies the hard way. */
async function build(caseName: string, dir: string, records: number): Promise<void> {
  const c = CASES.find((x) => x.name === caseName)!;
  const engine = await Engine.open({ dataDir: dir, logger: silentLogger });
  const started = performance.now();
  await c.build(engine, records);
  const table = engine.list(UNRESTRICTED)[0];
  process.stdout.write(JSON.stringify({ built: table.name, records: table.latestOffset + 1, seconds: (performance.now() - started) / 1000 }) + '\n');
  process.kill(process.pid, 'SIGKILL');
}

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function filesOf(dir: string): Promise<string> {
  const tdir = join(dir, 'tables');
  const parts: string[] = [];
  for (const t of await readdir(tdir)) {
    for (const f of await readdir(join(tdir, t))) parts.push(`${f} ${((await stat(join(tdir, t, f))).size / 2 ** 20).toFixed(1)} MiB`);
  }
  return parts.join(', ');
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

async function startOnce(dir: string): Promise<{ ms: number; recovered: Record<string, unknown>[]; rss: number }> {
  const s = await readyChild(dir, { LOG_LEVEL: 'info' }, { timeoutMs: 60_000, pollMs: 2 });
  const rss = rssMiB(s.proc.pid!);
  await s.kill('SIGKILL');
  const recovered = s
    .stdout()
    .split('\n')
    .filter((l) => l.includes('"table recovered"') || l.includes('tail cut') || l.includes('snapshot unusable'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { ms: s.readyMs, recovered, rss };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'build') return build(process.argv[3], process.argv[4], Number(process.argv[5]));
  const records = flag('records', 1_000_000);
  const restarts = flag('restarts', 3);
  const self = fileURLToPath(import.meta.url);
  console.log(`recovery benchmark: ${fmt(records)} changelog records, writer killed with SIGKILL, ${restarts} starts each`);
  console.log(`machine: ${machine()}`);

  const empty = await mkdtemp(join(tmpdir(), 'asof-bench-recovery-'));
  const base: number[] = [];
  for (let i = 0; i < restarts; i++) base.push((await startOnce(empty)).ms);
  await rm(empty, { recursive: true, force: true });
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(`reference, empty data folder: ready in ${median(base).toFixed(0)} ms (median; ${base.map((x) => x.toFixed(0)).join(', ')})`);
  const summary: Record<string, unknown>[] = [];
  for (const c of CASES.filter((x) => !x.worstCase || process.argv.includes('--worst-case'))) {
    const dir = await mkdtemp(join(tmpdir(), `asof-bench-recovery-${c.name}-`));
    try {
      const builder = spawn(process.execPath, [self, 'build', c.name, dir, String(records)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      builder.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const [code, signal] = (await once(builder, 'exit')) as [number | null, string | null];
      if (signal !== 'SIGKILL') throw new Error(`builder for ${c.name} ended with ${code ?? signal}: ${out}`);
      const built = JSON.parse(out.trim().split('\n').pop()!) as { records: number; seconds: number };
      console.log('');
      console.log(`${c.name}: ${c.describe}`);
      console.log(`  built ${fmt(built.records)} records in ${built.seconds.toFixed(1)} s, then SIGKILL; on disk: ${await filesOf(dir)}`);
      const runs = [];
      for (let i = 0; i < restarts; i++) runs.push(await startOnce(dir));
      const ms = runs.map((r) => r.ms);
      const rec = runs[runs.length - 1].recovered.find((l) => l.msg === 'table recovered') ?? {};
      console.log(`  ready in ${median(ms).toFixed(0)} ms (median; ${ms.map((x) => x.toFixed(0)).join(', ')}), ${(median(ms) / 3000).toFixed(2)} of the 3 s target; RSS after start ${runs[0].rss.toFixed(0)} MiB`);
      console.log(`  table recovery inside that: ${rec.ms} ms (${fmt(Number(rec.frames))} frames; snapshot at offset ${fmt(Number(rec.fromSnapshot))}, replayed ${fmt(Number(rec.replayed))} records after it)`);
      for (const l of runs[0].recovered.filter((x) => x.msg !== 'table recovered')) console.log(`  note: ${String(l.msg)}`);
      // The bound if the snapshot were lost too: replay of the whole changelog.
      for (const t of await readdir(join(dir, 'tables'))) await rm(join(dir, 'tables', t, 'state.snapshot'), { force: true });
      const full = await startOnce(dir);
      const fullRec = full.recovered.find((l) => l.msg === 'table recovered') ?? {};
      console.log(`  without its snapshot (full replay of ${fmt(Number(fullRec.replayed))} records): ready in ${full.ms.toFixed(0)} ms, table recovery ${fullRec.ms} ms; RSS ${full.rss.toFixed(0)} MiB`);
      summary.push({ case: c.name, records: built.records, readyMs: median(ms), runs: ms, recoveryMs: rec.ms, frames: rec.frames, fromSnapshot: rec.fromSnapshot, replayed: rec.replayed, rssMiB: runs[0].rss, fullReplayReadyMs: full.ms, fullReplayRecoveryMs: fullRec.ms });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  console.log('');
  console.log(JSON.stringify({ bench: 'recovery', machine: machine(), baselineMs: median(base), cases: summary }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
