/**
 * `asof.v1.ChangelogService/Follow`: a table's changelog over a server stream,
 * the records already committed from `from_offset`, then live ones.
 *
 * No gap, no duplicate: the subscription to new commits starts before the
 * catch-up scan; commits arriving meanwhile are buffered and sent after it,
 * skipping any offset already sent. During catch-up the stream waits for the
 * client (flow control); live records are written as they are committed
 * (a commit is never held up by a slow follower; grpc buffers for it).
 */
import type * as grpc from '@grpc/grpc-js';
import { AsofError } from '../errors.js';
import { CHANGE_NAMES, type ChangeName } from '../engine/arrow-codec.js';
import type { ChangeRecord } from '../engine/table.js';
import { protoTimestamp } from '../feast/values.js';
import type { Services } from '../services.js';
import { serverStream, toGrpcStatus, type CallContext } from './calls.js';
import { fromPbValue, toPbRow, type PbValue } from './values.js';

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
      const t = services.engine.table(req.table ?? '');
      const from = Number(req.from_offset ?? 0);
      if (!Number.isSafeInteger(from) || from < 0) throw new AsofError('ASOF_INVALID_ARGUMENT', `from_offset must be >= 0, got ${req.from_offset}`, [{ field: 'from_offset', reason: 'negative' }]);
      let key: string | undefined;
      if (req.key) {
        const k = fromPbValue(req.key);
        key = t.schema.parseKey(typeof k === 'boolean' ? String(k) : k);
      }

      let next = from;
      let live = false;
      let stopped = false;
      const buffered: ChangeRecord[] = [];
      const encode = (r: ChangeRecord) => ({ offset: r.offset, change_type: CHANGE_TYPE[r.changeType], commit_time: protoTimestamp(r.commitTime), row: toPbRow(t.schema, r.row) });
      /** Sends a record unless already sent; false when the client's buffer is full. */
      const send = (r: ChangeRecord): boolean => {
        if (r.offset < next || stopped) return true;
        next = r.offset + 1;
        return call.write(encode(r));
      };
      const unsubscribe = t.subscribe((c) => {
        for (let i = 0; i < c.rows.length; i++) {
          const r: ChangeRecord = { offset: c.firstOffset + i, changeType: CHANGE_NAMES[c.changes[i]], commitTime: c.commitTime, row: c.rows[i] };
          if (key !== undefined && t.schema.keyOf(r.row) !== key) continue;
          if (live) send(r);
          else buffered.push(r);
        }
      });
      let wake: (() => void) | undefined;
      const stop = (): void => {
        if (stopped) return;
        stopped = true;
        unsubscribe();
        follows.delete(end);
        wake?.();
      };
      const end = (err: AsofError): void => {
        stop();
        call.emit('error', toGrpcStatus(err, ctx.logger));
      };
      follows.add(end);
      call.on('cancelled', stop);
      call.on('close', stop);
      call.on('error', stop);
      try {
        for await (const r of t.scan({ fromOffset: from, key })) {
          if (stopped) return;
          if (!send(r)) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              call.once('drain', resolve);
            });
            wake = undefined;
          }
        }
        for (const r of buffered) send(r);
        buffered.length = 0;
        live = true;
      } catch (e) {
        stop();
        throw e;
      }
    }),
  };
}
