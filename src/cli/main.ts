#!/usr/bin/env node
/**
 * The asof command line: `asof serve`, `asof ingest`, `asof export`, `asof repair`.
 * Server options are the configuration of DESIGN.md, as flags or environment
 * variables; the client commands talk to a running server (`--url`) or to a
 * data folder (`--data-dir`).
 */
import { UsageError } from './args.js';
import { EXPORT_USAGE, exportTrainingSet } from './export.js';
import { INGEST_USAGE, ingest } from './ingest.js';
import { REPAIR_USAGE, repair } from './repair.js';
import { serve } from './serve.js';

/** The options of serve, as flags or environment variables: in `asof --help` and `asof serve --help`. */
const SERVE_OPTIONS = `  --port N            PORT            REST port (8080)
  --grpc-port N       GRPC_PORT       gRPC port (50051)
  --host H            HOST            bind address (127.0.0.1)
  --data-dir D        ASOF_DATA_DIR   data folder (./.asof)
  --redis-url U       REDIS_URL       Redis online store (unset: embedded)
  --redis-prefix P    ASOF_REDIS_PREFIX  prefix of every Redis key (asof:)
  --role R            ASOF_ROLE       primary | replica (primary); a replica serves reads from REDIS_URL
  --lance-uri U       ASOF_LANCE_URI  cold tier location (default under the data dir)
  --api-keys K:S+S,.. ASOF_API_KEYS   API keys with scopes read|write|decide|admin|audit (none: all); unset: no auth, loopback only
  --api-keys-file F   ASOF_API_KEYS_FILE  one "key scope..." per line, re-read on SIGHUP
  --metrics-open B    ASOF_METRICS_OPEN   true: /metrics without a key
  --log-level L       LOG_LEVEL       fatal|error|warn|info|debug|trace|silent (info)
  Every other variable of the README's configuration table is a flag too: ASOF_TIER_AFTER is --tier-after.
`;

const USAGE = `usage: asof <command> [options]

commands:
  serve     serve REST (and gRPC) on the configured ports       (asof serve --help)
  ingest    import a CSV, NDJSON or Parquet file into a table   (asof ingest --help)
  export    write a point-in-time training set to a file        (asof export --help)
  repair    cut a damaged changelog, reporting what is lost      (asof repair --help)

options of serve (or environment variables):
${SERVE_OPTIONS}`;

const SERVE_USAGE = `usage: asof serve [options]

Serves REST (and gRPC) on the configured ports until SIGINT or SIGTERM.

options (or environment variables):
${SERVE_OPTIONS}`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; usage?: string }> = {
  serve: { run: serve, usage: SERVE_USAGE },
  ingest: { run: ingest, usage: INGEST_USAGE },
  export: { run: exportTrainingSet, usage: EXPORT_USAGE },
  repair: { run: repair, usage: REPAIR_USAGE },
};

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    process.stderr.write(`asof: unknown command "${cmd}"\n\n${USAGE}`);
    process.exit(2);
  }
  if (command.usage && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(command.usage);
    return;
  }
  try {
    await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`asof ${cmd}: ${e.message}\n\n${command.usage ?? USAGE}`);
      process.exit(2);
    }
    throw e;
  }
}

main().catch((e) => {
  process.stderr.write(`asof: ${(e as Error).message}\n`);
  process.exit(1);
});
