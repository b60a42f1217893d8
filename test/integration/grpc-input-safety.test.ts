/**
 * Issue 13 over gRPC: request bytes that are not the method's message are
 * INVALID_ARGUMENT (finding 15, was INTERNAL), and a WriteRows message whose
 * values cannot be stored exactly (6,000-deep json, bytes that are not UTF-8,
 * a lone surrogate) is refused without stopping the table (findings 1, 6, 7).
 * Messages are encoded by hand here, so the test controls every byte.
 * Also: such bytes sent without a key are refused for the key, as REST
 * refuses them, and a Timestamp whose nanos protobuf does not define is
 * refused wherever one is read (rows, GetEntityState.at, Search.as_of).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { asofError, call, grpc, grpcAsof, stream, type GrpcAsof } from './grpc-helpers.js';

const P = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 's', type: 'string' },
    { name: 'j', type: 'json' },
  ],
};

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
/** A length-delimited field: tag (field << 3 | 2), length, bytes. */
const field = (no: number, bytes: Buffer | string): Buffer => {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return Buffer.concat([varint((no << 3) | 2), varint(b.length), b]);
};
/** asof.v1.Row with `columns` as name → encoded asof.v1.Value. */
const row = (columns: Record<string, Buffer>): Buffer => Buffer.concat(Object.entries(columns).map(([k, v]) => field(1, Buffer.concat([field(1, k), field(2, v)]))));
const int64Value = (n: number): Buffer => Buffer.concat([varint((4 << 3) | 0), varint(n)]);
const stringValue = (b: Buffer | string): Buffer => field(7, b);
const jsonValue = (text: string): Buffer => field(9, text);
/** asof.v1.WriteRowsRequest: table = 1, rows = 3, ndjson = 4. */
const writeRows = (table: string, rows: Buffer[], ndjson?: string): Buffer => Buffer.concat([field(1, table), ...rows.map((r) => field(3, r)), ...(ndjson ? [field(4, ndjson)] : [])]);

interface Outcome {
  code: number;
  asofCode?: string;
  message?: string;
}

describe('gRPC: undecodable requests and values that cannot be stored exactly', () => {
  let asof: GrpcAsof;
  let client: grpc.Client;
  before(async () => {
    asof = await grpcAsof();
    client = new grpc.Client(asof.address, grpc.credentials.createInsecure());
    assert.equal((await asof.req('PUT', '/tables/p', P)).status, 201);
  });
  after(async () => {
    client.close();
    await asof.destroy();
  });

  const raw = (b: Buffer): Buffer => b;
  const outcome = (err: grpc.ServiceError | null): Outcome => {
    if (!err) return { code: 0 };
    const body = err.metadata?.get('asof-error')[0];
    const e = body ? JSON.parse(String(body)).error : undefined;
    return { code: err.code, asofCode: e?.code, message: e?.message };
  };
  const unary = (path: string, bytes: Buffer): Promise<Outcome> =>
    new Promise((resolve) => client.makeUnaryRequest(path, raw, raw, bytes, (err) => resolve(outcome(err))));
  const ingest = (messages: Buffer[]): Promise<Outcome> =>
    new Promise((resolve) => {
      const call = client.makeClientStreamRequest('/asof.v1.IngestService/WriteRows', raw, raw, (err) => resolve(outcome(err)));
      for (const m of messages) call.write(m);
      call.end();
    });
  const latest = async (): Promise<number> => (await asof.req('GET', '/tables/p')).body.latestOffset;

  test('15: request bytes that are not protobuf are INVALID_ARGUMENT in the catalogue, on every service', async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    for (const path of ['/asof.v1.OnlineService/GetOnlineFeatures', '/feast.serving.ServingService/GetOnlineFeatures', '/asof.v1.ChangelogService/Follow']) {
      const r =
        path.endsWith('Follow')
          ? await new Promise<Outcome>((resolve) => {
              const call = client.makeServerStreamRequest(path, raw, raw, garbage);
              call.on('error', (e: grpc.ServiceError) => resolve(outcome(e)));
              call.on('data', () => undefined);
              call.on('end', () => resolve({ code: 0 }));
            })
          : await unary(path, garbage);
      assert.equal(r.code, grpc.status.INVALID_ARGUMENT, `${path}: ${JSON.stringify(r)}`);
      assert.equal(r.asofCode, 'ASOF_INVALID_ARGUMENT', path);
    }
    const w = await ingest([garbage]);
    assert.equal(w.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(w));
    // A string field whose length runs past the end of the message.
    const truncated = Buffer.concat([varint((1 << 3) | 2), varint(50), Buffer.from('p')]);
    assert.equal((await ingest([truncated])).code, grpc.status.INVALID_ARGUMENT);
    assert.equal(await latest(), -1);
  });

  test('1 over gRPC: a json_value nested 6,000 deep is INVALID_ARGUMENT naming row and column; the table keeps writing', async () => {
    const before = await latest();
    const deep = '['.repeat(6000) + ']'.repeat(6000);
    const r = await ingest([writeRows('p', [row({ id: int64Value(1) }), row({ id: int64Value(2), j: jsonValue(deep) })])]);
    assert.equal(r.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(r));
    assert.equal(r.asofCode, 'ASOF_INVALID_ROW');
    assert.match(r.message!, /row 1: column "j": .*nested more than 100 levels/);
    assert.equal(await latest(), before);
    const ok = await ingest([writeRows('p', [row({ id: int64Value(1), s: stringValue('fine') })])]);
    assert.equal(ok.code, 0, JSON.stringify(ok));
    assert.equal((await asof.req('GET', '/tables/p/rows/1')).body.row.s, 'fine');
  });

  test('6, 7 over gRPC: string bytes that are not UTF-8, and a lone surrogate, are INVALID_ARGUMENT and write nothing', async () => {
    const before = await latest();
    const bad = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
    const r = await ingest([writeRows('p', [row({ id: int64Value(3), s: stringValue(bad) })])]);
    assert.equal(r.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(r));
    assert.match(r.message!, /not valid UTF-8/);
    // UTF-8 has no encoding of a lone surrogate; CESU-style bytes (ED A0 80) are invalid UTF-8 too.
    assert.equal((await ingest([writeRows('p', [row({ id: int64Value(3), s: stringValue(Buffer.from([0xed, 0xa0, 0x80])) })])])).code, grpc.status.INVALID_ARGUMENT);
    const nd = await ingest([writeRows('p', [], '{"id":3,"s":"\\ud800"}\n')]);
    assert.equal(nd.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(nd));
    assert.equal(nd.asofCode, 'ASOF_INVALID_ROW');
    const j = await ingest([writeRows('p', [row({ id: int64Value(3), j: jsonValue('{"x":1e999}') })])]);
    assert.equal(j.asofCode, 'ASOF_INVALID_ROW', JSON.stringify(j));
    assert.equal(await latest(), before);
    // Valid multi-byte text is stored exactly.
    assert.equal((await ingest([writeRows('p', [row({ id: int64Value(3), s: stringValue('é€😀') })])])).code, 0);
    assert.equal((await asof.req('GET', '/tables/p/rows/3')).body.row.s, 'é€😀');
  });
});

