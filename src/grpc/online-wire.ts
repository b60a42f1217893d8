/**
 * `asof.v1.OnlineService/GetOnlineFeatures` on the wire, by hand (see wire.ts),
 * the one message pair not left to the generated codecs: on bench:grpc, in the
 * same run, the generated codec (online-codec.ts) cost 129 µs of server CPU a
 * call against 80 for this and 79 for a bare server (0.61 of it; target 0.8).
 * the request read into entity keys and a selection, the answer written
 * straight from the online service's `Evaluation` (canonical values, numeric
 * event times). What is the same for every call of a plan, the encoded
 * feature list and each feature's value writer, is built once per plan.
 *
 * Field numbers are those of proto/asof/v1/online.proto and values.proto; a
 * test decodes these bytes with proto-loader and compares them with the REST
 * answer for the same entities.
 */
import { AsofError } from '../errors.js';
import { formatType } from '../engine/types.js';
import type { FeatureStatus } from '../features/evaluator.js';
import type { Evaluation, FeatureSelection, Plan } from '../online/service.js';
import { readValue, valueWriter, type ValueWriter } from './value-wire.js';
import { LEN, ProtoReader, ProtoWriter, tagOf, VARINT } from './wire.js';

/** Field 1 of a message, length-delimited. */
const FIRST = tagOf(1, LEN);

// ---- the request ------------------------------------------------------------------------------

/** A decoded GetOnlineFeaturesRequest. */
export interface OnlineRequest {
  /** Each entity's `Value` message as sent: converted to a key by `entityKeys`, and echoed back in the answer. */
  entities: Buffer[];
  /** The same object for the same selection bytes, so the online service's plan cache hits by identity. */
  selection: FeatureSelection;
  /** decision_ids (field 5), when given: one per entity, "" for not recorded. */
  decisionIds?: string[];
}

const NO_SELECTION: FeatureSelection = Object.freeze({});
const selections = new Map<string, FeatureSelection>();
const MAX_SELECTIONS = 1000;

/** Request bytes → entities and selection. Throws on malformed protobuf (grpc-js then answers INTERNAL, as for any undecodable request). */
export function decodeOnlineRequest(buf: Buffer): OnlineRequest {
  const r = new ProtoReader(buf);
  const entities: Buffer[] = [];
  let decisionIds: string[] | undefined;
  let kind = 0;
  let start = 0;
  let end = 0;
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field >= 1 && field <= 4 && (tag & 7) === LEN) {
      const [s, e] = r.span();
      if (field === 1) entities.push(buf.subarray(s, e));
      else {
        // A oneof: the last member given wins.
        kind = field;
        start = s;
        end = e;
      }
    } else if (tag === tagOf(5, LEN)) (decisionIds ??= []).push(r.string());
    else r.skip(tag & 7);
  }
  const out: OnlineRequest = { entities, selection: kind === 0 ? NO_SELECTION : selectionOf(buf, kind, start, end) };
  if (decisionIds) out.decisionIds = decisionIds;
  return out;
}

function selectionOf(buf: Buffer, kind: number, start: number, end: number): FeatureSelection {
  const key = kind + buf.toString('latin1', start, end);
  let sel = selections.get(key);
  if (!sel) {
    if (kind === 2) {
      const refs: string[] = [];
      const r = new ProtoReader(buf, start, end);
      while (r.pos < r.end) {
        const tag = r.uint32();
        if (tag === tagOf(1, LEN)) refs.push(r.string());
        else r.skip(tag & 7);
      }
      sel = { features: refs };
    } else {
      const text = buf.toString('utf8', start, end);
      sel = kind === 3 ? { view: text } : { service: text };
    }
    if (selections.size >= MAX_SELECTIONS) selections.clear();
    selections.set(key, Object.freeze(sel));
  }
  return sel;
}

/**
 * The entities' Values → the plain values the online service takes as keys
 * (int64 as a number when safe, else a decimal string; timestamps as epoch ms;
 * json_value parsed; lists, structs and vectors as arrays and objects; no
 * field or null_value → null). A Value that cannot be read is a 400 naming it.
 */
export function entityKeys(entities: Buffer[]): unknown[] {
  const out = new Array<unknown>(entities.length);
  for (let i = 0; i < entities.length; i++) {
    try {
      out[i] = readValue(entities[i]);
    } catch (e) {
      const reason = (e as Error).message;
      throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} is not a readable asof.v1.Value: ${reason}`, [{ row: i, field: 'entity', reason }]);
    }
  }
  return out;
}

// ---- the answer -------------------------------------------------------------------------------

export const STATUS_NUMBER: Record<FeatureStatus, number> = { PRESENT: 1, NULL_VALUE: 2, NOT_FOUND: 3, OUTSIDE_MAX_AGE: 4 };

/** Per plan: the answer's `features` field (the FeatureInfo list, the same for every call) and each feature's value writer. */
interface PlanWire {
  prefix: Buffer;
  values: ValueWriter[];
}

const planWires = new WeakMap<Plan, PlanWire>();

function planWire(plan: Plan): PlanWire {
  let pw = planWires.get(plan);
  if (!pw) {
    const w = new ProtoWriter(256);
    for (const f of plan.features) {
      w.uint32(FIRST);
      const s = w.begin();
      w.uint32(tagOf(1, LEN));
      w.string(f.ref);
      w.uint32(tagOf(2, LEN));
      w.string(f.view);
      w.uint32(tagOf(3, LEN));
      w.string(f.feature);
      w.uint32(tagOf(4, LEN));
      w.string(formatType(f.type));
      w.end(s);
    }
    pw = { prefix: w.finish(), values: plan.features.map((f) => valueWriter(f.type)) };
    planWires.set(plan, pw);
  }
  return pw;
}

// Encoding is synchronous: one buffer serves every call.
const out = new ProtoWriter();
const tokenBytes = new ProtoWriter(256);

/** A GetOnlineFeaturesResponse for `e`; `entities` are the request's Value messages, in the same order. */
export function encodeOnlineAnswer(e: Evaluation, entities: Uint8Array[]): Buffer {
  const pw = planWire(e.plan);
  const nf = e.plan.features.length;
  // map<string, int64> token: the same entries in every result.
  const t = tokenBytes.reset();
  for (const table in e.token) {
    t.uint32(tagOf(3, LEN));
    const s = t.begin();
    t.uint32(tagOf(1, LEN));
    t.string(table);
    t.uint32(tagOf(2, VARINT));
    t.int64(e.token[table]);
    t.end(s);
  }
  const token = t.buf.subarray(0, t.pos);

  const w = out.reset();
  w.raw(pw.prefix);
  const { values, statuses, eventTimes } = e;
  for (let i = 0; i < entities.length; i++) {
    w.uint32(tagOf(2, LEN));
    const result = w.begin();
    w.uint32(FIRST);
    w.uint32(entities[i].length);
    w.raw(entities[i]);
    for (let f = 0, k = i * nf; f < nf; f++, k++) {
      w.uint32(tagOf(2, LEN));
      const fv = w.begin();
      w.uint32(FIRST);
      const value = w.begin();
      pw.values[f](w, values[k]);
      w.end(value);
      w.uint32(tagOf(2, VARINT));
      w.uint32(STATUS_NUMBER[statuses[k]]);
      const et = eventTimes[k];
      if (et !== null && et !== undefined) {
        w.uint32(tagOf(3, LEN));
        const ts = w.begin();
        w.timestamp(et);
        w.end(ts);
      }
      w.end(fv);
    }
    w.raw(token);
    w.end(result);
  }
  return w.finish();
}
