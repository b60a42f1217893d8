/**
 * Instructions per `GET /features/{entity}` (valgrind callgrind), asof against
 * the bare route of bench/online.ts answering the same bytes, each server a
 * child process under callgrind, instrumented only while the measured load
 * runs (after an uninstrumented warm-up). Counts do not move with the load
 * other processes put on the machine, which wall-clock figures do.
 *
 *   npm run build && node dist/bench/cg-get.js [--entities 20000] [--hot 2000] [--warm 30000] [--requests 5000]
 *     [--connections 4] [--keys 0] [--redis] [--only asof|bare] [--bare-remembered-queries] [--out DIR]
 *
 * `--warm N` requests run uninstrumented first (V8 must have optimized the
 * path, or its compiler's work is counted), then `--requests N` are counted.
 * `--keys N`: N API keys configured (ASOF_API_KEYS), requests send the last.
 * `--out DIR` keeps the callgrind files (callgrind_annotate reads them).
 * `--cpu-prof DIR` runs the servers without callgrind, with V8's sampling
 * profiler, for the JavaScript functions' names callgrind cannot see.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, rawLoad } from './lib.js';
import { FEATURES, loadUsers } from './online-data.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(HERE, '../src/cli/main.js');
const ONLINE = join(HERE, 'online.js');
const arg = (name: string, dflt: number): number => (process.argv.includes(`--${name}`) ? Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) : dflt);
const str = (name: string): string | undefined => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : undefined);
const ENTITIES = arg('entities', 20_000);
const HOT = arg('hot', 2_000);
const KEYS = arg('keys', 0);
const REDIS = process.argv.includes('--redis') ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379') : undefined;
/** --cpu-prof DIR: no callgrind; the servers run with V8's sampling profiler and write their profiles into DIR. */
const CPU_PROF = str('cpu-prof');
/** --node-args '...': extra node flags for the servers (e.g. --trace-deopt); their output goes to this process's stdout. */
const NODE_ARGS: string[] = str('node-args')?.split(' ').filter(Boolean) ?? [];
const PREFIX = `asof-cg-get-${process.pid}:`;

const keyOf = (i: number): string => `bench-key-${i}-${'x'.repeat(24)}`;
const auth: Record<string, string> = KEYS > 0 ? { authorization: `Bearer ${keyOf(KEYS - 1)}` } : {};

const env = (): Record<string, string> => (KEYS > 0 ? { ASOF_API_KEYS: Array.from({ length: KEYS }, (_, i) => keyOf(i)).join(',') } : {});
const asofArgs = (dir: string): string[] => [CLI, 'serve', '--port', '$PORT', '--data-dir', dir, '--grpc-port', '0', ...(REDIS ? ['--redis-url', REDIS, '--redis-prefix', PREFIX] : [])];

