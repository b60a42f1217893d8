/**
 * A direct encoder for the hot answer, `asof.v1.GetOnlineFeaturesResponse`.
 *
 * proto-loader serializes by first copying the answer into protobufjs message
 * objects (`fromObject`), then encoding; on the online-lookup path that copy
 * cost about as much as the lookup. Here protobufjs encodes the plain answer
 * directly (enums given as numbers), and the part that repeats from call to
 * call, the list of requested features, is encoded once per selection and
 * prepended: a protobuf message is the concatenation of its fields, so
 * `features bytes ++ results bytes` is the whole answer.
 */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { protoDir } from './protos.js';

let cached: protobuf.Type | undefined;

function responseType(): protobuf.Type {
  if (cached) return cached;
  const root = new protobuf.Root();
  const dir = protoDir();
  // Imports of google/protobuf/* resolve to protobufjs's bundled copies before this is asked.
  root.resolvePath = (_origin, target) => join(dir, target);
  root.loadSync('asof/v1/online.proto', { keepCase: true });
  cached = root.lookupType('asof.v1.GetOnlineFeaturesResponse');
  return cached;
}

export const STATUS_NUMBER = { PRESENT: 1, NULL_VALUE: 2, NOT_FOUND: 3, OUTSIDE_MAX_AGE: 4 } as const;

/** Encodes `{features}` (the FeatureInfo list) alone: the prefix of every answer for the same selection. */
export function encodeFeatureInfos(features: { ref: string; view: string; name: string; type: string }[]): Buffer {
  return Buffer.from(responseType().encode({ features }).finish());
}

/**
 * The whole answer: the features prefix, then `results` encoded from plain
 * objects (Value fields as in values.ts, statuses as STATUS_NUMBER, token offsets as numbers).
 */
export function encodeOnlineResponse(featuresPrefix: Buffer, results: object[]): Buffer {
  const body = responseType().encode({ results }).finish();
  return Buffer.concat([featuresPrefix, body], featuresPrefix.length + body.length);
}
