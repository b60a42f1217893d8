/**
 * Idle clients cannot stop writes: a request that holds a write slot and
 * stops sending its body (REST) or its next message (gRPC WriteRows) is ended
 * after ASOF_BODY_IDLE_TIMEOUT_MS with ASOF_REQUEST_TIMEOUT, and its slot goes
 * to the next writer. With one slot and no queue, each test first shows the
 * idle client holds the slot (another write is refused 429), then that the
 * write passes once the idle one was ended.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { grpcAsof, grpc, type GrpcAsof } from './grpc-helpers.js';
import { until } from '../helpers.js';

const IDLE_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with what a raw socket received until the server closed it (rejects after `ms`: the server never ended it). */
function answerOf(sock: net.Socket, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => reject(new Error(`no answer after ${ms} ms: the idle request was never ended (so far: ${JSON.stringify(text)})`)), ms);
    sock.on('data', (d) => (text += d.toString()));
    sock.on('error', () => {});
    sock.on('close', () => (clearTimeout(t), resolve(text)));
  });
}

describe('idle writers free their write slot', () => {
  let asof: GrpcAsof;
  const write = (id: string) => asof.req('POST', '/tables/users/rows', { rows: [{ id, score: 1 }] });
  before(async () => {
    asof = await grpcAsof({ maxInFlightWrites: 1, maxQueuedWrites: 0, bodyIdleTimeoutMs: IDLE_MS });
    assert.equal((await asof.req('PUT', '/tables/users', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64' }] })).status, 201);
  });
  after(() => asof.destroy());

  test('REST: a body declared and never sent is answered 408 ASOF_REQUEST_TIMEOUT, and another client can write', async () => {
    const u = new URL(asof.url);
    const sock = net.connect(Number(u.port), u.hostname);
    const answer = answerOf(sock);
    sock.write('POST /tables/users/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"rows":');
    await sleep(50);
    const during = await write('a');
    assert.equal(during.status, 429, `the stalled request holds the only slot: ${JSON.stringify(during.body)}`);
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /"code":"ASOF_REQUEST_TIMEOUT"/);
    const afterwards = await write('b');
    assert.equal(afterwards.status, 200, JSON.stringify(afterwards.body));
  });

  test('REST: a request answered before its body was read keeps its keep-alive timeout once the body has come (the idle connection is not kept open for good)', async () => {
    const sockets: net.Socket[] = [];
    const onConnection = (s: net.Socket): void => void sockets.push(s);
    asof.http.server.on('connection', onConnection);
    const u = new URL(asof.url);
    const sock = net.connect(Number(u.port), u.hostname);
    sock.on('error', () => {});
    try {
      let text = '';
      sock.on('data', (d) => (text += d.toString()));
      await new Promise((r) => sock.once('connect', r));
      const body = 'a,b\n' + 'x,1\n'.repeat(5000);
      // An import to a table that does not exist: answered 404 without reading the body.
      sock.write(`POST /tables/nope/import HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
      await until('the 404', () => /^HTTP\/1\.1 404 /.test(text), 5000);
      const server = sockets.at(-1)!;
      sock.write(body.slice(10));
      await sleep(200);
      // Node's keep-alive timeout, set when the answer went: what closes the connection once it idles.
      assert.ok(server.timeout !== undefined && server.timeout > 0, `the server socket's timeout is ${server.timeout}`);
    } finally {
      asof.http.server.off('connection', onConnection);
      sock.destroy();
    }
  });

  test('REST: a slow body that keeps sending is not cut (the deadline is a pause, not a total)', async () => {
    const u = new URL(asof.url);
    const sock = net.connect(Number(u.port), u.hostname);
    const answer = answerOf(sock);
    const body = JSON.stringify({ rows: [{ id: 'slow', score: 2 }] });
    sock.write(`POST /tables/users/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`);
    // Longer than the deadline in total, each pause well under it.
    for (const ch of body.match(/.{1,4}/g)!) {
      sock.write(ch);
      await sleep(IDLE_MS / 6);
    }
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 200 /, text);
  });

  test('gRPC: a WriteRows stream that stops sending ends DEADLINE_EXCEEDED, its written messages reported; another client can write', async () => {
    const status = new Promise<grpc.ServiceError | null>((resolve) => {
      const c = asof.ingest.WriteRows(new grpc.Metadata(), (err: grpc.ServiceError | null) => resolve(err));
      c.write({ table: 'users', rows: [{ columns: { id: { string_value: 'g1' }, score: { double_value: 3 } } }] });
      // ...and nothing more, never ended.
    });
    // The stream is open and admitted once its first message is written.
    for (let i = 0; i < 200 && (await asof.req('GET', '/tables/users/rows/g1')).status !== 200; i++) await sleep(10);
    const during = await write('c');
    assert.equal(during.status, 429, `the idle stream holds the only slot: ${JSON.stringify(during.body)}`);
    const err = await Promise.race([status, sleep(10_000).then(() => 'still open after 10 s' as const)]);
    assert.notEqual(err, 'still open after 10 s');
    assert.ok(err && typeof err === 'object');
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(err.metadata.get('asof-error-code')[0], 'ASOF_REQUEST_TIMEOUT');
    const body = JSON.parse(String(err.metadata.get('asof-error')[0]));
    assert.equal(body.error.details.written.count, 1, 'the first message stays written');
    const afterwards = await write('d');
    assert.equal(afterwards.status, 200, JSON.stringify(afterwards.body));
  });
});