interface Server {
  port: number;
  url: string;
  pid: number;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** `node <args>` (`$PORT` replaced by a free port), under callgrind when `valgrindOut` is given; resolves once /readyz answers. */
async function start(args: string[], valgrindOut?: string): Promise<Server> {
  const port = await freePort();
  const full = args.map((a) => (a === '$PORT' ? String(port) : a));
  const [cmd, argv] = valgrindOut ? ['valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${valgrindOut}`, process.execPath, ...full]] : [process.execPath, [...NODE_ARGS, ...full]];
  const proc = spawn(cmd, argv, { env: { ...process.env, ...env() }, stdio: ['ignore', str('node-args') ? 'inherit' : 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${cmd} exited ${proc.exitCode}`);
    if (Date.now() - t0 > 600_000) throw new Error('not ready after 600 s');
    const ok = await fetch(url + '/readyz').then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    port,
    url,
    pid: proc.pid!,
    kill: async (signal = 'SIGKILL') => {
      const done = once(proc, 'exit');
      proc.kill(signal);
      await done;
    },
  };
}


/** Load in rounds of 5 s until `count` answers came. */
async function answers(port: number, requests: Buffer[], count: number): Promise<{ ok: number; failed: number }> {
  const done = { ok: 0, failed: 0 };
  while (done.ok + done.failed < count) {
    const r = await rawLoad({ port, requests, connections: arg('connections', 4), seconds: 5 });
    done.ok += r.ok;
    done.failed += r.failed;
  }
  return done;
}

async function measure(name: string, server: Server, outDir: string, requests: Buffer[]): Promise<number> {
  const port = server.port;
  await answers(port, requests, arg('warm', 30_000));
  if (CPU_PROF) {
    const load = await answers(port, requests, arg('requests', 200_000));
    console.log(`${name}: ${load.ok} answers (${load.failed} failed) under --cpu-prof`);
    return 0;
  }
  const pid = server.pid;
  execFileSync('callgrind_control', ['-i', 'on', String(pid)]);
  const load = await answers(port, requests, arg('requests', 5_000));
  execFileSync('callgrind_control', ['-d', name, String(pid)]);
  execFileSync('callgrind_control', ['-i', 'off', String(pid)]);
  const files = (await readdir(outDir)).filter((f) => f.startsWith(name) && /\.\d+$/.test(f));
  const last = files.sort().at(-1)!;
  const text = await readFile(join(outDir, last), 'utf8');
  const total = Number(/\n(?:summary|totals): (\d+)/.exec(text)![1]);
  const per = total / Math.max(1, load.ok);
  console.log(`${name}: ${load.ok} answers (${load.failed} failed), ${(total / 1e6).toFixed(1)}M instructions, ${Math.round(per).toLocaleString('en-US')} per GET  [${join(outDir, last)}]`);
  return per;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'asof-cg-get-'));
  const outDir = str('out') ?? dir;
  const data = join(dir, 'data');
  // Load at full speed, then serve the same folder under callgrind (recovery rebuilds the view).
  const loader = await start(asofArgs(data));
  await loadUsers(loader.url, ENTITIES, 5000, auth);
  const one = await (await fetch(`${loader.url}/features/7?features=${FEATURES}`, { headers: auth })).text();
  await loader.kill('SIGTERM');
  const bodies = join(dir, 'bodies.json');
  await writeFile(bodies, JSON.stringify({ one, batch: '{}' }));
  const head = KEYS > 0 ? `authorization: ${auth.authorization}\r\n` : '';
  const requests = Array.from({ length: HOT }, (_, i) => Buffer.from(`GET /features/${(i * 7919) % ENTITIES}?features=${FEATURES} HTTP/1.1\r\nhost: 127.0.0.1\r\n${head}\r\n`, 'latin1'));
  const only = str('only');
  const figures: Record<string, number> = {};
  try {
    if (only !== 'bare') {
      if (CPU_PROF) NODE_ARGS.push('--cpu-prof', '--cpu-prof-dir', join(CPU_PROF, 'asof'));
      const asof = await start(asofArgs(data), CPU_PROF ? undefined : join(outDir, 'asof.%p'));
      try {
        figures.asof = await measure('asof', asof, outDir, requests);
      } finally {
        await asof.kill(CPU_PROF ? 'SIGTERM' : 'SIGKILL');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (only !== 'asof') {
      if (CPU_PROF) NODE_ARGS.splice(0, NODE_ARGS.length, '--import', 'data:text/javascript,process.on("SIGTERM",()=>process.exit(0))', '--cpu-prof', '--cpu-prof-dir', join(CPU_PROF, 'bare'));
      const bare = await start([ONLINE, 'bare', '$PORT', bodies, ...(process.argv.includes('--bare-remembered-queries') ? ['--remembered-queries'] : [])], CPU_PROF ? undefined : join(outDir, 'bare.%p'));
      try {
        figures.bare = await measure('bare', bare, outDir, requests);
      } finally {
        await bare.kill(CPU_PROF ? 'SIGTERM' : 'SIGKILL');
      }
    }
    if (figures.asof && figures.bare) console.log(`ratio bare/asof instructions per GET: ${(figures.bare / figures.asof).toFixed(3)}`);
  } finally {
    if (!str('out')) await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