describe('gRPC: the key before the bytes, and Timestamps protobuf does not define', () => {
  let asof: GrpcAsof;
  let client: grpc.Client;
  const admin = { authorization: 'Bearer ka' };
  before(async () => {
    asof = await grpcAsof({ apiKeys: 'kr:read,ka' } as never);
    client = new grpc.Client(asof.address, grpc.credentials.createInsecure());
    const table = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp' }] };
    assert.equal((await asof.req('PUT', '/tables/t', table, admin)).status, 201);
  });
  after(async () => {
    client.close();
    await asof.destroy();
  });
  const md = (key?: string): grpc.Metadata => {
    const m = new grpc.Metadata();
    if (key) m.set('authorization', `Bearer ${key}`);
    return m;
  };
  const raw = (b: Buffer): Buffer => b;
  const calls = async (code: number): Promise<number> => {
    const text = String((await asof.req('GET', '/metrics', undefined, admin)).body);
    const line = text.split('\n').find((l) => l.startsWith(`asof_grpc_call_duration_ms_count{method="asof.v1.OnlineService/GetOnlineFeatures",code="${code}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  test('bytes that are not the message, without a key: UNAUTHENTICATED as over REST, and timed', async () => {
    const bad = Buffer.from([0x0a, 0xff, 0xff]);
    const send = (key?: string) => new Promise<grpc.ServiceError | null>((resolve) => client.makeUnaryRequest('/asof.v1.OnlineService/GetOnlineFeatures', raw, raw, bad, md(key), (e) => resolve(e)));
    const before = await calls(grpc.status.UNAUTHENTICATED);
    const none = await send();
    assert.equal(none?.code, grpc.status.UNAUTHENTICATED, none?.details);
    assert.equal(String(none?.metadata.get('asof-error-code')[0]), 'ASOF_UNAUTHENTICATED');
    assert.equal(await calls(grpc.status.UNAUTHENTICATED), before + 1, 'the refused call is in asof_grpc_call_duration_ms');
    // With a key that may call the method, the bytes are what is wrong.
    const keyed = await send('kr');
    assert.equal(keyed?.code, grpc.status.INVALID_ARGUMENT, keyed?.details);
  });

  test('nanos outside 0..999,999,999 are refused, naming the row and column or the field; nothing is written', async () => {
    const ts = (seconds: number, nanos: number) => ({ timestamp_value: { seconds: String(seconds), nanos } });
    for (const nanos of [-1, 1_000_000_000]) {
      const w = await stream(asof.ingest, 'WriteRows', [{ table: 't', rows: [{ columns: { id: { string_value: 'ok' } } }, { columns: { id: { string_value: 'x' }, ts: ts(0, nanos) } }] }], md('ka'));
      assert.equal(w.err?.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(w.res));
      assert.equal(asofError(w.err!).code, 'ASOF_INVALID_ROW');
      assert.match(w.err!.details, /row 1: column "ts": .*nanos/);
      const at = await call(asof.audit, 'GetEntityState', { entity: 'x', view: 'v', at: { seconds: '0', nanos } }, md('ka'));
      assert.equal(at.err?.code, grpc.status.INVALID_ARGUMENT, at.err?.details);
      assert.match(at.err!.details, /invalid at: .*nanos/);
      const asOf = await call(asof.vectors, 'Search', { table: 't', vector: [1], k: 1, as_of: { seconds: '0', nanos } }, md('kr'));
      assert.equal(asOf.err?.code, grpc.status.INVALID_ARGUMENT, asOf.err?.details);
      assert.match(asOf.err!.details, /invalid as_of: .*nanos/);
    }
    assert.equal((await asof.req('GET', '/tables/t', undefined, admin)).body.latestOffset, -1);
    // In range, before 1970 too: seconds -1 and 999 ms is 1969-12-31T23:59:59.999Z, exactly.
    const ok = await stream(asof.ingest, 'WriteRows', [{ table: 't', rows: [{ columns: { id: { string_value: 'y' }, ts: ts(-1, 999_000_000) } }] }], md('ka'));
    assert.equal(ok.err, undefined, ok.err?.details);
    assert.equal((await asof.req('GET', '/tables/t/rows/y', undefined, admin)).body.row.ts, '1969-12-31T23:59:59.999Z');
  });
});
