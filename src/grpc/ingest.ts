/**
 * `asof.v1.IngestService/WriteRows`: rows over a client stream. Each streamed
 * message is one unit, validated and written exactly like one REST write
 * request (all its rows or none); messages are written in stream order, each
 * once the previous one is durable. The first failing message ends the call;
 * its error says which message failed and what the earlier ones wrote.
 *
 * The call takes one slot of the write gate for the whole stream, and each
 * message's bytes are charged to the write byte budget while it is written
 * (admission.ts `charge`), as a REST body's are: many large messages at once
 * wait instead of all being parsed together. grpc-js reads a little ahead
 * of the handler (up to 16 messages, each at most the message size limit);
 * those are in memory but not yet charged.
 *
 * The slot bounds how many streams are open at once, so a stream may not hold
 * it idle: with no next message for ASOF_BODY_IDLE_TIMEOUT_MS (after the
 * previous one was written) the call ends with DEADLINE_EXCEEDED
 * (ASOF_REQUEST_TIMEOUT) and frees its slot; the messages before stay
 * written, as the error's details say. Taking the slot per message instead
 * would leave the number of open streams, each with grpc-js's read-ahead,
 * unbounded. A pause limit alone never trips on a trickle (a tiny message
 * every few seconds), so that many trickling streams could still hold every
 * slot: while writers wait for a slot (all are taken), a stream open longer than
 * ASOF_BODY_RATE_WINDOW_MS whose messages of the last window came slower than
 * ASOF_BODY_MIN_BYTES_PER_S is ended the same way (reason `slow`). A slow
 * stream nobody waits behind is left open: a stream is long-lived by nature,
 * and a producer with little to send is no one's harm until the slots run out.
 */
import type * as grpc from '@grpc/grpc-js';
import { AsofError, isAsofError } from '../errors.js';
import type { Token } from '../engine/engine.js';
import { hashOf } from '../ingest/ingest.js';
import { findJsonProblem, jsonProblemError, MAX_JSON_BODY_DEPTH } from '../engine/json-safety.js';
import { parseArrowStream, parseNdjson } from '../ingest/formats.js';
import type { Services } from '../services.js';
import type { Admission, Gate, Release } from '../admission.js';
import { clientStream, type CallContext } from './calls.js';
import { fromPbRows, type PbValue } from './values.js';

interface WriteRowsRequest {
  table?: string;
  op?: 'UPSERT' | 'DELETE';
  rows?: { columns?: Record<string, PbValue> }[];
  ndjson?: string;
  arrow_ipc?: Buffer;
  idempotency_key?: string;
}

interface Written {
  count: number;
  firstOffset: number | null;
  lastOffset: number | null;
  token: Token;
  messages: number;
}

/** Each WriteRows message's size on the wire, bytes, by the decoded message. */
const messageBytes = new WeakMap<object, number>();

/** The service's definition, WriteRows' decoder noting each message's size (charged to the write byte budget). */
export function ingestServiceDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const m = def.WriteRows;
  const requestDeserialize = (bytes: Buffer): unknown => {
    const msg = m.requestDeserialize(bytes) as object;
    messageBytes.set(msg, bytes.length);
    return msg;
  };
  return { ...def, WriteRows: { ...m, requestDeserialize } };
}

export function ingestService(ctx: CallContext, services: Pick<Services, 'ingest'>): grpc.UntypedServiceImplementation {
  const gate = ctx.admission.gates.writes;
  return {
    WriteRows: clientStream(ctx, 'write', async (call: grpc.ServerReadableStream<WriteRowsRequest, unknown>) => {
      const written: Written = { count: 0, firstOffset: null, lastOffset: null, token: {}, messages: 0 };
      let table: string | undefined;
      const messages = (call as AsyncIterable<WriteRowsRequest>)[Symbol.asyncIterator]();
      const pace = new StreamPace(ctx.admission, gate);
      for (;;) {
        let next: IteratorResult<WriteRowsRequest>;
        try {
          next = await pace.next(messages);
        } catch (e) {
          // Stops grpc-js reading more for a call that is over.
          void messages.return?.();
          throw inMessage(e, written);
        }
        if (next.done) break;
        const msg = next.value;
        const size = messageBytes.get(msg) ?? 0;
        let release: Release | undefined;
        try {
          pace.got(size);
          const charged = gate.charge(size);
          release = typeof charged === 'function' ? charged : await charged;
          const name = msg.table || table;
          if (!name) throw new AsofError('ASOF_INVALID_ARGUMENT', 'the first message must name the table', [{ field: 'table', reason: 'required on the first message' }]);
          if (table !== undefined && name !== table) {
            throw new AsofError('ASOF_INVALID_ARGUMENT', `one stream writes one table: it began with "${table}", this message names "${name}"`, [{ field: 'table', reason: 'differs from the first message' }]);
          }
          table = name;
          const op = msg.op === 'DELETE' ? 'delete' : 'upsert';
          const { rows, fingerprint } = rowsOf(msg, op);
          const r = await services.ingest.write(name, rows, op, msg.idempotency_key || undefined, fingerprint);
          written.count += r.count;
          if (r.firstOffset !== null) written.firstOffset ??= r.firstOffset;
          if (r.lastOffset !== null) written.lastOffset = r.lastOffset;
          Object.assign(written.token, r.token);
          written.messages++;
        } catch (e) {
          throw inMessage(e, written);
        } finally {
          release?.();
        }
      }
      return { count: written.count, first_offset: written.firstOffset ?? undefined, last_offset: written.lastOffset ?? undefined, token: written.token, messages: written.messages };
    }, 'writes'),
  };
}

