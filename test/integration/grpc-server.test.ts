import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import type { Type } from 'protobufjs';
import { AsofError, ERROR_CATALOGUE, type ErrorCode } from '../../src/errors.js';
import { grpcAsof, call, stream, asofError, bearer, grpc, type GrpcAsof } from './grpc-helpers.js';

const reflectionProtos = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), 'build/proto');

function reflectionClient(address: string, version: 'v1' | 'v1alpha') {
  const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { includeDirs: [reflectionProtos], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.grpc.reflection[version].ServerReflection(address, grpc.credentials.createInsecure());
}

const FileDescriptorProto = (createRequire(import.meta.url)('protobufjs/ext/descriptor') as { FileDescriptorProto: Type }).FileDescriptorProto;

/**
 * What strict descriptor linkers (grpcurl's) need from reflection: every type
 * reference fully qualified and defined in the file itself or in a file it
 * declares as a dependency (and that was sent along); map entries named
 * "<Field>Entry"; the service present with its methods.
 */
function assertLinkable(files: any[], service: string): void {
  const defined = new Map<string, string>();
  const refs: { file: string; ref: string; where: string }[] = [];
  const walk = (file: any, m: any, scope: string): void => {
    const fqn = `${scope}.${m.name}`;
    defined.set(fqn, file.name);
    for (const e of m.enumType ?? []) defined.set(`${fqn}.${e.name}`, file.name);
    for (const f of m.field ?? []) if (f.typeName) refs.push({ file: file.name, ref: f.typeName, where: `${fqn}.${f.name}` });
    for (const n of m.nestedType ?? []) {
      if (n.options?.mapEntry) assert.match(n.name, /^[A-Z][A-Za-z0-9]*Entry$/, `${fqn}: map entry ${n.name}`);
      walk(file, n, fqn);
    }
  };
  for (const file of files) {
    for (const m of file.messageType ?? []) walk(file, m, `.${file.package}`);
    for (const e of file.enumType ?? []) defined.set(`.${file.package}.${e.name}`, file.name);
    for (const s of file.service ?? []) {
      defined.set(`.${file.package}.${s.name}`, file.name);
      for (const m of s.method ?? []) refs.push({ file: file.name, ref: m.inputType, where: `${s.name}.${m.name}` }, { file: file.name, ref: m.outputType, where: `${s.name}.${m.name}` });
    }
  }
  assert.ok(defined.has(`.${service}`), `${service} is described`);
  const deps = new Map(files.map((f) => [f.name, new Set<string>(f.dependency ?? [])]));
  for (const { file, ref, where } of refs) {
    assert.ok(ref.startsWith('.'), `${where}: "${ref}" is not fully qualified`);
    const home = defined.get(ref);
    assert.ok(home, `${where}: "${ref}" is defined in none of the files sent`);
    assert.ok(home === file || deps.get(file)!.has(home!), `${where}: "${ref}" lives in ${home}, which ${file} does not import`);
  }
}

function reflect(client: any, request: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const s = client.ServerReflectionInfo();
    s.on('data', (r: any) => {
      resolve(r);
      s.end();
    });
    s.on('error', reject);
    s.write(request);
  });
}

describe('the gRPC server: status mapping, reflection, shutdown', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof();
    await asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'x', type: 'float64' }] });
    await asof.services.registry.defineView('v', { source: 't', entity: 'id', features: [{ name: 'x', column: 'x' }] });
    // A view whose states live in the online store (a pk view is read from its table: see materializer.ts).
    const tl = await asof.req('PUT', '/tables/tl', { kind: 'log', eventTime: 'at', columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'at', type: 'timestamp', nullable: false }, { name: 'x', type: 'float64' }] });
    assert.ok(tl.status < 300, JSON.stringify(tl.body));
    await asof.services.registry.defineView('vl', { source: 'tl', entity: 'id', features: [{ name: 'x', column: 'x' }] });
  });
  after(() => asof.destroy());

  test('every catalogue error reaches a client with its gRPC status, message and asof error body', async () => {
    const online = asof.services.online;
    const plan = online.plan;
    try {
      for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
        online.plan = () => {
          throw new AsofError(code, `boom ${code} — ünïcode`, [{ field: 'f', reason: 'r' }]);
        };
        const { err } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], view: 'v' });
        // grpc-js's own status table is the reference for the numbers.
        assert.equal(err?.code, grpc.status[ERROR_CATALOGUE[code].grpc], code);
        assert.equal(err!.details, `boom ${code} — ünïcode`);
        assert.equal(err!.metadata.get('asof-error-code')[0], code);
        assert.deepEqual(asofError(err!), { code, message: `boom ${code} — ünïcode`, details: [{ field: 'f', reason: 'r' }] });
      }
      online.plan = () => {
        throw new TypeError('something unexpected');
      };
      const { err } = await call(asof.online, 'GetOnlineFeatures', { entities: [], view: 'v' });
      assert.deepEqual([err?.code, err?.details, asofError(err!).code], [grpc.status.INTERNAL, 'internal error', 'ASOF_INTERNAL'], 'unexpected errors do not leak their text');
    } finally {
      online.plan = plan;
    }
    // Spot checks against the numbers of the gRPC spec.
    assert.deepEqual(
      (['ASOF_INVALID_ROW', 'ASOF_TABLE_NOT_FOUND', 'ASOF_CONFLICT', 'ASOF_SCHEMA_CONFLICT', 'ASOF_UNAUTHENTICATED', 'ASOF_PERMISSION_DENIED', 'ASOF_OVERLOADED', 'ASOF_BACKEND_UNAVAILABLE'] as ErrorCode[]).map((c) => new AsofError(c, '').grpcStatus),
      [3, 5, 6, 9, 16, 7, 8, 14],
    );
  });

  test('an online store that fails answers UNAVAILABLE (retriable), on asof.v1 and Feast alike', async () => {
    // Without the synchronous fast path every read goes to the (failing) asynchronous one.
    const store = asof.services.onlineStore;
    const { readEncoded, readEncodedSync } = store;
    store.readEncodedSync = undefined;
    store.readEncoded = async () => {
      throw new Error('connection refused');
    };
    try {
      const a = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], view: 'vl' });
      assert.equal(a.err?.code, grpc.status.UNAVAILABLE);
      assert.equal(asofError(a.err!).code, 'ASOF_BACKEND_UNAVAILABLE');
      const f = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['vl:x'] }, entities: { id: { val: [{ string_val: 'a' }] } } });
      assert.equal(f.err?.code, grpc.status.UNAVAILABLE);
    } finally {
      store.readEncoded = readEncoded;
      store.readEncodedSync = readEncodedSync;
    }
  });

  test('reflection lists asof\'s services and Feast\'s, and describes them (v1 and v1alpha)', async () => {
    for (const version of ['v1', 'v1alpha'] as const) {
      const client = reflectionClient(asof.address, version);
      try {
        const list = await reflect(client, { list_services: '' });
        const names = list.list_services_response.service.map((s: any) => s.name);
        for (const s of ['asof.v1.OnlineService', 'asof.v1.IngestService', 'asof.v1.ChangelogService', 'feast.serving.ServingService']) assert.ok(names.includes(s), `${version}: ${s} in ${names}`);
        for (const service of ['asof.v1.OnlineService', 'asof.v1.IngestService', 'asof.v1.ChangelogService', 'feast.serving.ServingService']) {
          const file = await reflect(client, { file_containing_symbol: service });
          const files = file.file_descriptor_response.file_descriptor_proto.map((b: Buffer) => FileDescriptorProto.toObject(FileDescriptorProto.decode(b)));
          assertLinkable(files, service);
        }
      } finally {
        client.close();
      }
    }
  });
});

