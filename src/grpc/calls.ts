/**
 * What every gRPC handler shares: API-key auth, and errors mapped through the
 * one catalogue (src/errors.ts). A failed call carries:
 *   - the catalogue's gRPC status code for the error's `code`;
 *   - the message as the status details;
 *   - trailing metadata `asof-error-code` (e.g. ASOF_INVALID_ROW) and
 *     `asof-error` (the REST error body `{"error": {code, message, details}}`
 *     as JSON; characters outside printable ASCII \u-escaped).
 */
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AsofError, isAsofError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface CallContext {
  logger: Logger;
  /** Configured API keys; empty means no auth. */
  apiKeys: Buffer[];
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

/** Checks the call's API key (`authorization: Bearer <key>`, or `x-api-key`); returns the error to answer, if any. */
export function checkCall(ctx: CallContext, md: grpc.Metadata): AsofError | undefined {
  if (ctx.closing()) return new AsofError('ASOF_NOT_READY', 'the server is shutting down');
  if (ctx.apiKeys.length === 0) return undefined;
  const auth = md.get('authorization')[0];
  const given = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : (md.get('x-api-key')[0] as string | undefined);
  if (!given) return new AsofError('ASOF_UNAUTHENTICATED', 'an API key is required: send metadata "authorization: Bearer <key>"');
  const g = Buffer.from(String(given));
  if (!ctx.apiKeys.some((k) => k.length === g.length && timingSafeEqual(k, g))) return new AsofError('ASOF_UNAUTHENTICATED', 'the API key is not valid');
  return undefined;
}

/** A unary handler; `fn` may answer at once (no promise, no wait for a microtask) or with a promise. */
export function unary<Req, Res>(ctx: CallContext, fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const denied = checkCall(ctx, call.metadata);
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
  };
}

export function clientStream<Req, Res>(ctx: CallContext, fn: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    const denied = checkCall(ctx, call.metadata);
    if (denied) return callback(toGrpcStatus(denied, ctx.logger));
    // A cancelled call never ends its stream; destroying it ends the handler's read loop.
    call.on('cancelled', () => call.destroy());
    fn(call).then(
      (res) => callback(null, res),
      (e) => {
        if (!call.cancelled) callback(toGrpcStatus(e, ctx.logger));
      },
    );
  };
}

export function serverStream<Req, Res>(ctx: CallContext, fn: (call: grpc.ServerWritableStream<Req, Res>) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const fail = (e: unknown): void => {
      if (!call.cancelled && !call.writableEnded) call.emit('error', toGrpcStatus(e, ctx.logger));
    };
    const denied = checkCall(ctx, call.metadata);
    if (denied) return fail(denied);
    fn(call).catch(fail);
  };
}
