/**
 * `asof.v1.VectorService/Search`: the vector service's answer (the same one
 * `POST /vectors/search` gives), with typed values. Shaping only.
 */
import type * as grpc from '@grpc/grpc-js';
import { AsofError } from '../errors.js';
import type { Services } from '../services.js';
import type { Metric } from '../vectors/distance.js';
import { callerOfCall, unary, type CallContext } from './calls.js';
import { protoTimestamp } from '../feast/values.js';
import { timestampMs, toPbValue, type PbValue } from './values.js';

/** google.protobuf.Value as proto-loader gives it: protobufjs's bundled struct.proto names its fields in camelCase. */
interface PbStructValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, PbStructValue> };
  listValue?: { values?: PbStructValue[] };
}

interface SearchRequest {
  table?: string;
  column?: string;
  vector?: number[];
  k?: number;
  filter?: { fields?: Record<string, PbStructValue> };
  metric?: string;
  as_of?: { seconds?: string; nanos?: number };
  features?: string[];
}

const METRIC_IN: Record<string, Metric | undefined> = { METRIC_UNSPECIFIED: undefined, COSINE: 'cosine', L2: 'l2', DOT: 'dot' };
const METRIC_OUT: Record<Metric, string> = { cosine: 'COSINE', l2: 'L2', dot: 'DOT' };

/**
 * google.protobuf.Value (proto-loader's shape) → its JSON value. A Value with
 * no kind set is refused (INVALID_ARGUMENT naming `at`, its path in the
 * filter), not read as null: `{lang: Value{}}` would filter on lang IS NULL.
 * A null is sent as null_value.
 */
function fromStructValue(v: PbStructValue | undefined, at: string): unknown {
  switch (v?.kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue, at);
    case 'listValue':
      return (v.listValue?.values ?? []).map((x, i) => fromStructValue(x, `${at}[${i}]`));
    default: {
      const reason = 'a google.protobuf.Value with no kind set (send a null as null_value)';
      throw new AsofError('ASOF_INVALID_ARGUMENT', `${at}: ${reason}`, [{ field: at, reason }]);
    }
  }
}

function fromStruct(s: { fields?: Record<string, PbStructValue> } | undefined, at: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) {
    // Assigned to a plain object, this name would set its prototype: the condition dropped, not refused (REST refuses it too).
    if (k === '__proto__') throw new AsofError('ASOF_INVALID_ARGUMENT', `${at}.__proto__: the name "__proto__" is reserved`, [{ field: `${at}.__proto__`, reason: 'the name "__proto__" is reserved' }]);
    out[k] = fromStructValue(v, `${at}.${k}`);
  }
  return out;
}

export function vectorService(ctx: CallContext, services: Pick<Services, 'vectors' | 'online'>): grpc.UntypedServiceImplementation {
  return {
    Search: unary(ctx, 'read', async (req: SearchRequest, call) => {
      const k = req.k ?? 0;
      if (k < 0 || k > 1000) throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid k: must be 1..1000, got ${k}`, [{ field: 'k', reason: 'out of range' }]);
      if (req.metric && !(req.metric in METRIC_IN)) throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid metric: ${req.metric}`, [{ field: 'metric', reason: 'unknown metric' }]);
      const asOf = req.as_of ? timestampMs(req.as_of, 'as_of') : undefined;
      const answer = await services.vectors.search({
        table: req.table ?? '',
        column: req.column || undefined,
        vector: req.vector ?? [],
        k: k || 10,
        filter: req.filter ? fromStruct(req.filter, 'filter') : undefined,
        metric: METRIC_IN[req.metric ?? 'METRIC_UNSPECIFIED'],
        asOf,
        features: req.features?.length ? req.features : undefined,
      }, callerOfCall(call));
      // The plan the service just used (cached): the types of the feature values.
      const types = req.features?.length ? (await services.online.plan({ features: req.features })).features.map((f) => f.type) : [];
      const schema = services.vectors.schemaOf(req.table!);
      return {
        results: answer.results.map((h) => {
          const columns: Record<string, PbValue> = {};
          for (const c of schema.columns) columns[c.name] = toPbValue(c.type, h.row[c.name]);
          const f = h.features;
          return {
            key: h.key ?? undefined,
            offset: String(h.offset),
            distance: h.distance,
            row: { columns },
            features: f && {
              entity: { string_value: h.key },
              features: req.features!.map((ref, i) => ({
                value: toPbValue(types[i], f.features[ref]),
                status: f.statuses[ref],
                event_time: f.eventTimes[ref] ? protoTimestamp(Date.parse(f.eventTimes[ref]!)) : undefined,
              })),
              token: Object.fromEntries(Object.entries(f.token).map(([t, o]) => [t, String(o)])),
            },
          };
        }),
        token: Object.fromEntries(Object.entries(answer.token).map(([t, o]) => [t, String(o)])),
        search: {
          index: answer.search.index,
          reason: answer.search.reason ?? '',
          as_of_source: answer.search.asOfSource ?? '',
          lance_version: String(answer.search.lanceVersion ?? 0),
          metric: METRIC_OUT[answer.search.metric],
          column: answer.search.column,
        },
      };
    }, 'searches'),
  };
}