describe('the gRPC server with API keys', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ apiKeys: 'k1,k2' } as never);
    await asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }] }, { authorization: 'Bearer k1' });
  });
  after(() => asof.destroy());

  test('every service requires "authorization: Bearer <key>"; UNAUTHENTICATED otherwise', async () => {
    const none = await call(asof.feast, 'GetFeastServingInfo', {});
    assert.equal(none.err?.code, grpc.status.UNAUTHENTICATED);
    assert.equal(asofError(none.err!).code, 'ASOF_UNAUTHENTICATED');
    const wrong = await call(asof.feast, 'GetFeastServingInfo', {}, bearer('k3'));
    assert.equal(wrong.err?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await call(asof.feast, 'GetFeastServingInfo', {}, bearer('k2'))).err, undefined);
    const ingest = await stream(asof.ingest, 'WriteRows', [{ table: 't', rows: [{ columns: { id: { string_value: 'a' } } }] }]);
    assert.equal(ingest.err?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await asof.req('GET', '/tables/t/changelog')).body.records, undefined, 'REST is guarded by the same keys');
    assert.equal((await asof.req('GET', '/tables/t/changelog', undefined, { authorization: 'Bearer k1' })).body.records.length, 0, 'the refused stream wrote nothing');
    const ok = await stream(asof.ingest, 'WriteRows', [{ table: 't', rows: [{ columns: { id: { string_value: 'a' } } }] }], bearer('k1'));
    assert.equal(ok.err, undefined);
    const status = await new Promise<grpc.StatusObject>((resolve) => asof.changelog.Follow({ table: 't' }).on('status', resolve).on('error', () => undefined));
    assert.equal(status.code, grpc.status.UNAUTHENTICATED);
    const online = await call(asof.online, 'GetOnlineFeatures', { entities: [], view: 'v' });
    assert.equal(online.err?.code, grpc.status.UNAUTHENTICATED, 'auth is checked before anything else');
  });

  test('reflection stays open, like /openapi.json', async () => {
    const client = reflectionClient(asof.address, 'v1');
    try {
      const list = await reflect(client, { list_services: '' });
      assert.ok(list.list_services_response.service.length >= 4);
    } finally {
      client.close();
    }
  });
});

describe('shutdown', () => {
  test('closing asof ends live follows with UNAVAILABLE and stops the gRPC server', async () => {
    const asof = await grpcAsof();
    await asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }] });
    const follow = asof.changelog.Follow({ table: 't' });
    follow.on('error', () => undefined);
    const status = new Promise<grpc.StatusObject>((resolve) => follow.on('status', resolve));
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await asof.destroy();
    assert.ok(performance.now() - started < 4500, 'a live follow does not hold shutdown up (the grace period is 5 s)');
    const s = await status;
    assert.equal(s.code, grpc.status.UNAVAILABLE);
    assert.equal(s.metadata.get('asof-error-code')[0], 'ASOF_NOT_READY');
  });

  test('port 0 picks a free port per server; both run side by side', async () => {
    const [a, b] = await Promise.all([grpcAsof(), grpcAsof()]);
    try {
      assert.ok(a.grpcPort! > 0 && b.grpcPort! > 0 && a.grpcPort !== b.grpcPort);
      assert.equal((await call(b.feast, 'GetFeastServingInfo', {})).err, undefined);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });
});
