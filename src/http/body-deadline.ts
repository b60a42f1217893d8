import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Admission, BodyTimeout } from '../admission.js';

/**
 * A request that holds a work slot must keep sending its body: after
 * `admission.bodyIdleMs` without a byte it is answered 408
 * ASOF_REQUEST_TIMEOUT (`Connection: close`), which frees its slot ('close',
 * `hold`). Without this, a client that declares a body and never sends it
 * holds its slot for as long as it keeps the connection open. Measured as
 * socket inactivity (Node's socket timeout, refreshed by every byte), so an
 * upload of any length passes while it keeps sending; a streamed upload that
 * the server itself has stopped reading (its data waits in the request
 * stream) is never timed out. The socket's timeout is ours only while the body
 * is read: asof sets none otherwise (Fastify's connectionTimeout is 0), and
 * Node sets its keep-alive timeout after the answer.
 *
 * A pause limit alone never trips on a trickle (a byte every few seconds), so
 * the body's pace is watched too (`watchPace`): `inMemory` bodies (parsed
 * whole, not streamed) also have a total deadline.
 */
export function bodyDeadline(req: FastifyRequest, reply: FastifyReply, admission: Admission, inMemory = false): void {
  const raw = req.raw;
  if (raw.complete || (raw.headers['transfer-encoding'] === undefined && !(Number(raw.headers['content-length']) > 0))) return;
  const socket = raw.socket;
  // Requests injected without a socket (tests, light-my-request) have their whole body already.
  if (typeof socket?.setTimeout !== 'function') return;
  const idleMs = admission.bodyIdleMs;
  const onTimeout = (): void => {
    // Answered already (the body was refused unread): what Node does with an idle socket when nobody listens.
    if (reply.sent) return void socket.destroy();
    // The server is behind, not the client: its data waits to be read.
    if (raw.readableLength > 0) return void socket.setTimeout(idleMs);
    raw.off('timeout', onTimeout);
    socket.setTimeout(0);
    endBody(reply, admission, 'idle');
  };
  const p = watchPace(raw, reply, socket, admission, inMemory);
  socket.setTimeout(idleMs);
  // Node emits 'timeout' on the request while its body is incomplete (and destroys the socket when nobody listens).
  raw.on('timeout', onTimeout);
  raw.once('end', () => {
    // At once, not at the next look: the entry holds the request (and, through the reply, its parsed body).
    if (p) paced.delete(p);
    raw.off('timeout', onTimeout);
    // Answered before its body was read (a 404, 409 or 415 that refused it unread): Node has set its keep-alive
    // timeout on the socket since, which clearing would leave an idle connection open for good.
    if (!reply.sent) socket.setTimeout(0);
  });
}

/** Answers 408 ASOF_REQUEST_TIMEOUT to a request whose body is unfinished (Connection: close: the rest is never read). */
function endBody(reply: FastifyReply, admission: Admission, why: BodyTimeout, got?: number): void {
  if (reply.sent) return;
  void reply.header('connection', 'close');
  reply.send(admission.bodyStalled('the request body', why, got));
}

interface Paced {
  raw: IncomingMessage;
  reply: FastifyReply;
  socket: Socket;
  admission: Admission;
  /** The current window's start, ms, and the socket's bytesRead then. */
  markAt: number;
  markBytes: number;
  /** When the whole body must have come, ms (Infinity: no total deadline). */
  endBy: number;
}

/** Bodies being read by admitted requests, looked at by one timer every PACE_TICK_MS while any are. */
const paced = new Set<Paced>();
let ticker: NodeJS.Timeout | undefined;
const PACE_TICK_MS = 250;

/**
 * Watches the pace of one admitted body: at the end of each window of
 * `pace.windowMs` (the first is the grace) the bytes that came in it (the
 * socket's `bytesRead`, which Node counts anyway: nothing is done per chunk)
 * must average `pace.minBytesPerS`; an in-memory body must be whole within
 * `pace.maxMs`. Else it is answered 408 and its slot and bytes freed. Time
 * while the server is behind (data waits to be read, or the stream is
 * paused) does not count against the client: its window starts again.
 */
function watchPace(raw: IncomingMessage, reply: FastifyReply, socket: Socket, admission: Admission, inMemory: boolean): Paced | undefined {
  const pace = admission.pace;
  if (pace.minBytesPerS === 0 && !inMemory) return undefined;
  const now = Date.now();
  const p: Paced = { raw, reply, socket, admission, markAt: now, markBytes: socket.bytesRead, endBy: inMemory ? now + pace.maxMs : Infinity };
  paced.add(p);
  ticker ??= setInterval(checkPace, PACE_TICK_MS).unref();
  return p;
}

function checkPace(): void {
  const now = Date.now();
  for (const p of paced) {
    const { raw, reply, socket } = p;
    if (raw.complete || reply.sent || raw.destroyed) {
      paced.delete(p);
      continue;
    }
    if (now >= p.endBy) {
      paced.delete(p);
      endBody(reply, p.admission, 'too_long');
      continue;
    }
    const { minBytesPerS, windowMs } = p.admission.pace;
    if (raw.readableLength > 0 || raw.isPaused()) {
      p.markAt = now;
      p.markBytes = socket.bytesRead;
    } else if (now - p.markAt >= windowMs) {
      const got = socket.bytesRead - p.markBytes;
      if (got * 1000 < minBytesPerS * (now - p.markAt)) {
        paced.delete(p);
        endBody(reply, p.admission, 'slow', got);
        continue;
      }
      p.markAt = now;
      p.markBytes = socket.bytesRead;
    }
  }
  if (paced.size === 0) {
    clearInterval(ticker);
    ticker = undefined;
  }
}
