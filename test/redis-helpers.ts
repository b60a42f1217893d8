/**
 * Redis for tests: the shared server at 127.0.0.1:6379 (skipped locally when
 * it does not answer, a failure when CI=true), and private servers started on
 * a spare port for tests that stop, flush or restart Redis.
 */
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { deletePrefix, redisAnswers } from '../support/redis.js';

export { deletePrefix, redisAnswers };

export const SHARED_REDIS_URL = process.env.ASOF_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A prefix no other test (or run) uses. */
export const uniquePrefix = (what: string): string => `asoftest:${what}:${process.pid}:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}:`;

/**
 * Whether Redis tests run: true when the shared Redis answers. When it does
 * not, the caller skips, except under CI=true, where this throws so the
 * suite fails rather than passing without having run.
 */
export async function sharedRedisOrSkip(): Promise<boolean> {
  if (await redisAnswers(SHARED_REDIS_URL)) return true;
  if (process.env.CI === 'true') throw new Error(`Redis does not answer at ${SHARED_REDIS_URL}, and CI=true requires it`);
  return false;
}


import { freePort } from './child-server.js';
export { freePort };

export const redisServerInstalled = (): boolean => spawnSync('redis-server', ['--version']).status === 0;

/** A Redis of our own on a spare port, without persistence, that a test may stop and start again. */
export class PrivateRedis {
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.restart();
    return r;
  }

  /** Starts the server (again) on the same port; it comes back empty. */
  async restart(): Promise<void> {
    const res = spawnSync('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--loglevel', 'warning']);
    if (res.status !== 0) throw new Error(`redis-server did not start: ${res.stderr.toString()}`);
    for (let i = 0; i < 100; i++) {
      if (await redisAnswers(this.url)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`redis-server on port ${this.port} did not answer`);
  }

  /** Stops the server (SHUTDOWN NOSAVE) and waits until it no longer answers. */
  async stop(): Promise<void> {
    spawnSync('redis-cli', ['-p', String(this.port), 'shutdown', 'nosave']);
    for (let i = 0; i < 100; i++) {
      if (!(await redisAnswers(this.url))) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`redis-server on port ${this.port} did not stop`);
  }

  /** A client for poking at the server directly. */
  client(): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 1 });
  }
}
