/**
 * `asof serve`: REST (and gRPC) on the configured ports until SIGINT/SIGTERM.
 */
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { startAsof } from '../app.js';

export async function serve(argv: string[]): Promise<void> {
  const config = loadConfig(process.env, argv);
  const logger = createLogger(config.logLevel);
  const asof = await startAsof(config, logger);
  logger.info({ url: asof.url, grpcPort: asof.grpcPort, dataDir: config.dataDir, onlineStore: config.redisUrl ? 'redis' : 'embedded' }, `asof serving on ${asof.url} (docs: ${asof.url}/docs), gRPC on port ${asof.grpcPort}`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    asof.close().then(
      () => process.exit(0),
      (e) => {
        logger.error({ err: String(e) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // SIGHUP re-reads ASOF_API_KEYS_FILE; a file that cannot be read or parsed keeps the keys in force.
  process.on('SIGHUP', () => {
    try {
      logger.info({ keys: asof.keys.reload() }, 'API keys reloaded');
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'API keys not reloaded; the previous keys stay in force');
    }
  });
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
