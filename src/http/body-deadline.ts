import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Admission } from '../admission.js';

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
 */
export function bodyDeadline(req: FastifyRequest, reply: FastifyReply, admission: Admission): void {
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
    void reply.header('connection', 'close');
    reply.send(admission.bodyStalled('the request body stalled: no bytes arrived'));
  };
  socket.setTimeout(idleMs);
  // Node emits 'timeout' on the request while its body is incomplete (and destroys the socket when nobody listens).
  raw.on('timeout', onTimeout);
  raw.once('end', () => {
    raw.off('timeout', onTimeout);
    // Answered before its body was read (a 404, 409 or 415 that refused it unread): Node has set its keep-alive
    // timeout on the socket since, which clearing would leave an idle connection open for good.
    if (!reply.sent) socket.setTimeout(0);
  });
}