/**
 * The pace of one WriteRows stream (see the top): its next message within
 * the idle limit, and, looked at every quarter window while it waits or
 * receives, the bytes of its last window against the least rate when
 * writers wait for a slot. Time the server spends writing a message is not
 * the client's for the idle limit (its wait starts when the server asks for
 * the next message); the rate's window counts it, which only a stream whose
 * writes are slow while every slot is wanted can feel.
 */
class StreamPace {
  private readonly opened = Date.now();
  private total = 0;
  /** (time, total bytes) at each look, the last window's worth. */
  private readonly looks: { at: number; total: number }[] = [{ at: this.opened, total: 0 }];
  private lastLook = this.opened;
  constructor(
    private readonly admission: Admission,
    private readonly gate: Gate,
  ) {}

  got(bytes: number): void {
    this.total += bytes;
    this.look();
  }

  async next<T>(messages: AsyncIterator<T>): Promise<IteratorResult<T>> {
    const { idleMs, windowMs } = this.admission.pace;
    const tick = Math.max(1, Math.floor(windowMs / 4));
    const idleBy = Date.now() + idleMs;
    const p = messages.next();
    for (;;) {
      const wait = Math.min(idleBy - Date.now(), tick);
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), Math.max(0, wait))))]).finally(() => clearTimeout(timer));
      if (r !== undefined) return r;
      if (Date.now() >= idleBy) throw this.admission.bodyStalled('the stream', 'idle');
      this.look();
    }
  }

  /** Notes where the stream is and, once a window old with writers waiting, ends it below the rate. */
  private look(): void {
    const now = Date.now();
    const { minBytesPerS, windowMs } = this.admission.pace;
    if (minBytesPerS === 0 || now - this.lastLook < windowMs / 4) return;
    this.lastLook = now;
    this.looks.push({ at: now, total: this.total });
    // The oldest look at least a window back is where the last window began.
    while (this.looks.length > 1 && now - this.looks[1].at >= windowMs) this.looks.shift();
    const from = this.looks[0];
    if (now - this.opened < windowMs || now - from.at < windowMs || !this.gate.slotsWanted) return;
    const got = this.total - from.total;
    if (got * 1000 < minBytesPerS * (now - from.at)) throw this.admission.bodyStalled('the stream', 'slow', got);
  }
}

/** The rows of one message, from whichever of its three forms is set, and the fingerprint its idempotency key is checked against. */
function rowsOf(msg: WriteRowsRequest, op: string): { rows: unknown[]; fingerprint?: string | (() => string) } {
  const forms = [msg.rows?.length ? 'rows' : '', msg.ndjson ? 'ndjson' : '', msg.arrow_ipc?.length ? 'arrow_ipc' : ''].filter(Boolean);
  if (forms.length > 1) throw new AsofError('ASOF_INVALID_ARGUMENT', `a message carries rows in one form; this one has ${forms.join(' and ')}`, [{ field: forms[1], reason: 'more than one row form' }]);
  // Same fingerprints as the REST route, so a key is bound to the same body whichever way it came.
  if (msg.ndjson) return { rows: parseNdjson(msg.ndjson), fingerprint: hashOf(`${op}\n${msg.ndjson}`) };
  if (msg.arrow_ipc?.length) return { rows: parseArrowStream(msg.arrow_ipc), fingerprint: hashOf(Buffer.concat([Buffer.from(op + '\n'), msg.arrow_ipc])) };
  const rows = fromPbRows(msg.rows ?? []);
  // Hashed only with an idempotency key, before the rows are validated: their depth is checked first so hashing cannot overflow the stack.
  const fingerprint = (): string => {
    const p = findJsonProblem(rows, MAX_JSON_BODY_DEPTH);
    if (p) throw jsonProblemError(p, ['rows']);
    return hashOf(JSON.stringify([op, rows], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  };
  return { rows, fingerprint };
}

/** An error of message k, saying what the messages before it wrote (they stay written). */
function inMessage(e: unknown, written: Written): unknown {
  if (!isAsofError(e)) return e;
  const k = written.messages;
  return new AsofError(e.code, `message ${k}: ${e.message}`, { message: k, written: { ...written, token: { ...written.token } }, details: e.details });
}
