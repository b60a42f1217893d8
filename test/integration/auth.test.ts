/**
 * Scoped API keys (src/access.ts) on REST and gRPC: every route declares the
 * access it needs; a key without it gets 403 ASOF_PERMISSION_DENIED naming the
 * missing scope, no key (or a wrong one) 401. The REST sweep walks the routes
 * the server itself reports, so a route added later is covered without being
 * listed here; the table below pins the scopes the issue names.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ApiKeys, bearerKey, parseKeyFile, parseKeyList, SCOPES, type Scope } from '../../src/access.js';
import { loadConfig } from '../../src/config.js';
import { declaredRoutes } from '../../src/http/server.js';
import { killAll, startChild } from '../child-server.js';
import { tempDir } from '../helpers.js';
import { call, grpcAsof, type GrpcAsof } from './grpc-helpers.js';

/** One key per scope, one with two, and one listed without scopes (has all). */
const KEYS = 'kr:read,kw:write,kd:decide,ka:admin,ku:audit,krw:read+write,kall';
const KEY_OF: Record<Scope, string> = { read: 'kr', write: 'kw', decide: 'kd', admin: 'ka', audit: 'ku' };
const bearer = (k: string): Record<string, string> => ({ authorization: `Bearer ${k}` });
const md = (k?: string): grpc.Metadata => {
  const m = new grpc.Metadata();
  if (k) m.set('authorization', `Bearer ${k}`);
  return m;
};

/** The scope the issue assigns to each route that exists today (routes added later are held by the sweep and the /audit rule). */
const EXPECTED: Record<string, string> = {
  'PUT /tables/:table': 'admin',
  'GET /tables': 'read',
  'GET /tables/:table': 'read',
  'POST /tables/:table/rows': 'write',
  'GET /tables/:table/rows/:key': 'read',
  'GET /tables/:table/changelog': 'read',
  'POST /tables/:table/import': 'write',
  'PUT /feature-views/:view': 'admin',
  'GET /feature-views': 'read',
  'GET /feature-views/:view': 'read',
  'PUT /feature-services/:service': 'admin',
  'GET /feature-services': 'read',
  'GET /feature-services/:service': 'read',
  'GET /features/:entity': 'read',
  'POST /features': 'read',
  'POST /get-online-features': 'read',
  'POST /training-sets': 'read',
  'GET /training-sets/:id': 'read',
  'GET /training-sets/:id/data': 'read',
  'DELETE /training-sets/:id': 'admin',
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /metrics': 'authenticated',
  'GET /openapi.json': 'public',
};

test('key lists and files: scopes parsed, a key without scopes has all, unknown scopes refused without echoing the key', () => {
  assert.deepEqual(parseKeyList('a:read+write, b ,c:'), [
    { key: 'a', scopes: ['read', 'write'] },
    { key: 'b', scopes: [...SCOPES] },
    { key: 'c', scopes: [...SCOPES] },
  ]);
  assert.throws(() => parseKeyList('s3cretkey:read+reed'), (e: Error) => /unknown scope "reed"/.test(e.message) && !e.message.includes('s3cretkey'));
  assert.deepEqual(parseKeyFile('# ops keys\n\nk1 read write\nk2   audit # auditors\nk3\n'), [
    { key: 'k1', scopes: ['read', 'write'] },
    { key: 'k2', scopes: ['audit'] },
    { key: 'k3', scopes: [...SCOPES] },
  ]);
  assert.throws(() => loadConfig({ ASOF_API_KEYS: 'x:everything' }), /ASOF_API_KEYS: .*unknown scope "everything"/);
  assert.equal(bearerKey('bearer abc', undefined), 'abc');
  assert.equal(bearerKey('BEARER abc', 'other'), 'abc');
  assert.equal(bearerKey('Basic abc', 'xk'), 'xk');
  assert.equal(bearerKey(undefined, undefined), undefined);
  const keys = new ApiKeys({ keys: parseKeyList('kr:read,kall') });
  assert.deepEqual([...keys.identify('kr')!.scopes], ['read']);
  assert.equal(keys.identify('k'), undefined, 'a prefix of a key is not the key');
  assert.equal(keys.identify('kr '), undefined);
  assert.equal(new ApiKeys().enabled, false);
});

