/**
 * `asof.v1.ChangelogService/Follow`: a table's changelog over a server stream,
 * the records already committed from `from_offset`, then live ones.
 *
 * Each record once, in offset order (engine/follow.ts, shared with the SSE
 * route). Writes wait for the client (flow control, 'drain'): a paused or slow
 * client holds no records on the server (what it has not taken is read back
 * from the changelog once it does), and one that goes away stops the read. A
 * commit is never held up by a follower. Each follow holds a place of the
 * follows gate (ASOF_MAX_FOLLOWS, shared with SSE) until it ends.
 */
import type * as grpc from '@grpc/grpc-js';
import { AsofError } from '../errors.js';
import type { ChangeName } from '../engine/arrow-codec.js';
import { followChangelog } from '../engine/follow.js';
import type { ChangeRecord } from '../engine/table.js';
import { protoTimestamp } from '../feast/values.js';
import type { Services } from '../services.js';
import { callerOfCall, serverStream, toGrpcStatus, type CallContext } from './calls.js';
import { BadJsonValue, fromPbValue, toPbRow, type PbValue } from './values.js';

interface FollowRequest {
  table?: string;
  from_offset?: string;
  key?: PbValue;
}

const CHANGE_TYPE: Record<ChangeName, string> = { '+I': 'INSERT', '-U': 'UPDATE_BEFORE', '+U': 'UPDATE_AFTER', '-D': 'DELETE' };

/** Ends live follows when the server shuts down. */
export type FollowRegistry = Set<(err: AsofError) => void>;

export function changelogService(ctx: CallContext, services: Pick<Services, 'engine'>, follows: FollowRegistry): grpc.UntypedServiceImplementation {
  return {
    Follow: serverStream(ctx, 'read', async (call: grpc.ServerWritableStream<FollowRequest, unknown>) => {
      const req = call.request;
      const t = services.engine.readable(req.table ?? '', callerOfCall(call));
      const from = Number(req.from_offset ?? 0);
      if (!Number.isSafeInteger(from) || from < 0) throw new AsofError('ASOF_INVALID_ARGUMENT', `from_offset must be >= 0, got ${req.from_offset}`, [{ field: 'from_offset', reason: 'negative' }]);
      let key: string | undefined;
      if (req.key) {
        const k = keyValue(req.key);
        key = t.schema.parseKey(typeof k === 'boolean' ? String(k) : k);
      }

      // A place among the follows (RESOURCE_EXHAUSTED when all are taken), freed however the follow ends.
      const release = ctx.admission.enterFollow();
      const encode = (r: ChangeRecord) => ({ offset: r.offset, change_type: CHANGE_TYPE[r.changeType], commit_time: protoTimestamp(r.commitTime), row: toPbRow(t.schema, r.row) });
      const stop = followChangelog(t, { from, key }, {
        send: (r) => call.write(encode(r)),
        drained: () => new Promise((resolve) => call.once('drain', resolve)),
        fail: (e) => {
          follows.delete(end);
          release();
          if (!call.cancelled && !call.writableEnded) call.emit('error', toGrpcStatus(e, ctx.logger, call));
        },
      });
      const gone = (): void => {
        follows.delete(end);
        stop();
        release();
      };
      const end = (err: AsofError): void => {
        gone();
        call.emit('error', toGrpcStatus(err, ctx.logger));
      };
      follows.add(end);
      call.on('cancelled', gone);
      call.on('close', gone);
      call.on('error', gone);
    }),
  };
}

/** The key a follow is limited to; a Value that cannot be read (no kind set, json_value not JSON) is INVALID_ARGUMENT naming `key`. */
function keyValue(v: PbValue): unknown {
  try {
    return fromPbValue(v);
  } catch (e) {
    if (!(e instanceof BadJsonValue)) throw e;
    throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid key: ${e.message}`, [{ field: 'key', reason: e.message }]);
  }
}
