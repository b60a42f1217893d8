import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigSchema, type Config } from '../src/config.js';
import { silentLogger } from '../src/logger.js';
import { startAsof, type Asof } from '../src/app.js';

export async function tempDir(prefix = 'asof-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface TestAsof extends Asof {
  dataDir: string;
  /** JSON request through Fastify's inject; returns status and parsed body. */
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  /** Closes and removes the data folder. */
  destroy(): Promise<void>;
}

/** An asof on a temporary data folder, not bound to a port (requests go through inject). */
export async function testAsof(overrides: Partial<Config> = {}, opts: { now?: () => number; dataDir?: string; listen?: boolean } = {}): Promise<TestAsof> {
  const dir = opts.dataDir ? { path: opts.dataDir, cleanup: async () => undefined } : await tempDir();
  const config = ConfigSchema.parse({ dataDir: dir.path, port: 0, grpcPort: 0, ...overrides });
  const asof = await startAsof(config, silentLogger, { listen: opts.listen ?? false, now: opts.now });
  return Object.assign(asof, {
    dataDir: dir.path,
    async req(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
      const res = await asof.http.inject({
        method: method as 'GET',
        url,
        payload: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
        headers: body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? headers : { 'content-type': 'application/json', ...headers },
      });
      let parsed: unknown = res.body;
      try {
        parsed = JSON.parse(res.body);
      } catch {
        /* not JSON */
      }
      return { status: res.statusCode, body: parsed as any, headers: res.headers as Record<string, unknown> };
    },
    async destroy() {
      await asof.close();
      await dir.cleanup();
    },
  });
}
