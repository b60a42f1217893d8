/**
 * What the tests use to run asof as a real process: the server child helpers
 * (support/child-server.ts, shared with the benches), `runCli` for the CLI's
 * other commands, and `fetchJson`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { ASOF_CLI, readyChild, ROOT, type ChildServer } from '../support/child-server.js';

export { freePort, killAll, readyChild, startChild, type ChildServer } from '../support/child-server.js';

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

/**
 * Runs `asof <args>` (the CLI, through tsx) to its end; never rejects on a non-zero exit. `timeoutMs`: killed
 * (and rejected) if still running then, for a command expected to fail at once (a `serve` that should refuse).
 */
export function runCli(args: string[], env: Record<string, string> = {}, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...ASOF_CLI, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'silent', ...env }, maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 0 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

type Json = Record<string, any>;

/** Every record of a table's changelog (GET /tables/{table}/changelog, paged until empty). */
export async function readChangelog(url: string, table: string): Promise<Json[]> {
  const out: Json[] = [];
  for (let from = 0; ; ) {
    const res = await fetch(`${url}/tables/${table}/changelog?from=${from}&limit=10000`);
    if (res.status !== 200) throw new Error(`GET changelog of ${table}: ${res.status} ${await res.text()}`);
    const { records, nextOffset } = (await res.json()) as { records: Json[]; nextOffset: number };
    if (records.length === 0) return out;
    out.push(...records);
    from = nextOffset;
  }
}

/** Asserts what every changelog read after a crash must show: offsets dense from 0, commit times never going back. */
export function assertDense(table: string, records: Json[]): void {
  records.forEach((r, i) => assert.equal(r.offset, i, `${table}: offsets are dense from 0 (record ${i} has offset ${r.offset})`));
  for (let i = 1; i < records.length; i++) assert.ok(Date.parse(records[i].commitTime) >= Date.parse(records[i - 1].commitTime), `${table}: commit time goes back at offset ${i}`);
}

/**
 * Kill -9 under load, `rounds` times over one data folder. Each round starts
 * asof with `env` and waits until it is ready, calls `started` (check what
 * survived the last kill, set up), starts `writers` (each returns once a
 * request fails: the kill), waits a random time in `pauseMs` (default
 * 300-1,200 ms), calls `beforeKill`,
 * SIGKILLs the server, waits for the writers, and calls `killed`.
 * `beforeStart` runs before each start. Rounds count from 0.
 */
export async function killUnderLoad(
  dir: string,
  env: Record<string, string>,
  rounds: number,
  hooks: {
    pauseMs?: [number, number];
    beforeStart?: (round: number) => Promise<void>;
    started: (child: ChildServer, round: number) => Promise<void>;
    writers: (url: string, round: number) => Promise<unknown>[];
    beforeKill?: (child: ChildServer, round: number) => Promise<void>;
    killed?: (round: number) => Promise<void>;
  },
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await hooks.beforeStart?.(round);
    const child = await readyChild(dir, env);
    try {
      await hooks.started(child, round);
      const writers = hooks.writers(child.url, round);
      const [min, max] = hooks.pauseMs ?? [300, 1200];
      await new Promise((r) => setTimeout(r, min + Math.random() * (max - min)));
      await hooks.beforeKill?.(child, round);
      await child.kill('SIGKILL');
      await Promise.all(writers);
    } finally {
      await child.kill('SIGKILL');
    }
    await hooks.killed?.(round);
  }
}
