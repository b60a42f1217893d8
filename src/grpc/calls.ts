/**
 * What every gRPC handler shares: API-key auth (each method declares the
 * access it needs, src/access.ts), and errors mapped through the
 * one catalogue (src/errors.ts). A failed call carries:
 *   - the catalogue's gRPC status code for the error's `code`;
 *   - the message as the status details;
 *   - trailing metadata `asof-error-code` (e.g. ASOF_INVALID_ROW) and
 *     `asof-error` (the REST error body `{"error": {code, message, details}}`
 *     as JSON; characters outside printable ASCII \u-escaped).
 */
import * as grpc from '@grpc/grpc-js';
import { UNRESTRICTED, bearerKey, type Access, type ApiKeys, type Caller } from '../access.js';
import { retryAfterOf, type Admission, type Release, type WorkKind } from '../admission.js';
import { AsofError, isAsofError } from '../errors.js';
import { observeGrpc, onlineStoreErrors } from '../metrics.js';
import type { Logger } from '../logger.js';
import { callRequestId } from './request-id.js';

export interface CallContext {
  logger: Logger;
  /** The configured API keys (auth is off when `keys.enabled` is false). */
  keys: ApiKeys;
  /** Bounds on work in flight (admission.ts), the same gates REST uses. */
  admission: Admission;
  /** True once the server is shutting down: new calls answer UNAVAILABLE. */
  closing(): boolean;
}

/** Metadata values must be printable ASCII; \u-escape the rest (JSON stays valid). */
const asciiJson = (v: unknown): string => JSON.stringify(v).replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

/** Keeps error metadata well below grpc's default 8 KiB header limit. */
const MAX_ERROR_JSON = 6000;

/** Any thrown value → a gRPC status carrying the catalogue mapping; unexpected errors are logged (with the call's request id) and answered INTERNAL. */
export function toGrpcStatus(err: unknown, logger: Logger, call?: { metadata?: grpc.Metadata }): Partial<grpc.StatusObject> {
  let e: AsofError;
  if (isAsofError(err)) e = err;
  else {
    logger.error({ err: String((err as Error)?.stack ?? err), reqId: call && callRequestId(call) }, 'gRPC call failed');
    e = new AsofError('ASOF_INTERNAL', 'internal error');
  }
  const metadata = new grpc.Metadata();
  metadata.set('asof-error-code', e.code);
  let body = asciiJson(e.toJSON());
  if (body.length > MAX_ERROR_JSON) body = asciiJson({ error: { code: e.code, message: e.publicMessage.slice(0, 2000), details: { truncated: true } } });
  metadata.set('asof-error', body);
  if (e.code === 'ASOF_BACKEND_UNAVAILABLE') onlineStoreErrors.count++;
  const retryAfter = retryAfterOf(e);
  if (retryAfter !== undefined) metadata.set('retry-after', String(retryAfter));
  return { code: e.grpcStatus, details: e.publicMessage, metadata };
}

/** Set on every handler made here: server.ts refuses a method whose handler does not declare its access. */
export const DECLARED_ACCESS = Symbol('asof.access');
const declare = <H extends object>(h: H, access: Access): H => Object.assign(h, { [DECLARED_ACCESS]: access });

const callers = new WeakMap<object, Caller>();
/** The caller authorized for a call (UNRESTRICTED when auth is off), for rules that depend on the request. */
export const callerOfCall = (call: object): Caller => callers.get(call) ?? UNRESTRICTED;

/**
 * Checks the call's API key (metadata `authorization: Bearer <key>`, or
 * `x-api-key`) for `access`; returns the error to answer, if any.
 */
export function checkCall(ctx: CallContext, call: { metadata: grpc.Metadata }, access: Access): AsofError | undefined {
  if (ctx.closing()) return new AsofError('ASOF_NOT_READY', 'the server is shutting down');
  if (!ctx.keys.enabled) return undefined;
  const md = call.metadata;
  try {
    callers.set(call, ctx.keys.authorize(bearerKey(md.get('authorization')[0], md.get('x-api-key')[0]), access));
  } catch (e) {
    return e as AsofError;
  }
  return undefined;
}

/**
 * Runs `fn` inside a slot of `work`'s gate (admission.ts), or at once without
 * one; the slot is released when `fn` settles. Synchronous when a slot is free.
 */
