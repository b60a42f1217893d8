/**
 * Changelog follows are bounded work: at most ASOF_MAX_FOLLOWS open at once
 * over SSE and gRPC together, refused beyond with the same catalogue code on
 * both (429 / RESOURCE_EXHAUSTED, ASOF_OVERLOADED), a place freed when its
 * follow ends; and a paused follower holds little memory on the server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { grpcAsof, grpc, type Client, type GrpcAsof } from './grpc-helpers.js';
import { heapAfterGc } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An SSE follow on a real socket: its status once the head arrives, and `close`. */
function sse(url: string): { head: Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Promise<string> }>; close(): void } {
  const req = http.get(url, { headers: { accept: 'text/event-stream' } });
  const head = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Promise<string> }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      const body = new Promise<string>((r) => res.on('end', () => r(text)).on('close', () => r(text)));
      resolve({ status: res.statusCode!, headers: res.headers, body });
    });
    req.on('error', reject);
  });
  return { head, close: () => req.destroy() };
}

/** A gRPC follow: resolves `first` with its first record, `status` with its end. */
function grpcFollow(client: Client, request: unknown) {
  const call = client.Follow(request);
  const first = new Promise<unknown>((resolve) => call.once('data', resolve));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {});
  return { call, first, status };
}

describe('changelog follows are bounded (ASOF_MAX_FOLLOWS)', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ maxFollows: 2 });
    assert.equal((await asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'p', type: 'string' }] })).status, 201);
    assert.equal((await asof.req('POST', '/tables/t/rows', { rows: [{ id: 'a', p: 'x' }] })).status, 200);
  });
  after(() => asof.destroy());

  test('beyond the cap SSE answers 429 and gRPC RESOURCE_EXHAUSTED, both ASOF_OVERLOADED; an ended follow frees its place', async () => {
    const url = `${asof.url}/tables/t/changelog?from=0`;
    const one = sse(url);
    assert.equal((await one.head).status, 200);
    const two = grpcFollow(asof.changelog, { table: 't', from_offset: '0' });
    await two.first;

    const refusedSse = sse(url);
    const h = await refusedSse.head;
    assert.equal(h.status, 429);
    assert.equal(h.headers['retry-after'], '1');
    assert.equal(JSON.parse(await h.body).error.code, 'ASOF_OVERLOADED');
    const refusedGrpc = await grpcFollow(asof.changelog, { table: 't', from_offset: '0' }).status;
    assert.equal(refusedGrpc.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(refusedGrpc.metadata.get('asof-error-code')[0], 'ASOF_OVERLOADED');
    assert.equal(refusedGrpc.metadata.get('retry-after')[0], '1');

    // The gRPC follow ends: its place goes to a new SSE follow (the server learns of the cancel a moment later).
    two.call.cancel();
    await two.status;
    let again: Awaited<ReturnType<typeof sse>['head']> | undefined;
    let three: ReturnType<typeof sse> | undefined;
    for (let i = 0; i < 100; i++) {
      three = sse(url);
      again = await three.head;
      if (again.status === 200) break;
      three.close();
      await sleep(20);
    }
    assert.equal(again?.status, 200, 'a place was freed by the ended gRPC follow');
    // And an SSE follow that ends frees its place for a gRPC one.
    one.close();
    let status: number | undefined;
    for (let i = 0; i < 100; i++) {
      const f = grpcFollow(asof.changelog, { table: 't', from_offset: '0' });
      const r = await Promise.race([f.first.then(() => 'record' as const), f.status]);
      f.call.cancel();
      if (r === 'record') {
        status = 0;
        break;
      }
      status = r.code;
      await sleep(20);
    }
    assert.equal(status, 0, 'a place was freed by the closed SSE follow');
    three?.close();
  });
});

describe('a paused follower holds little memory', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof();
  });
  after(() => asof.destroy());

  test('20 paused gRPC followers of one large commit: under 1 MB each', async () => {
    await asof.req('PUT', '/tables/big', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'p', type: 'string' }] });
    // One commit of 4 MB: a follower that stopped inside it held the whole frame, decoded.
    const rows = Array.from({ length: 800 }, (_, i) => ({ id: `k${i}`, p: `${i}`.padEnd(5000, 'x') }));
    assert.equal((await asof.req('POST', '/tables/big/rows', { rows })).status, 200);
    const used = () => {
      const heap = heapAfterGc();
      return heap + process.memoryUsage().external;
    };
    const before = used();
    const N = 20;
    const follows = Array.from({ length: N }, () => {
      const f = grpcFollow(asof.changelog, { table: 'big', from_offset: '0' });
      f.call.pause();
      return f;
    });
    for (let i = 0; i < 500 && asof.admission.gates.follows.active < N; i++) await sleep(10);
    assert.equal(asof.admission.gates.follows.active, N);
    // Long enough for every follower's buffer to fill and its read to be let go.
    await sleep(2500);
    const perFollower = (used() - before) / N;
    for (const f of follows) f.call.cancel();
    process.stdout.write(`# ${(perFollower / 2 ** 20).toFixed(2)} MB per paused follower\n`);
    assert.ok(perFollower < 1 << 20, `each paused follower held ${(perFollower / 2 ** 20).toFixed(2)} MB`);
  });
});
