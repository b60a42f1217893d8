import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import type { Gate, Release } from '../admission.js';

/** What a body of unknown length holds of the write byte budget when admitted, bytes (at most ASOF_MAX_BODY_BYTES). */
export const UNKNOWN_LENGTH_START = 64 * 1024;

/** True for a body the write byte budget is charged for as it arrives: no declared length (chunked). */
export const unknownLength = (req: FastifyRequest): boolean => req.headers['content-length'] === undefined && req.headers['transfer-encoding'] !== undefined;

/**
 * The preParsing step of a write route for a body of unknown length: the
 * request was admitted as a body of UNKNOWN_LENGTH_START bytes (a small
 * one, not charged to the budget: GateLimits.smallBytes), not as the
 * largest body allowed (which made one chunked body take the
 * whole budget and every other write wait behind it, however small it
 * turned out), and is charged as its bytes arrive, doubling what it holds
 * (at most ASOF_MAX_BODY_BYTES) so a growing body asks the gate a few times,
 * not per chunk. When the growth does not fit beside the other bodies in
 * flight the body is refused at once, 429 ASOF_OVERLOADED with
 * `Connection: close`, nothing of it written: waiting instead could leave
 * bodies that each hold part of the budget waiting for each other. What
 * it took is given back with its slot, when the answer is written or the
 * connection goes away.
 */
export function meterUnknownLength(reply: FastifyReply, gate: Gate, maxBodyBytes: number, payload: RequestPayload): RequestPayload {
  const releases: Release[] = [];
  reply.raw.once('close', () => releases.splice(0).forEach((r) => r()));
  let held = Math.min(UNKNOWN_LENGTH_START, maxBodyBytes);
  // Admitted as a small body (GateLimits.smallBytes): nothing charged until it grows past that.
  let charged = held <= (gate.limits.smallBytes ?? 0) ? 0 : held;
  let got = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      got += chunk.length;
      meter.receivedEncodedLength = got;
      // Beyond the body limit the parser refuses it (413): no more budget is asked for.
      while (got > held && held < maxBodyBytes) {
        const next = Math.min(2 * held, maxBodyBytes);
        const r = gate.tryCharge(next - charged, charged);
        if (r === undefined) {
          void reply.header('connection', 'close');
          return cb(gate.overloaded('bytes'));
        }
        releases.push(r);
        held = charged = next;
      }
      cb(null, chunk);
    },
  }) as Transform & { receivedEncodedLength: number };
  meter.receivedEncodedLength = 0;
  payload.on('error', (e) => meter.destroy(e));
  return payload.pipe(meter);
}
