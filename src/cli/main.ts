#!/usr/bin/env node
/**
 * The asof command line: `asof serve [--port N ...]`. Options are the
 * configuration of DESIGN.md, as flags or environment variables.
 */
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { startAsof } from '../app.js';

const USAGE = `usage: asof <command> [options]

commands:
  serve     serve REST (and gRPC) on the configured ports

options (or environment variables):
  --port N            PORT            REST port (8080)
  --grpc-port N       GRPC_PORT       gRPC port (50051)
  --host H            HOST            bind address (127.0.0.1)
  --data-dir D        ASOF_DATA_DIR   data folder (./.asof)
  --redis-url U       REDIS_URL       Redis online store (unset: embedded)
  --redis-prefix P    ASOF_REDIS_PREFIX  prefix of every Redis key (asof:)
  --role R            ASOF_ROLE       primary | replica (primary); a replica serves reads from REDIS_URL
  --lance-uri U       ASOF_LANCE_URI  cold tier location (default under the data dir)
  --api-keys K1,K2    ASOF_API_KEYS   required API keys (unset: no auth, loopback only)
  --log-level L       LOG_LEVEL       fatal|error|warn|info|debug|trace|silent (info)
`;

async function serve(argv: string[]): Promise<void> {
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
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`asof: unknown command "${cmd}"\n\n${USAGE}`);
      process.exit(2);
  }
}

main().catch((e) => {
  process.stderr.write(`asof: ${(e as Error).message}\n`);
  process.exit(1);
});
