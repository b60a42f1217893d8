/**
 * gRPC request ids, by REST's rule (src/request-id.ts): metadata
 * `x-request-id` names a call, the caller's own when sane, else a new one. A
 * server interceptor, so every method of every service has it before its
 * handler runs: the id is put into the call's metadata (where error logs read
 * it, callRequestId) and sent back in the answer's headers and its trailers
 * (an error answered without headers carries it too).
 */
import * as grpc from '@grpc/grpc-js';
import { requestIdOf } from '../request-id.js';

const KEY = 'x-request-id';

/** Must come first in the server's interceptor list (innermost), so statuses other interceptors send pass through it. */
export function requestIdInterceptor(): grpc.ServerInterceptor {
  return (_method, call) => {
    let id = '';
    const stamp = (md: grpc.Metadata): grpc.Metadata => {
      md.set(KEY, id);
      return md;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md, pass) => {
            id = requestIdOf(md.get(KEY)[0]);
            pass(stamp(md));
          },
        }),
      sendMetadata: (md, next) => next(stamp(md)),
      sendStatus: (status, next) => next({ ...status, metadata: stamp(status.metadata ?? new grpc.Metadata()) }),
    });
  };
}

/** The id of a call (set by the interceptor), for its log lines. */
export const callRequestId = (call: { metadata?: grpc.Metadata }): string | undefined => call.metadata?.get(KEY)[0]?.toString();
