/**
 * The one way the tests and the benches start a server in a child process:
 * `spawnChild` for any `node <args>` server that answers a readiness path
 * (the benches' bare reference servers) or prints a line when it is ready
 * (`readyLine`: bench:grpc's children, which pick their own ports),
 * `startChild` / `readyChild` for `asof serve` itself. Every child started here is remembered, so `killAll`
 * (a test's `after` hook) leaves no process behind, whatever happened.
 *
 * How asof is run depends on how this module was loaded: from its TypeScript
 * source (the tests, through tsx) it runs `node --import tsx src/cli/main.ts`;
 * compiled (the benches, from dist/) it runs the compiled `dist/src/cli/main.js`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const FROM_SOURCE = import.meta.url.endsWith('.ts');
/** The repository's root (the working directory of every child). */
export const ROOT = fileURLToPath(new URL(FROM_SOURCE ? '..' : '../..', import.meta.url));
/** `node` arguments that run asof's CLI (append its command and arguments). */
export const ASOF_CLI: readonly string[] = FROM_SOURCE ? ['--import', 'tsx', fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))] : [fileURLToPath(new URL('../src/cli/main.js', import.meta.url))];

/** Output kept per stream: the last 8 MiB (pino's JSON lines at `info` during a start-up fit many times). */
const KEEP = 8 << 20;
const live = new Set<ChildProcess>();

/** A port nothing listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

export interface ChildServer {
  url: string;
  port: number;
  /** The gRPC port given to asof (0 for other servers). */
  grpcPort: number;
  proc: ChildProcess;
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  /** stdout alone (pino's JSON lines). */
  stdout(): string;
  /** Sends SIGKILL (or `signal`) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Graceful stop: SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
  /**
   * Resolves once GET <url><path> (default /readyz) answers 200, with the ms
   * since the spawn; rejects, naming the output, if the process exits first or
   * `timeoutMs` passes (default 90 s: starting through tsx takes 25 s on the
   * shared, loaded test machine). `pollMs` (default 20): benches that report
   * start-up time poll every 2 ms.
   */
  ready(opts?: { timeoutMs?: number; path?: string; pollMs?: number }): Promise<number>;
  /**
   * Resolves with the first match of `pattern` in stdout, once it is there;
   * rejects, naming the output, if the process exits first or `timeoutMs`
   * passes (default 90 s).
   */
  readyLine(pattern: RegExp, opts?: { timeoutMs?: number }): Promise<RegExpExecArray>;
}

/**
 * Spawns `node <args>` serving HTTP on `port` (it must listen there; 0 for a
 * server that says where it listens, see `readyLine`); call `ready()` or
 * `readyLine()` to wait for it. `env` adds to this process's environment.
 */
export function spawnChild(args: string[], opts: { port?: number; grpcPort?: number; env?: Record<string, string> }): ChildServer {
  const started = performance.now();
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let all = '';
  let out = '';
  /** Called on each chunk of stdout (readyLine's waiters). */
  const watchers = new Set<() => void>();
  proc.stdout!.on('data', (d: Buffer) => {
    all = keep(all, d);
    out = keep(out, d);
    for (const w of watchers) w();
  });
  proc.stderr!.on('data', (d: Buffer) => (all = keep(all, d)));
  const port = opts.port ?? 0;
  const url = `http://127.0.0.1:${port}`;
  const exited = (): boolean => proc.exitCode !== null || proc.signalCode !== null;
  const failure = (why: string): Error => new Error(`${args.join(' ')} ${why}:\n${all}`);
  const child: ChildServer = {
    url,
    port,
    grpcPort: opts.grpcPort ?? 0,
    proc,
    output: () => all,
    stdout: () => out,
    async kill(signal = 'SIGKILL') {
      if (exited()) return;
      const done = once(proc, 'exit');
      proc.kill(signal);
      await done;
    },
    stop() {
      return child.kill('SIGTERM');
    },
    async ready({ timeoutMs = 90_000, path = '/readyz', pollMs = 20 } = {}) {
      for (;;) {
        if (exited()) throw failure(`exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
        if (performance.now() - started > timeoutMs) throw failure(`not ready after ${timeoutMs} ms`);
        if ((await status(url + path)) === 200) return performance.now() - started;
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },
    readyLine(pattern, { timeoutMs = 90_000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = pattern.exec(out);
          if (m) done(() => resolve(m));
          else if (exited()) done(() => reject(failure(`exited (${proc.exitCode ?? proc.signalCode}) before it was ready`)));
        };
        const timer = setTimeout(() => done(() => reject(failure(`not ready after ${timeoutMs} ms`))), timeoutMs);
        const done = (settle: () => void): void => {
          clearTimeout(timer);
          watchers.delete(check);
          proc.off('exit', check);
          settle();
        };
        watchers.add(check);
        proc.on('exit', check);
        check();
      });
    },
  };
  return child;
}

const keep = (s: string, d: Buffer): string => (s.length > KEEP ? s.slice(-KEEP / 2) : s) + d.toString();

/** The status of GET `url` on a fresh connection; 0 when nothing answers. */
function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
}

/** Starts `asof serve` on `dataDir` with free REST and gRPC ports, LOG_LEVEL=warn; `env` adds to (and overrides) the configuration. Call `ready()` to wait for it. */
export async function startChild(dataDir: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<ChildServer> {
  const port = await freePort();
  const grpcPort = await freePort();
  return spawnChild([...nodeArgs, ...ASOF_CLI, 'serve'], { port, grpcPort, env: { PORT: String(port), GRPC_PORT: String(grpcPort), ASOF_DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...env } });
}

/**
 * `startChild`, then waits until it is ready (killing it if it never is); `readyMs` is the ms from spawn to ready.
 * A port found free can be taken before the child binds it (another test's outgoing connection gets it as its
 * local port): a child that exits with EADDRINUSE is started again on new ports, up to three times in all.
 */
export async function readyChild(dataDir: string, env: Record<string, string> = {}, opts: { timeoutMs?: number; pollMs?: number; nodeArgs?: string[] } = {}): Promise<ChildServer & { readyMs: number }> {
  for (let attempt = 1; ; attempt++) {
    const child = await startChild(dataDir, env, opts.nodeArgs);
    try {
      return Object.assign(child, { readyMs: await waitReady(child, opts) });
    } catch (e) {
      if (attempt === 3 || !child.output().includes('EADDRINUSE')) throw e;
    }
  }
}

/** `child.ready(opts)`; kills the child when it fails. */
export async function waitReady(child: ChildServer, opts: { timeoutMs?: number; pollMs?: number; path?: string } = {}): Promise<number> {
  try {
    return await child.ready(opts);
  } catch (e) {
    await child.kill();
    throw e;
  }
}

/** Kills every child still running (use in `after`). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...live].map(async (p) => {
      const done = once(p, 'exit');
      p.kill('SIGKILL');
      await done;
    }),
  );
}
