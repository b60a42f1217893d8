/**
 * Shared pieces of the benchmarks: load drivers (a keep-alive HTTP driver for
 * bodies, a raw-socket one for tiny requests) and the server's CPU time.
 * Servers run in child processes (support/child-server.ts, the helper the
 * tests use too) so that the load driver (this process) never shares an event
 * loop with the server it measures.
 */
import http from 'node:http';
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';

export { freePort } from '../support/child-server.js';

export interface LoadResult {
  /** CPU time the server process used during the measured run (user + system, all threads), ms; NaN without a pid. */
  serverCpuMs: number;
  /** The part of it its main thread (the event loop) used, ms. */
  serverMainCpuMs: number;
  /** CPU time this process (the load driver) used meanwhile, ms: on a small machine it shares the cores with the server. */
  driverCpuMs: number;
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
    const main0 = opts.serverPid ? cpuMs(opts.serverPid, true) : NaN;
    const driver0 = process.cpuUsage();
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
    const serverMainCpuMs = opts.serverPid ? cpuMs(opts.serverPid, true) - main0 : NaN;
    const driver = process.cpuUsage(driver0);
    return { serverCpuMs: opts.serverPid ? cpuMs(opts.serverPid) - cpu0 : NaN, serverMainCpuMs, driverCpuMs: (driver.user + driver.system) / 1000, requests, rows: requests * opts.rowsPerBody, errors, seconds: secs, rowsPerSec: (requests * opts.rowsPerBody) / secs, p50: q(0.5), p99: q(0.99) };
  };
  if (opts.warmupSeconds) await run(opts.warmupSeconds, false);
  const r = await run(opts.seconds, true);
  agent.destroy();
  return r;
}

/**
 * CPU time a process has used so far (user + system, all its threads; with
 * `mainThread`, its main thread's alone), ms, from /proc (Linux; clock ticks
 * assumed 100/s). A shared machine makes wall-clock rates noisy; CPU per row
 * is what a server costs whatever else runs.
 */
export function cpuMs(pid: number, mainThread = false): number {
  const fields = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
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
  /** Requests written (answered or not): a next run given `from` + `sent` goes on where this one stopped. */
  sent: number;
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
export async function rawLoad(opts: { port: number; requests: Buffer[]; connections: number; seconds: number; rate?: number; recordLatency?: boolean; from?: number }): Promise<RawLoad> {
  const { Socket } = await import('node:net');
  const from = opts.from ?? 0;
  let next = 0;
  const take = (): Buffer => opts.requests[(from + next++) % opts.requests.length];
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
  return { ok, failed, seconds: (performance.now() - start) / 1000, latencies, sent: next };
}
