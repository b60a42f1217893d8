import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import { ConfigSchema, type Config } from '../src/config.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { startAsof, type Asof } from '../src/app.js';
import type { Table } from '../src/engine/table.js';

export async function tempDir(prefix = 'asof-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

let gc: (() => void) | undefined;

/** The process's heapUsed after full collections: what is still reachable (gc exposed on first use). */
export function heapAfterGc(): number {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Counts the records `t.scan` yields from now on, and whether a scan was ended (its generator closed):
 * for tests that a follow stops reading for a client that went away. `restore` puts the table's scan back.
 */
export function countScans(t: Table): { read: () => number; ended: () => boolean; restore: () => void } {
  const scan = t.scan;
  let read = 0;
  let ended = false;
  t.scan = async function* (opts) {
    try {
      for await (const r of scan.call(t, opts)) {
        read++;
        yield r;
      }
    } finally {
      ended = true;
    }
  };
  return { read: () => read, ended: () => ended, restore: () => void (t.scan = scan) };
}

/**
 * Waiting for records a stream delivers into `records`: the stream calls `arrived` after each push and
 * `failed` on an error; `until(n)` resolves once n records are in (rejects on the failure, or after
 * `timeoutMs`: a bound on waiting, not a speed target).
 */
export function recordWaiters<T>(records: T[]): { arrived(): void; failed(e: Error): void; until(n: number, timeoutMs?: number): Promise<T[]> } {
  const waiters: { n: number; resolve: (r: T[]) => void; reject: (e: Error) => void }[] = [];
  let failure: Error | undefined;
  return {
    arrived() {
      for (const w of [...waiters]) if (records.length >= w.n) w.resolve(records);
    },
    failed(e) {
      failure = e;
      for (const w of waiters) w.reject(e);
    },
    until(n, timeoutMs = 30_000) {
      if (records.length >= n) return Promise.resolve(records);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${records.length} of ${n} records after ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ n, resolve: (r) => (clearTimeout(t), resolve(r)), reject });
      });
    },
  };
}

/** The body of an answer that must have `status` (the assertion names the body otherwise). */
export async function ok(res: Promise<{ status: number; body: any }>, status = 200): Promise<any> {
  const r = await res;
  assert.equal(r.status, status, JSON.stringify(r.body));
  return r.body;
}

export interface InjectResult {
  status: number;
  /** The body parsed as JSON, or the text when it is not JSON. */
  body: any;
  headers: Record<string, unknown>;
}

/**
 * A request through Fastify's inject (no socket): a body that is not a string
 * or a Buffer goes as JSON. The one inject helper of the tests.
 */
export async function injectJson(app: FastifyInstance, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<InjectResult> {
  const raw = body === undefined || typeof body === 'string' || Buffer.isBuffer(body);
  const res = await app.inject({
    method: method as 'GET',
    url,
    payload: body === undefined ? undefined : raw ? (body as string | Buffer) : JSON.stringify(body),
    headers: raw ? headers : { 'content-type': 'application/json', ...headers },
  });
  let parsed: unknown = res.body;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    /* not JSON */
  }
  return { status: res.statusCode, body: parsed, headers: res.headers as Record<string, unknown> };
}

/** One line a captured logger received. */
export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg?: string;
}

/** A Logger that keeps every line, for tests that assert on what was logged. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  const logger: Logger = { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), child: () => logger };
  return { logger, lines };
}

export interface TestAsof extends Asof {
  dataDir: string;
  /** JSON request through Fastify's inject (`injectJson`). */
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<InjectResult>;
  /** Closes and removes the data folder, if testAsof made it (for this instance, or for an earlier one reopened on it). */
  destroy(): Promise<void>;
}

/**
 * The temporary data folders testAsof made. A test that closes an instance and reopens its folder
 * (`opts.dataDir`) destroys the last one: that removes the folder too, which the first instance made.
 */
const madeFolders = new Set<string>();

/** An asof on a temporary data folder, not bound to a port (requests go through inject). */
export async function testAsof(overrides: Partial<Config> = {}, opts: { now?: () => number; dataDir?: string; listen?: boolean } = {}): Promise<TestAsof> {
  const path = opts.dataDir ?? (await tempDir()).path;
  if (opts.dataDir === undefined) madeFolders.add(path);
  const config = ConfigSchema.parse({ dataDir: path, port: 0, grpcPort: 0, ...overrides });
  const asof = await startAsof(config, silentLogger, { listen: opts.listen ?? false, now: opts.now });
  return Object.assign(asof, {
    dataDir: path,
    req: (method: string, url: string, body?: unknown, headers?: Record<string, string>) => injectJson(asof.http, method, url, body, headers),
    async destroy() {
      await asof.close();
      if (madeFolders.delete(path)) await rm(path, { recursive: true, force: true });
    },
  });
}

/** Polls `ok` every 20 ms until it holds; fails the test, naming `what`, after `ms`. */
export async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !(await ok()); ) {
    if (Date.now() > end) assert.fail(`${what}: not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A log table of user events keyed by user, as the tiering tests write it. */
export const USER_EVENTS = {
  kind: 'log' as const,
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'string', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'n', type: 'int64', nullable: false },
  ],
};

/** Batch `b` of `per` USER_EVENTS rows: seven users, distinct times, n counting up across batches. */
export const userEventRows = (b: number, per: number) => Array.from({ length: per }, (_, i) => ({ user: `u${i % 7}`, ts: 1_700_000_000_000 + b * 1000 + i, n: b * per + i }));
