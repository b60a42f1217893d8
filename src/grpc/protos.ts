/**
 * asof's .proto files (`proto/` at the repository root), loaded once with
 * @grpc/proto-loader. The server, the reflection service, the tests and the
 * benchmark all load them the same way, so field names and value forms agree:
 * snake_case fields, int64 as decimal strings, enums as names, and `oneofs`
 * (a virtual field naming the member of a oneof that is set).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_FILES = ['asof/v1/online.proto', 'asof/v1/ingest.proto', 'asof/v1/changelog.proto', 'asof/v1/audit.proto', 'asof/v1/vectors.proto', 'feast/serving/ServingService.proto'];

export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };

/** The `proto/` folder: two levels up from src/grpc, three from dist/src/grpc. */
export function protoDir(): string {
  for (const rel of ['../../proto', '../../../proto']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}/asof/v1/online.proto`)) return dir;
  }
  throw new Error('asof: cannot find the proto/ folder next to the code');
}

let cached: protoLoader.PackageDefinition | undefined;

export function loadProtos(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
  return cached;
}
