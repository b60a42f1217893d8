/**
 * asof as a real child process (`node --import tsx src/cli/main.ts serve`),
 * for every test that needs a real server process (crash, replicas, the CLI,
 * training-set jobs, the data-folder lock), and `runCli` for the CLI's other
 * commands. Every child started here is remembered so `killAll` (in an
 * `after` hook) leaves no process behind, whatever the test did.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const live = new Set<ChildProcess>();

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
  grpcPort: number;
  proc: ChildProcess;
  /** stdout (pino JSON lines) and stderr so far. */
  output(): string;
  /** Sends SIGKILL (or `signal`) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Graceful stop: SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
  /** Resolves once GET /readyz answers 200; rejects if the process exits first or `timeoutMs` passes (generous: starting through tsx takes 25 s on the shared, loaded test machine). */
  ready(timeoutMs?: number): Promise<void>;
}

/** Starts `asof serve` on `dataDir` with free REST and gRPC ports; `env` adds to (and overrides) the configuration. Call `ready()` to wait for it. */
export async function startChild(dataDir: string, env: Record<string, string> = {}): Promise<ChildServer> {
  const port = await freePort();
  const grpcPort = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), GRPC_PORT: String(grpcPort), ASOF_DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  const child: ChildServer = {
    url,
    grpcPort,
    proc,
    output: () => out,
    async kill(signal = 'SIGKILL') {
      if (exited()) return;
      const done = once(proc, 'exit');
      proc.kill(signal);
      await done;
    },
    stop() {
      return child.kill('SIGTERM');
    },
    async ready(timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (exited()) throw new Error(`asof exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${out}`);
        if (Date.now() > deadline) throw new Error(`asof not ready after ${timeoutMs} ms:\n${out}`);
        const ok = await fetch(`${url}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  return child;
}

/** Starts a server on `dataDir` and waits until it is ready. */
export async function readyChild(dataDir: string, env: Record<string, string> = {}): Promise<ChildServer> {
  const child = await startChild(dataDir, env);
  try {
    await child.ready();
  } catch (e) {
    await child.kill();
    throw e;
  }
  return child;
}

/** A JSON request to a real server over HTTP; the body parsed (undefined when empty). */
export async function fetchJson(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(base + path, { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

export interface CliResult {
  /** The exit code (0 on success). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `asof <args>` (the CLI, through tsx) to its end; never rejects on a non-zero exit. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'silent', ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
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
