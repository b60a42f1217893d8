/**
 * Load and its measures for the online benchmark (online.ts): full load with
 * the raw-socket driver, latency at a set rate with autocannon, the server's
 * CPU per request (and, for a server on Redis, the Redis server's own), and
 * two servers measured in alternation.
 */
import autocannon from 'autocannon';
import type { ChildServer } from '../support/child-server.js';
import { cpuMs, rawLoad } from './lib.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** The server's CPU time per request, µs: what a request costs it, whatever else runs on the machine. */
  cpuUs: number;
  /** Share of one core the server used: below ~90% the load generator, not the server, set the rate. */
  busy: number;
  /** For an asof server on Redis: the Redis server's own CPU time per request, µs (from INFO cpu; it runs on the same cores). */
  redisCpuUs?: number;
}

/** asof servers whose lookups go to Redis. */
export const onRedis = new WeakSet<ChildServer>();
let infoClient: import('ioredis').Redis | undefined;

/** Closes the connection that reads the Redis server's CPU time, if one was opened. */
export function closeRedisInfo(): void {
  infoClient?.disconnect();
  infoClient = undefined;
}

/** The Redis server's CPU time (user + system) so far, ms, as it reports it. */
async function redisCpuMs(): Promise<number> {
  if (!infoClient) infoClient = new (await import('ioredis')).Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const info = await infoClient.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)![1]);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1000;
}

/**
 * Latency at a set rate, with autocannon: its per-connection pacing spreads
 * requests evenly, where a timer-driven release from one event loop sends
 * them in bursts and measures its own queueing. Requests: the hot GETs, as
 * a list each connection walks from its start.
 */
export async function paced(server: ChildServer, paths: string[], opts: { seconds: number; connections: number; rate: number }): Promise<Load> {
  const cpu0 = cpuMs(server.proc.pid!);
  const t0 = performance.now();
  const latencies: number[] = [];
  const inst = autocannon({ url: server.url, connections: opts.connections, duration: opts.seconds, pipelining: 1, overallRate: Math.round(opts.rate), requests: paths.map((path) => ({ method: 'GET', path })) });
  inst.on('response', (_c: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  const res = await inst;
  const cpu = cpuMs(server.proc.pid!) - cpu0;
  const wall = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? NaN;
  return { rps: res.requests.total / res.duration, p50: pct(50), p99: pct(99), errors: res.errors + res.non2xx + res.timeouts, cpuUs: (cpu * 1000) / Math.max(1, res.requests.total), busy: cpu / wall };
}

/**
 * Where each server's next run over a request list starts: where its last one stopped. Each run starting from
 * the list's head sent the head's entities twice within the lookup cache's doorkeeper memory (the end of one run,
 * the start of the next), so they were admitted and hit in every later pass: 9-20% of "cold" lookups by the third
 * round (2026-12-06).
 */
const cursors = new WeakMap<ChildServer, Map<Buffer[], number>>();

/** Drives load with the lean raw-socket driver; latency percentiles (ms, fractional) from every answer. */
export async function drive(server: ChildServer, requests: Buffer[], opts: { seconds: number; connections: number; rate?: number }): Promise<Load> {
  const cpu0 = cpuMs(server.proc.pid!);
  const redis0 = onRedis.has(server) ? await redisCpuMs() : NaN;
  const t0 = performance.now();
  if (!cursors.has(server)) cursors.set(server, new Map());
  const from = cursors.get(server)!.get(requests) ?? 0;
  const res = await rawLoad({ port: Number(new URL(server.url).port), requests, connections: opts.connections, seconds: opts.seconds, rate: opts.rate, recordLatency: true, from });
  cursors.get(server)!.set(requests, (from + res.sent) % requests.length);
  const cpu = cpuMs(server.proc.pid!) - cpu0;
  const wall = performance.now() - t0;
  const lat = res.latencies.sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] ?? NaN;
  const redisCpuUs = onRedis.has(server) ? (((await redisCpuMs()) - redis0) * 1000) / Math.max(1, res.ok + res.failed) : undefined;
  return { rps: res.ok / res.seconds, p50: pct(50), p99: pct(99), errors: res.failed, cpuUs: (cpu * 1000) / Math.max(1, res.ok + res.failed), busy: cpu / wall, redisCpuUs };
}

/** Two servers measured in alternation: the median round of each, and the ratios of each adjacent pair of rounds. */
export interface Paired {
  a: Load;
  b: Load;
  /** Median over the pairs of a's req/s / b's. */
  ratio: number;
  /** Median over the pairs of b's CPU per request / a's. */
  cpuRatio: number;
  /** Each pair's req/s ratio, in the order run. */
  ratios: number[];
}

/**
 * Runs a and b in alternation `rounds` times. The ratio is the median of the
 * pairs' ratios: each pair ran within seconds, so load from other tenants
 * of a shared machine, which drifts over minutes, weighs on both sides of a
 * pair alike; a ratio of two separately chosen medians can pair a quiet
 * minute of one side with a busy minute of the other.
 */
export async function alternate(rounds: number, a: () => Promise<Load>, b: () => Promise<Load>): Promise<Paired> {
  const as: Load[] = [];
  const bs: Load[] = [];
  for (let r = 0; r < rounds; r++) {
    as.push(await a());
    bs.push(await b());
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const ratios = as.map((x, i) => x.rps / bs[i].rps);
  const cpuRatio = median(as.map((x, i) => bs[i].cpuUs / x.cpuUs));
  const med = (xs: Load[]) => [...xs].sort((x, y) => x.rps - y.rps)[Math.floor(xs.length / 2)];
  return { a: med(as), b: med(bs), ratio: median(ratios), cpuRatio, ratios };
}

