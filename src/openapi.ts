/**
 * Builds the OpenAPI document exactly as the server serves it, against a
 * throw-away data folder, without binding a port.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigSchema } from './config.js';
import { silentLogger } from './logger.js';
import { startAsof } from './app.js';

export async function generateOpenApi(): Promise<unknown> {
  const dir = await mkdtemp(join(tmpdir(), 'asof-openapi-'));
  try {
    const asof = await startAsof(ConfigSchema.parse({ dataDir: dir }), silentLogger, { listen: false });
    try {
      return asof.http.swagger();
    } finally {
      await asof.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
