/**
 * Shared pieces of the benchmarks: free ports, child servers, and a small
 * keep-alive HTTP load driver. Servers run in child processes so that the load
 * driver (this process) never shares an event loop with the server it measures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';

/** A port nothing listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

export interface Child {
  proc: ChildProcess;
  url: string;
  /** The last 20 kB the child wrote to stderr (kept for error messages). */
  stderr: () => string;
  /** The last 1 MB the child wrote to stdout (pino's JSON lines). */
  stdout: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Spawns `node <args>`; resolves once GET <url><readyPath> answers 200. */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv, port: number, readyPath = '/readyz', timeoutMs = 30_000): Promise<Child & { readyMs: number }> {
  const started = performance.now();
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-1_000_000)));
  const url = `http://127.0.0.1:${port}`;
  const child: Child = {
    proc,
    url,
    stderr: () => err,
    stdout: () => out,
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill(signal);
      await exited;
    },
  };
  const readyMs = await waitReady(url + readyPath, proc, started, timeoutMs).catch(async (e) => {
    await child.kill();
    throw new Error(`${(e as Error).message}\n${err}`);
  });
  return { ...child, readyMs };
}

/** Polls until 200; returns ms since `started`. Polls every 2 ms so the figure is not rounded up much. */
async function waitReady(url: string, proc: ChildProcess, started: number, timeoutMs: number): Promise<number> {
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`server exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
    if (performance.now() - started > timeoutMs) throw new Error(`server not ready after ${timeoutMs} ms`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(url, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 2));
  }
}

export interface LoadResult {
  /** CPU time the server process used during the measured run (user + system, all threads), ms; NaN without a pid. */
  serverCpuMs: number;
  requests: number;
  rows: number;
  errors: number;
  seconds: number;
  rowsPerSec: number;
  /** Request latencies, ms. */
  p50: number;
  p99: number;
}

/**
 * Sends `bodies` round-robin from `connections` concurrent keep-alive loops for
 * `seconds`; each 200 answer counts `rowsPerBody` rows. Bodies are prepared
 * beforehand so the driver spends its time on the socket, not on JSON.
 */
export async function drive(opts: { url: string; bodies: Buffer[]; contentType: string; rowsPerBody: number; connections: number; seconds: number; warmupSeconds?: number; serverPid?: number }): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const target = new URL(opts.url);
  const post = (body: Buffer): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { agent, host: target.hostname, port: target.port, path: target.pathname + target.search, method: 'POST', headers: { 'content-type': opts.contentType, 'content-length': body.length } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const run = async (seconds: number, record: boolean): Promise<LoadResult> => {
    const cpu0 = opts.serverPid ? cpuMs(opts.serverPid) : NaN;
    let requests = 0;
    let errors = 0;
    let next = 0;
    const lat: number[] = [];
    const start = performance.now();
    const end = start + seconds * 1000;
    await Promise.all(
      Array.from({ length: opts.connections }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          const status = await post(opts.bodies[next++ % opts.bodies.length]);
          if (status === 200) requests++;
          else errors++;
          if (record) lat.push(performance.now() - t);
        }
      }),
    );
    const secs = (performance.now() - start) / 1000;
    lat.sort((a, b) => a - b);
    const q = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
    return { serverCpuMs: opts.serverPid ? cpuMs(opts.serverPid) - cpu0 : NaN, requests, rows: requests * opts.rowsPerBody, errors, seconds: secs, rowsPerSec: (requests * opts.rowsPerBody) / secs, p50: q(0.5), p99: q(0.99) };
  };
  if (opts.warmupSeconds) await run(opts.warmupSeconds, false);
  const r = await run(opts.seconds, true);
  agent.destroy();
  return r;
}

/**
 * CPU time a process has used so far (user + system, all its threads), ms, from
 * /proc (Linux; clock ticks assumed 100/s). A shared machine makes wall-clock
 * rates noisy; CPU per row is what a server costs whatever else runs.
 */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The machine, for the results file. */
export function machine(): string {
  return `${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`;
}

export const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** A request prepared as the bytes that go on the wire. */
export function rawRequest(method: string, path: string, body?: string): Buffer {
  const head = `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n` + (body === undefined ? '\r\n' : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`);
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body ?? '', 'utf8')]);
}

