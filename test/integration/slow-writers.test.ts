/**
 * Slow and idle clients cannot stop the writes of others: over real sockets,
 * a client that trickles its write body (a byte now and then, each pause far
 * under ASOF_BODY_IDLE_TIMEOUT_MS) no longer holds the write byte budget or
 * the write slots; a small write to another table answers 200 promptly, and
 * the trickler gets 408 ASOF_REQUEST_TIMEOUT once below the least rate
 * (counted in asof_body_timeouts_total). A chunked body takes budget as it
 * arrives, so chunked writers run together, and one that outgrows the room
 * left is refused 429 (writing nothing), not waited for.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { grpcAsof, grpc, type GrpcAsof } from './grpc-helpers.js';
import { until } from '../helpers.js';

const WINDOW_MS = 1000;
const MIN_RATE = 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw HTTP/1.1 client: what it received until the server closed the connection. */
function rawClient(port: number): { sock: net.Socket; answer: Promise<string>; closed: () => boolean } {
  const sock = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  sock.on('data', (d) => (text += d.toString()));
  sock.on('error', () => {});
  const answer = new Promise<string>((resolve) => sock.on('close', () => ((closed = true), resolve(text))));
  return { sock, answer, closed: () => closed };
}

/** Sends `text` every `everyMs` while the socket is open; returns a stop function. */
function trickle(sock: net.Socket, text: string, everyMs: number): () => void {
  const t = setInterval(() => (sock.destroyed ? clearInterval(t) : sock.write(text)), everyMs);
  return () => clearInterval(t);
}

const chunk = (s: string): string => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