function admitted<T>(ctx: CallContext, work: WorkKind | undefined, fn: () => T | Promise<T>): T | Promise<T> {
  if (work === undefined) return fn();
  const slot = ctx.admission.gates[work].enter();
  const run = (release: Release): T | Promise<T> => {
    let r: T | Promise<T>;
    try {
      r = fn();
    } catch (e) {
      release();
      throw e;
    }
    if (r instanceof Promise) return r.finally(release);
    release();
    return r;
  };
  return typeof slot === 'function' ? run(slot) : slot.then(run);
}

/** A unary handler; `fn` may answer at once (no promise, no wait for a microtask) or with a promise. `work`: its kind of bounded work. */
export function unary<Req, Res>(ctx: CallContext, access: Access, fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>, work?: WorkKind): grpc.handleUnaryCall<Req, Res> {
  return declare<grpc.handleUnaryCall<Req, Res>>((call, callback) => {
    const denied = checkCall(ctx, call, access);
    if (denied) return callback(toGrpcStatus(denied, ctx.logger, call));
    let res: Res | Promise<Res>;
    try {
      res = admitted(ctx, work, () => fn(call.request, call));
    } catch (e) {
      return callback(toGrpcStatus(e, ctx.logger, call));
    }
    if (res instanceof Promise) {
      res.then(
        (r) => callback(null, r),
        (e) => callback(toGrpcStatus(e, ctx.logger, call)),
      );
    } else callback(null, res);
  }, access);
}

export function clientStream<Req, Res>(ctx: CallContext, access: Access, fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>, work?: WorkKind): grpc.handleClientStreamingCall<Req, Res> {
  return declare<grpc.handleClientStreamingCall<Req, Res>>((call, callback) => {
    const denied = checkCall(ctx, call, access);
    if (denied) return callback(toGrpcStatus(denied, ctx.logger, call));
    // A cancelled call never ends its stream; destroying it ends the handler's read loop.
    call.on('cancelled', () => call.destroy());
    let res: Promise<Res>;
    try {
      res = Promise.resolve(admitted(ctx, work, () => fn(call)));
    } catch (e) {
      return callback(toGrpcStatus(e, ctx.logger, call));
    }
    res.then(
      (res) => callback(null, res),
      (e) => {
        if (!call.cancelled) callback(toGrpcStatus(e, ctx.logger, call));
      },
    );
  }, access);
}

export function serverStream<Req, Res>(ctx: CallContext, access: Access, fn: (call: grpc.ServerWritableStream<Req, Res>) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
  return declare<grpc.handleServerStreamingCall<Req, Res>>((call) => {
    const fail = (e: unknown): void => {
      if (!call.cancelled && !call.writableEnded) call.emit('error', toGrpcStatus(e, ctx.logger, call));
    };
    const denied = checkCall(ctx, call, access);
    if (denied) return fail(denied);
    fn(call).catch(fail);
  }, access);
}

/**
 * The handler of `method` (full name, `asof.v1.OnlineService/GetOnlineFeatures`)
 * timed into asof_grpc_call_duration_ms: from the call's arrival to its status.
 */
export function timed(method: string, def: grpc.MethodDefinition<unknown, unknown>, handler: grpc.UntypedHandleCall): grpc.UntypedHandleCall {
  if (!def.responseStream) {
    // Unary and client-streaming: the status is the callback's.
    const h = handler as (call: unknown, cb: grpc.sendUnaryData<unknown>) => void;
    return Object.assign((call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      const t0 = performance.now();
      h(call, (err, value, trailer, flags) => {
        observeGrpc(method, err ? (err.code ?? 2) : 0, performance.now() - t0);
        cb(err, value, trailer, flags);
      });
    }, handler) as grpc.UntypedHandleCall;
  }
  const h = handler as (call: grpc.ServerWritableStream<unknown, unknown>) => void;
  return Object.assign((call: grpc.ServerWritableStream<unknown, unknown>) => {
    const t0 = performance.now();
    let code = 0;
    call.once('error', (e: { code?: number }) => (code = e.code ?? 2));
    call.once('close', () => observeGrpc(method, call.cancelled ? 1 : code, performance.now() - t0));
    h(call);
  }, handler) as grpc.UntypedHandleCall;
}
