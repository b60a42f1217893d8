/**
 * gRPC request ids, REST's rule over gRPC: a call's `x-request-id` metadata (a
 * sane one the caller sent, or a new one) comes back in the answer's headers
 * on success and in its trailers on failure, on every kind of method.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { grpcAsof, call, stream, grpc, type GrpcAsof } from './grpc-helpers.js';

let asof: GrpcAsof;
before(async () => {
  asof = await grpcAsof();
});
after(() => asof.destroy());

const withId = (id: string): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('x-request-id', id);
  return md;
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const idIn = (md: grpc.Metadata | undefined): string | undefined => md?.get('x-request-id')[0]?.toString();

test('a unary call answers with the caller\'s x-request-id in its headers, or a new one; an insane one is replaced', async () => {
  const given = await call(asof.feast, 'GetFeastServingInfo', {}, withId('trace-grpc-1'));
  assert.ok(given.res, String(given.err));
  assert.equal(idIn(given.headers), 'trace-grpc-1');
  const [a, b] = await Promise.all([call(asof.feast, 'GetFeastServingInfo', {}), call(asof.feast, 'GetFeastServingInfo', {})]);
  assert.match(idIn(a.headers) ?? '', UUID);
  assert.match(idIn(b.headers) ?? '', UUID);
  assert.notEqual(idIn(a.headers), idIn(b.headers));
  const insane = await call(asof.feast, 'GetFeastServingInfo', {}, withId('has space'));
  assert.match(idIn(insane.headers) ?? '', UUID);
});

test('a failing call carries the id in its trailers: unary, client stream, and a message that does not decode', async () => {
  const unary = await call(asof.online, 'GetOnlineFeatures', { features: ['nope:f'], entities: [{ key: 'e' }] }, withId('trace-grpc-2'));
  assert.ok(unary.err);
  assert.equal(idIn(unary.err.metadata), 'trace-grpc-2');
  const streamed = await stream(asof.ingest, 'WriteRows', [{ table: 'missing', rows: [{ columns: {} }] }], withId('trace-grpc-3'));
  assert.equal(streamed.err?.code, grpc.status.NOT_FOUND, String(streamed.err));
  assert.equal(idIn(streamed.err?.metadata), 'trace-grpc-3');
  const fresh = await stream(asof.ingest, 'WriteRows', [{ table: 'missing', rows: [{ columns: {} }] }]);
  assert.match(idIn(fresh.err?.metadata) ?? '', UUID);
  // Bytes that are no WriteRowsRequest are refused by an interceptor before any handler: the id is there too.
  const bad = await new Promise<grpc.ServiceError>((resolve) => {
    const client = new grpc.Client(asof.address, grpc.credentials.createInsecure());
    const c = client.makeClientStreamRequest('/asof.v1.IngestService/WriteRows', (b: Buffer) => b, (b: Buffer) => b, withId('trace-grpc-4'), (err) => {
      client.close();
      resolve(err!);
    });
    c.write(Buffer.from([0x0a, 0x05, 0xff, 0xfe]));
    c.end();
  });
  assert.equal(bad.code, grpc.status.INVALID_ARGUMENT, String(bad));
  assert.equal(idIn(bad.metadata), 'trace-grpc-4');
});