describe('slow writers cannot stop the writes of others', () => {
  let asof: GrpcAsof;
  let port: number;
  const post = async (table: string, rows: unknown[]): Promise<{ status: number; body: any; ms: number }> => {
    const t0 = Date.now();
    const r = await fetch(`${asof.url}/tables/${table}/rows`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rows }) });
    return { status: r.status, body: await r.json(), ms: Date.now() - t0 };
  };
  const timeouts = async (reason: string): Promise<number> => {
    const text = await (await fetch(`${asof.url}/metrics`)).text();
    return Number(new RegExp(`^asof_body_timeouts_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
  };

  before(async () => {
    asof = await grpcAsof({ maxInFlightWrites: 4, maxQueueWaitMs: 8000, bodyRateWindowMs: WINDOW_MS, bodyMinBytesPerS: MIN_RATE, bodyMaxMs: 6000 });
    port = Number(new URL(asof.url).port);
    for (const t of ['kv', 'ev']) {
      const r = await asof.req('PUT', `/tables/${t}`, { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'x', type: 'float64' }] });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });
  after(() => asof.destroy());

  test('a chunked body trickled a space at a time does not stop a write to another table; the trickler gets 408 (slow) and writes nothing', async () => {
    const before = await timeouts('slow');
    const c = rawClient(port);
    c.sock.write('POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk('{"rows":[{"id":"trickled","x":1}'));
    const stop = trickle(c.sock, chunk(' '), 200);
    try {
      await sleep(100);
      const other = await post('ev', [{ id: 'e1', x: 1 }]);
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.ok(other.ms < 1000, `the write to another table waited ${other.ms} ms behind the trickler`);
      const text = await Promise.race([c.answer, sleep(4 * WINDOW_MS).then(() => 'no answer')]);
      assert.match(text, /^HTTP\/1\.1 408 /, text);
      const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
      assert.equal(body.error.code, 'ASOF_REQUEST_TIMEOUT');
      assert.equal(body.error.details.reason, 'slow');
      assert.match(body.error.message, /too slowly/);
      assert.equal(await timeouts('slow'), before + 1);
      assert.equal((await asof.req('GET', '/tables/kv/rows/trickled')).status, 404, 'the refused body wrote nothing');
    } finally {
      stop();
      c.sock.destroy();
    }
  });

  test('a declared 64 MiB body trickled a byte at a time holds the whole byte budget, but a small write passes at once (not charged to it), and the trickler gets 408 within about a window', async () => {
    const c = rawClient(port);
    c.sock.write(`POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n{"rows":[`);
    const stop = trickle(c.sock, ' ', 200);
    try {
      await sleep(100);
      assert.equal(asof.admission.gates.writes.activeBytes, 64 * 1024 * 1024, 'the declared body holds the whole budget');
      const other = await post('ev', [{ id: 'e2', x: 2 }]);
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.ok(other.ms < 500, `the write to another table waited ${other.ms} ms`);
      const text = await Promise.race([c.answer, sleep(3 * WINDOW_MS).then(() => 'no answer')]);
      assert.match(text, /^HTTP\/1\.1 408 /, text);
    } finally {
      stop();
      c.sock.destroy();
    }
  });

  test('as many trickling connections as there are write slots (a byte each now and then) do not stop writes for longer than about a window', async () => {
    const clients = Array.from({ length: 4 }, () => rawClient(port));
    const stops = clients.map((c) => {
      c.sock.write('POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      return trickle(c.sock, ' ', 200);
    });
    try {
      await until('all write slots taken', () => asof.admission.gates.writes.active === 4, 5000);
      const other = await post('ev', [{ id: 'e3', x: 3 }]);
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.ok(other.ms < 3 * WINDOW_MS, `the write to another table waited ${other.ms} ms`);
      for (const c of clients) assert.match(await c.answer, /^HTTP\/1\.1 408 /);
    } finally {
      stops.forEach((s) => s());
      clients.forEach((c) => c.sock.destroy());
    }
  });

  test('chunked writers are admitted together, each holding the budget its bytes need, and all are written', async () => {
    const clients = Array.from({ length: 4 }, (_, i) => {
      const c = rawClient(port);
      c.sock.write('POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk(`{"rows":[{"id":"c${i}",`));
      return c;
    });
    try {
      await until('four chunked writes in flight at once', () => asof.admission.gates.writes.active === 4, 3000);
      assert.ok(asof.admission.gates.writes.activeBytes <= 4 * 64 * 1024, `in flight: ${asof.admission.gates.writes.activeBytes} bytes`);
      clients.forEach((c) => c.sock.write(chunk('"x":5}]}') + '0\r\n\r\n'));
      for (const c of clients) assert.match(await c.answer, /^HTTP\/1\.1 200 /);
      for (let i = 0; i < 4; i++) assert.equal((await asof.req('GET', `/tables/kv/rows/c${i}`)).status, 200);
    } finally {
      clients.forEach((c) => c.sock.destroy());
    }
  });

  test('a body that keeps the rate across many windows is not cut', async () => {
    const rows = Array.from({ length: 300 }, (_, i) => ({ id: `s${i}`, x: i }));
    const body = JSON.stringify({ rows });
    const c = rawClient(port);
    c.sock.write(`POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`);
    // 400 bytes every 200 ms: 2,000 bytes a second, about twice the least rate, for several windows.
    const parts = body.match(/.{1,400}/g)!;
    assert.ok(parts.length * 200 > 2.5 * WINDOW_MS, `${parts.length} parts`);
    for (const p of parts) {
      c.sock.write(p);
      await sleep(200);
    }
    assert.match(await c.answer, /^HTTP\/1\.1 200 /);
  });

  test('gRPC: streams trickling tiny messages on every write slot are ended DEADLINE_EXCEEDED (slow) once writers wait; the REST write answers 200', async () => {
    const ended: Promise<grpc.ServiceError | null>[] = [];
    const stops: (() => void)[] = [];
    for (let s = 0; s < 4; s++) {
      ended.push(
        new Promise((resolve) => {
          const call = asof.ingest.WriteRows(new grpc.Metadata(), (err: grpc.ServiceError | null) => resolve(err));
          let n = 0;
          const t = setInterval(() => call.write({ table: 'kv', rows: [{ columns: { id: { string_value: `g${s}-${n++}` }, x: { double_value: 1 } } }] }), 200);
          stops.push(() => (clearInterval(t), call.end()));
        }),
      );
    }
    try {
      await until('all write slots taken by streams', () => asof.admission.gates.writes.active === 4, 5000);
      // Trickling for longer than a window, with nobody waiting: left open.
      await sleep(1.5 * WINDOW_MS);
      assert.equal(asof.admission.gates.writes.active, 4, 'slow streams nobody waits behind are left open');
      const other = await post('ev', [{ id: 'e4', x: 4 }]);
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.ok(other.ms < 2 * WINDOW_MS, `the write waited ${other.ms} ms behind trickling streams`);
      // One stream is ended for the one waiting writer; the others, nobody waiting behind them, go on.
      const err = await Promise.race([...ended, sleep(3 * WINDOW_MS).then(() => 'still open' as const)]);
      assert.ok(err && typeof err === 'object', String(err));
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
      const e = JSON.parse(String(err.metadata.get('asof-error')[0]));
      assert.equal(e.error.code, 'ASOF_REQUEST_TIMEOUT');
      assert.equal(e.error.details.details.reason, 'slow');
      assert.ok(e.error.details.written.count > 0, 'the messages before stay written');
    } finally {
      stops.forEach((s) => s());
    }
  });
});

describe('a body of unknown length that outgrows the byte budget', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ maxInFlightWriteBytes: 256 * 1024 });
    const r = await asof.req('PUT', '/tables/kv', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'pad', type: 'string' }] });
    assert.equal(r.status, 201);
  });
  after(() => asof.destroy());

  test('is refused 429 saying what holds the budget, writes nothing, and the body holding the budget is written', async () => {
    const port = Number(new URL(asof.url).port);
    const big = JSON.stringify({ rows: [{ id: 'declared', pad: 'p'.repeat(150 * 1024) }] });
    const a = rawClient(port);
    a.sock.write(`POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${big.length}\r\n\r\n${big.slice(0, 10)}`);
    await until('the declared body admitted', () => asof.admission.gates.writes.activeBytes === big.length, 3000);
    const b = rawClient(port);
    const grown = JSON.stringify({ rows: [{ id: 'chunked', pad: 'q'.repeat(150 * 1024) }] });
    b.sock.write('POST /tables/kv/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk(grown) + '0\r\n\r\n');
    const text = await b.answer;
    assert.match(text, /^HTTP\/1\.1 429 /, text);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error.code, 'ASOF_OVERLOADED');
    // In flight: the declared body (its bytes charged) and this one (its first 64 KiB, a small body's, not charged).
    assert.match(body.error.message, /2 at once \(limit 16\), holding 150(\.\d)? KiB of the 256 KiB byte budget; a body of unknown length outgrew/);
    assert.equal(body.error.details.inFlight, 2);
    assert.equal(body.error.details.inFlightBytes, big.length);
    a.sock.write(big.slice(10));
    assert.match(await a.answer, /^HTTP\/1\.1 200 /);
    assert.equal((await asof.req('GET', '/tables/kv/rows/chunked')).status, 404, 'the refused body wrote nothing');
    assert.equal((await asof.req('GET', '/tables/kv/rows/declared')).status, 200);
  });
});