describe('REST: every route declares its access, and the key must grant it', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ apiKeys: KEYS } as never);
  });
  after(() => asof.destroy());

  test('the routes the issue names declare its scopes; /audit/* needs audit; nothing is left open by accident', () => {
    const routes = declaredRoutes(asof.http);
    assert.ok(routes.length >= Object.keys(EXPECTED).length);
    const got = Object.fromEntries(routes.map((r) => [`${r.method} ${r.url}`, r.access]));
    for (const [route, access] of Object.entries(EXPECTED)) assert.equal(got[route], access, route);
    for (const r of routes) {
      if (r.url.startsWith('/audit')) assert.equal(r.access, 'audit', `${r.method} ${r.url}`);
      if (r.access === 'public') assert.ok(['/healthz', '/readyz', '/openapi.json'].includes(r.url), `${r.method} ${r.url} is public: add it here only if it must be`);
    }
  });

  test('each scoped route: 401 without a key or with a wrong one, 403 naming the scope with any other scope, admitted with its own', async () => {
    const routes = declaredRoutes(asof.http).filter((r) => (SCOPES as readonly string[]).includes(r.access));
    for (const r of routes) {
      const url = r.url.replace(/:[A-Za-z]+/g, 'x').replace('*', 'x');
      const name = `${r.method} ${r.url}`;
      const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : {};
      const none = await asof.req(r.method, url, body);
      assert.equal(none.status, 401, `${name} without a key`);
      assert.equal(none.body.error.code, 'ASOF_UNAUTHENTICATED');
      assert.equal((await asof.req(r.method, url, body, bearer('nope'))).status, 401, `${name} with a wrong key`);
      for (const scope of SCOPES) {
        const res = await asof.req(r.method, url, body, bearer(KEY_OF[scope]));
        if (scope === r.access) {
          assert.ok(res.status !== 401 && res.status !== 403, `${name} with the ${scope} key: ${res.status} ${JSON.stringify(res.body)}`);
        } else {
          assert.equal(res.status, 403, `${name} with the ${scope} key`);
          assert.equal(res.body.error.code, 'ASOF_PERMISSION_DENIED');
          assert.equal(res.body.error.details.scope, r.access);
          assert.match(res.body.error.message, new RegExp(`"${r.access}"`));
        }
      }
      const all = await asof.req(r.method, url, body, bearer('kall'));
      assert.ok(all.status !== 401 && all.status !== 403, `${name} with a key listed without scopes`);
    }
  });

  test('a write key writes but cannot read; read+write does both; Bearer in any case and x-api-key are accepted', async () => {
    const def = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'n', type: 'int64', nullable: true }] };
    assert.equal((await asof.req('PUT', '/tables/acc', def, bearer('kw'))).status, 403);
    assert.equal((await asof.req('PUT', '/tables/acc', def, bearer('ka'))).status, 201);
    const w = await asof.req('POST', '/tables/acc/rows', { rows: [{ id: 'a', n: 1 }] }, bearer('kw'));
    assert.equal(w.status, 200);
    assert.equal((await asof.req('GET', '/tables/acc/rows/a', undefined, bearer('kw'))).status, 403);
    assert.equal((await asof.req('GET', '/tables/acc/rows/a', undefined, { authorization: 'bearer krw' })).body.row.n, 1);
    assert.equal((await asof.req('GET', '/tables/acc/rows/a', undefined, { authorization: 'BEARER kr' })).status, 200);
    assert.equal((await asof.req('GET', '/tables/acc/rows/a', undefined, { 'x-api-key': 'kr' })).status, 200);
    const refused = await asof.req('POST', '/tables/acc/rows', { rows: [{ id: 'b', n: 2 }] }, bearer('kr'));
    assert.equal(refused.status, 403);
    assert.equal((await asof.req('GET', '/tables/acc', undefined, bearer('kr'))).body.latestOffset, 0, 'the refused write wrote nothing');
  });

  test('/healthz and /readyz stay open; /metrics needs any valid key; /docs and /openapi.json stay open', async () => {
    assert.equal((await asof.req('GET', '/healthz')).status, 200);
    assert.equal((await asof.req('GET', '/readyz')).status, 200);
    assert.equal((await asof.req('GET', '/metrics')).status, 401);
    assert.equal((await asof.req('GET', '/metrics', undefined, bearer('kd'))).status, 200);
    assert.equal((await asof.req('GET', '/openapi.json')).status, 200);
    assert.equal((await asof.req('GET', '/docs/json')).status, 200);
    assert.equal((await asof.req('GET', '/no/such/route')).status, 401, 'unknown paths reveal nothing to strangers');
    assert.equal((await asof.req('GET', '/no/such/route', undefined, bearer('kr'))).status, 404);
  });
});

test('ASOF_METRICS_OPEN=true serves /metrics without a key; other routes still need one', async () => {
  const asof = await grpcAsof({ apiKeys: KEYS, metricsOpen: 'true' } as never);
  try {
    assert.equal((await asof.req('GET', '/metrics')).status, 200);
    assert.equal((await asof.req('GET', '/tables')).status, 401);
  } finally {
    await asof.destroy();
  }
});

