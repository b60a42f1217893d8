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
import { AsofError, isAsofError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface CallContext {
  logger: Logger;
  /** The configured API keys (auth is off when `keys.enabled` is false). */
  keys: ApiKeys;
  /** True once the server is shutting down: new calls answer UNAVAILABLE. */
  closing(): boolean;
}

/** Metadata values must be printable ASCII; \u-escape the rest (JSON stays valid). */
const asciiJson = (v: unknown): string => JSON.stringify(v).replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

/** Keeps error metadata well below grpc's default 8 KiB header limit. */
const MAX_ERROR_JSON = 6000;

/** Any thrown value → a gRPC status carrying the catalogue mapping; unexpected errors are logged and answered INTERNAL. */
export function toGrpcStatus(err: unknown, logger: Logger): Partial<grpc.StatusObject> {
  let e: AsofError;
  if (isAsofError(err)) e = err;
  else {
    logger.error({ err: String((err as Error)?.stack ?? err) }, 'gRPC call failed');
    e = new AsofError('ASOF_INTERNAL', 'internal error');
  }
  const metadata = new grpc.Metadata();
  metadata.set('asof-error-code', e.code);
  let body = asciiJson(e.toJSON());
  if (body.length > MAX_ERROR_JSON) body = asciiJson({ error: { code: e.code, message: e.message.slice(0, 2000), details: { truncated: true } } });
  metadata.set('asof-error', body);
  return { code: e.grpcStatus, details: e.message, metadata };
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

/** A unary handler; `fn` may answer at once (no promise, no wait for a microtask) or with a promise. */
export function unary<Req, Res>(ctx: CallContext, access: Access, fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return declare<grpc.handleUnaryCall<Req, Res>>((call, callback) => {
    const denied = checkCall(ctx, call, access);
    if (denied) return callback(toGrpcStatus(denied, ctx.logger));
    let res: Res | Promise<Res>;
    try {
      res = fn(call.request, call);
    } catch (e) {
      return callback(toGrpcStatus(e, ctx.logger));
    }
    if (res instanceof Promise) {
      res.then(
        (r) => callback(null, r),
        (e) => callback(toGrpcStatus(e, ctx.logger)),
      );
    } else callback(null, res);
  }, access);
}

export function clientStream<Req, Res>(ctx: CallContext, access: Access, fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
  return declare<grpc.handleClientStreamingCall<Req, Res>>((call, callback) => {
    const denied = checkCall(ctx, call, access);
    if (denied) return callback(toGrpcStatus(denied, ctx.logger));
    // A cancelled call never ends its stream; destroying it ends the handler's read loop.
    call.on('cancelled', () => call.destroy());
    fn(call).then(
      (res) => callback(null, res),
      (e) => {
        if (!call.cancelled) callback(toGrpcStatus(e, ctx.logger));
      },
    );
  }, access);
}

export function serverStream<Req, Res>(ctx: CallContext, access: Access, fn: (call: grpc.ServerWritableStream<Req, Res>) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
  return declare<grpc.handleServerStreamingCall<Req, Res>>((call) => {
    const fail = (e: unknown): void => {
      if (!call.cancelled && !call.writableEnded) call.emit('error', toGrpcStatus(e, ctx.logger));
    };
    const denied = checkCall(ctx, call, access);
    if (denied) return fail(denied);
    fn(call).catch(fail);
  }, access);
}
