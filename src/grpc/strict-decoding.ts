/**
 * gRPC requests are decoded strictly, and a message that does not decode is
 * the client's error (INVALID_ARGUMENT), never INTERNAL.
 *
 * grpc-js answers INTERNAL "Error deserializing request" whenever a
 * deserializer throws, with no hook to choose the status. So each method's
 * deserializer is wrapped to return a `BadMessage` instead of throwing, and a
 * server interceptor answers INVALID_ARGUMENT (through the catalogue) when it
 * sees one; handlers never do.
 *
 * protobufjs decodes a string field that is not UTF-8 into U+FFFD (and reads
 * a length past the end of the message as a shorter string): proto3 requires
 * valid UTF-8, so its readers are made to refuse both instead.
 */
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { AsofError } from '../errors.js';
import type { Access } from '../access.js';
import { observeGrpc } from '../metrics.js';
import { checkCall, toGrpcStatus, type CallContext } from './calls.js';

/** What a method's deserializer returns for bytes that are not its request message. */
export class BadMessage {
  constructor(readonly reason: string) {}
}

/** The definition with every request deserializer returning BadMessage rather than throwing. */
export function tolerantDeserializers(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    const decode = m.requestDeserialize;
    out[name] = {
      ...m,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (e) {
          return new BadMessage((e as Error).message ?? String(e));
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

/**
 * Answers a request message that did not decode (see tolerantDeserializers):
 * UNAUTHENTICATED or PERMISSION_DENIED when the call's key may not call the
 * method (`access`: method path → what it declares), as REST refuses a bad
 * body without a key, else INVALID_ARGUMENT. Such a call never reaches a
 * unary or server-streaming handler, so it is timed into
 * asof_grpc_call_duration_ms here.
 */
export function badMessageInterceptor(ctx: CallContext, access: ReadonlyMap<string, Access>): grpc.ServerInterceptor {
  return (method, call) => {
    const t0 = performance.now();
    let metadata = new grpc.Metadata();
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (md, pass) => {
            metadata = md;
            pass(md);
          },
          onReceiveMessage: (message, pass) => {
            if (!(message instanceof BadMessage)) return pass(message);
            const needs = access.get(method.path);
            // The key first, as for a message that decodes: a caller without one learns nothing of how its bytes were read.
            const e =
              (needs === undefined ? undefined : checkCall(ctx, { metadata }, needs)) ??
              new AsofError('ASOF_INVALID_ARGUMENT', `the request is not a valid ${method.path.split('/').pop()} message: ${message.reason}`, [{ field: 'message', reason: message.reason }]);
            const status = toGrpcStatus(e, ctx.logger, { metadata });
            call.sendStatus({ code: status.code!, details: status.details!, metadata: status.metadata! });
            // A client-streaming handler has started (on the metadata) and times its own call.
            if (!method.requestStream) observeGrpc(method.path.slice(1), status.code!, performance.now() - t0);
          },
        });
      },
    });
  };
}

let patched = false;
/** Makes protobufjs's string readers refuse bytes that are not UTF-8, and lengths past the message's end. Idempotent. */
export function strictProtobufStrings(): void {
  if (patched) return;
  patched = true;
  const pb = createRequire(import.meta.url)('protobufjs/minimal') as {
    Reader: { prototype: { string(): string; uint32(): number; pos: number; len: number; buf: Uint8Array } };
    BufferReader: { prototype: { string(): string } };
  };
  function strictString(this: { uint32(): number; pos: number; len: number; buf: Uint8Array }): string {
    const len = this.uint32();
    const start = this.pos;
    if (start + len > this.len) throw new RangeError(`a string field's length (${len}) runs past the end of the message`);
    this.pos = start + len;
    const bytes = Buffer.from(this.buf.buffer, this.buf.byteOffset + start, len);
    if (!isUtf8(bytes)) throw new TypeError('a string field is not valid UTF-8');
    return bytes.toString('utf8');
  }
  pb.Reader.prototype.string = strictString;
  pb.BufferReader.prototype.string = strictString;
}