describe('gRPC: each method checks the same scopes', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ apiKeys: KEYS } as never);
    await asof.req('PUT', '/tables/t', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'n', type: 'int64', nullable: true }] }, bearer('ka'));
    await asof.req('PUT', '/feature-views/v', { source: 't', entity: 'id', features: [{ name: 'n', column: 'n' }] }, bearer('ka'));
  });
  after(() => asof.destroy());

  const writeRows = (k?: string) =>
    new Promise<{ err?: grpc.ServiceError; res?: any }>((resolve) => {
      const s = asof.ingest.WriteRows(md(k), (err: grpc.ServiceError | null, res: unknown) => resolve(err ? { err } : { res }));
      s.write({ table: 't', rows: [{ columns: { id: { string_value: 'g' }, n: { int64_value: 5 } } }] });
      s.end();
    });
  const follow = (k?: string) =>
    new Promise<grpc.StatusObject | 'data'>((resolve) => {
      const s = asof.changelog.Follow({ table: 't' }, md(k));
      s.on('data', () => {
        resolve('data');
        s.cancel();
      });
      s.on('status', resolve);
      s.on('error', () => undefined);
    });

  test('read methods need read, WriteRows needs write; PERMISSION_DENIED names the scope, UNAUTHENTICATED without a key', async () => {
    const readCalls: [string, () => Promise<{ err?: grpc.ServiceError }>][] = [
      ['OnlineService.GetOnlineFeatures', () => call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'g' }], view: 'v' }, md(current))],
      ['Feast GetOnlineFeatures', () => call(asof.feast, 'GetOnlineFeatures', { features: { val: ['v:n'] }, entities: { id: { val: [{ string_val: 'g' }] } } }, md(current))],
      ['Feast GetFeastServingInfo', () => call(asof.feast, 'GetFeastServingInfo', {}, md(current))],
    ];
    let current: string | undefined;
    for (const [name, fn] of readCalls) {
      current = undefined;
      assert.equal((await fn()).err?.code, grpc.status.UNAUTHENTICATED, `${name} without a key`);
      for (const k of ['kw', 'ka', 'kd', 'ku']) {
        current = k;
        const r = await fn();
        assert.equal(r.err?.code, grpc.status.PERMISSION_DENIED, `${name} with ${k}`);
        assert.equal(r.err!.metadata.get('asof-error-code')[0], 'ASOF_PERMISSION_DENIED');
        assert.match(r.err!.details, /"read"/);
      }
      current = 'kr';
      assert.equal((await fn()).err, undefined, `${name} with the read key`);
    }
    assert.equal((await writeRows()).err?.code, grpc.status.UNAUTHENTICATED);
    for (const k of ['kr', 'ka', 'kd', 'ku']) {
      const r = await writeRows(k);
      assert.equal(r.err?.code, grpc.status.PERMISSION_DENIED, `WriteRows with ${k}`);
      assert.match(r.err!.details, /"write"/);
    }
    assert.equal((await asof.req('GET', '/tables/t', undefined, bearer('kr'))).body.latestOffset, -1, 'refused streams wrote nothing');
    assert.equal((await writeRows('kw')).err, undefined);
    assert.equal((await writeRows('kall')).err, undefined);
    const denied = await follow('kw');
    assert.ok(denied !== 'data' && denied.code === grpc.status.PERMISSION_DENIED, 'Follow with the write key');
    assert.equal(await follow('kr'), 'data');
  });
});