export interface RawLoad {
  /** Answers with a 2xx status. */
  ok: number;
  /** Answers with another status, and connection errors. */
  failed: number;
  seconds: number;
  /** Latency of each answer, ms, from when its request was written. */
  latencies: number[];
}

/**
 * A lean HTTP/1.1 load driver on raw keep-alive sockets, for servers that
 * answer in microseconds: requests are prepared bytes, handed out round-robin
 * across all connections (every connection takes the next one, so the traffic
 * walks the whole list), and answers are parsed only as far as their
 * status and Content-Length. It costs the driver a fraction of what a general
 * client does, so on a small machine the server, not the driver, sets the rate.
 *
 * Closed loop without `rate`: each connection sends its next request when the
 * previous answer is complete. With `rate` (requests/s over all connections):
 * requests are released at that rate and go out on the next free connection.
 * Latency counts from when a request is written, as autocannon counts it.
 */
export async function rawLoad(opts: { port: number; requests: Buffer[]; connections: number; seconds: number; rate?: number; recordLatency?: boolean }): Promise<RawLoad> {
  const { Socket } = await import('node:net');
  let next = 0;
  const take = (): Buffer => opts.requests[next++ % opts.requests.length];
  const latencies: number[] = [];
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const end = start + opts.seconds * 1000;
  let stopping = false;
  /** Requests released (rate mode) and waiting for a free connection. */
  let backlog = 0;
  const idle: Conn[] = [];

  interface Conn {
    socket: InstanceType<typeof Socket>;
    sentAt: number;
    /** Bytes of an answer's head read so far. */
    buf: Buffer | null;
    /** Body bytes still to come; -1 while reading the head. */
    need: number;
    status: number;
    send(): void;
  }

  const conns = await Promise.all(
    Array.from({ length: opts.connections }, async (): Promise<Conn> => {
      const socket = new Socket();
      socket.setNoDelay(true);
      await new Promise<void>((resolve, reject) => socket.connect(opts.port, '127.0.0.1', resolve).once('error', reject));
      const c: Conn = {
        socket,
        sentAt: 0,
        buf: null,
        need: -1,
        status: 0,
        send() {
          c.sentAt = performance.now();
          socket.write(take());
        },
      };
      socket.on('data', (chunk: Buffer) => {
        let at = 0;
        for (;;) {
          if (c.need < 0) {
            if (at >= chunk.length) return;
            // Reading the head: keep bytes until its end; bodies are counted, never kept.
            const buf: Buffer = c.buf ? Buffer.concat([c.buf, chunk.subarray(at)]) : chunk.subarray(at);
            const headEnd = buf.indexOf('\r\n\r\n');
            if (headEnd < 0) {
              c.buf = buf;
              return;
            }
            const head = buf.toString('latin1', 0, headEnd);
            c.status = Number(head.slice(9, 12));
            const m = /\r\ncontent-length: *(\d+)/i.exec(head);
            if (!m) throw new Error(`answer without content-length: ${head.slice(0, 200)}`);
            c.need = Number(m[1]);
            c.buf = null;
            chunk = buf;
            at = headEnd + 4;
          }
          const take = Math.min(c.need, chunk.length - at);
          c.need -= take;
          at += take;
          if (c.need > 0) return;
          c.need = -1;
          const now = performance.now();
          if (c.status >= 200 && c.status < 300) ok++;
          else failed++;
          if (opts.recordLatency) latencies.push(now - c.sentAt);
          if (stopping || now >= end) stopping = true;
          else if (opts.rate === undefined || backlog > 0) {
            if (opts.rate !== undefined) backlog--;
            c.send();
          } else idle.push(c);
        }
      });
      socket.on('error', () => failed++);
      return c;
    }),
  );

  if (opts.rate === undefined) {
    for (const c of conns) c.send();
  } else {
    idle.push(...conns);
    const interval = 1000 / opts.rate;
    let due = start;
    const timer = setInterval(() => {
      const now = performance.now();
      for (; due <= now && due < end; due += interval) {
        const c = idle.pop();
        if (c) c.send();
        else backlog++;
      }
    }, 1);
    await new Promise((r) => setTimeout(r, opts.seconds * 1000));
    clearInterval(timer);
  }
  while (performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  stopping = true;
  // Let answers in flight arrive, then close.
  await new Promise((r) => setTimeout(r, 50));
  for (const c of conns) c.socket.destroy();
  return { ok, failed, seconds: (performance.now() - start) / 1000, latencies };
}