test('key configuration is checked as README says: a repeated key, an empty key, a forbidden character, a list of no key are refused, naming the entry, never the key', async () => {
  const refused: [string, RegExp][] = [
    ['k1sec:read,k1sec:write', /ASOF_API_KEYS: .*key #2: the same key as key #1/],
    ['k1sec,other:read, k1sec:admin', /ASOF_API_KEYS: .*key #3: the same key as key #1/],
    ['k 2sec:read', /ASOF_API_KEYS: .*key #1: the key contains a space/],
    ['ok:read,k\t2sec', /ASOF_API_KEYS: .*key #2: the key contains a tab/],
    ['a:b2sec:read', /ASOF_API_KEYS: .*key #1: the key contains ":"/],
    ['ok,k\u00012sec:read', /ASOF_API_KEYS: .*key #2: the key contains a control character/],
    [':admin', /ASOF_API_KEYS: .*key #1: the key is empty/],
    [',', /ASOF_API_KEYS: .*names no key/],
    [' , ,', /ASOF_API_KEYS: .*names no key/],
  ];
  for (const [text, why] of refused) {
    assert.throws(
      () => loadConfig({ ASOF_API_KEYS: text }),
      (e: Error) => why.test(e.message) && !/sec/.test(e.message),
      `ASOF_API_KEYS=${JSON.stringify(text)}`,
    );
  }
  assert.throws(() => parseKeyFile('# keys\nfksec read\n\nfksec admin\n'), (e: Error) => /line 4: the same key as line 2/.test(e.message) && !e.message.includes('fksec'));
  assert.throws(() => parseKeyFile('fk,sec read\n'), /line 1: the key contains ","/);
  assert.throws(() => parseKeyFile('fk:sec read\n'), /line 1: the key contains ":"/);

  const dir = await tempDir('asof-ops-keys-');
  try {
    const file = join(dir.path, 'keys');
    // A key both in ASOF_API_KEYS and in the file: refused at start, naming the file's line and the list's entry.
    await writeFile(file, 'filesec read\nboth2sec admin\n');
    assert.throws(
      () => new ApiKeys({ keys: parseKeyList('lonesec:read,both2sec:read'), file }),
      (e: Error) => e.message.includes(file) && /ASOF_API_KEYS_FILE.*line 2: the same key as ASOF_API_KEYS' key #2/.test(e.message) && !/sec/.test(e.message.replace(file, '')),
    );
    // A reload that finds a repeated key keeps the keys in force.
    await writeFile(file, 'fkey read\n');
    const keys = new ApiKeys({ file });
    await writeFile(file, 'fkey read\nfkey admin\n');
    assert.throws(() => keys.reload(), /line 2: the same key as line 1/);
    assert.deepEqual([...keys.identify('fkey')!.scopes], ['read'], 'the previous keys stay in force');
  } finally {
    await dir.cleanup();
  }
});

describe('a key file, re-read on SIGHUP (real process)', () => {
  after(killAll);

  test('scopes change and keys come and go without a restart; a broken file keeps the old keys; keys never reach the log', async () => {
    const dir = await tempDir('asof-keys-');
    const file = join(dir.path, 'keys');
    await writeFile(file, '# key scopes\nalphaKEY111 read\nbetaKEY222 admin\n');
    const child = await startChild(join(dir.path, 'data'), { ASOF_API_KEYS_FILE: file, LOG_LEVEL: 'info' });
    try {
      await child.ready();
      const req = (method: string, path: string, k: string, body?: unknown) =>
        fetch(child.url + path, { method, headers: { authorization: `Bearer ${k}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      assert.equal((await req('PUT', '/tables/e', 'betaKEY222', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }] })).status, 201);
      const rows = { rows: [{ ts: 1 }] };
      const denied = await req('POST', '/tables/e/rows', 'alphaKEY111', rows);
      assert.equal(denied.status, 403);
      assert.equal(((await denied.json()) as any).error.details.scope, 'write');
      assert.equal((await req('GET', '/tables/e', 'gammaKEY333')).status, 401);

      await writeFile(file, 'alphaKEY111 read write\ngammaKEY333\n');
      child.proc.kill('SIGHUP');
      const deadline = Date.now() + 10_000;
      while ((await req('POST', '/tables/e/rows', 'alphaKEY111', rows)).status !== 200) {
        assert.ok(Date.now() < deadline, 'the reloaded scopes never took effect');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await req('GET', '/tables/e', 'gammaKEY333')).status, 200, 'a new key listed without scopes has all');
      assert.equal((await req('GET', '/tables/e', 'betaKEY222')).status, 401, 'a removed key stops working');

      // A key listed twice (its second line's scopes would be lost) is refused like a broken file, naming the line.
      await writeFile(file, 'gammaKEY333 read\nalphaKEY111 read\ngammaKEY333 admin\n');
      child.proc.kill('SIGHUP');
      const repeated = Date.now() + 10_000;
      while (!/line 3: the same key as line 1[^\n]*API keys not reloaded/.test(child.output())) {
        assert.ok(Date.now() < repeated, `a repeated key is reported: ${child.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await req('POST', '/tables/e/rows', 'alphaKEY111', rows)).status, 200, 'the previous keys stay in force');
      assert.equal((await req('PUT', '/tables/e', 'gammaKEY333', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }] })).status, 200);

      await writeFile(file, 'alphaKEY111 read sudo\n');
      child.proc.kill('SIGHUP');
      const logged = Date.now() + 10_000;
      while ((child.output().match(/API keys not reloaded/g) ?? []).length < 2) {
        assert.ok(Date.now() < logged, 'a broken key file is reported');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await req('GET', '/tables/e', 'gammaKEY333')).status, 200, 'the previous keys stay in force');
      for (const k of ['alphaKEY111', 'betaKEY222', 'gammaKEY333']) assert.ok(!child.output().includes(k), `the log never shows ${k}`);
    } finally {
      await child.kill('SIGTERM');
      await dir.cleanup();
    }
  });
});
