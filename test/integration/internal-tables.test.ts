/**
 * asof's internal tables (names starting `_asof`: the decision log
 * `_asof_decisions`) hold what `/audit/*` guards: served values, tokens, chain
 * heads, view definitions. Reading one needs the audit scope on every path
 * that names a table (engine.readable): REST rows, changelog and its SSE
 * follow, describe and list, gRPC Follow, training-set entity rows, vector
 * search, and a feature view's source; and /metrics gives their per-table
 * series only to such a key, as GET /tables lists them. Without keys nothing
 * changes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { asofError, bearer as grpcBearer, grpc, grpcAsof, type GrpcAsof } from './grpc-helpers.js';

/** r reads; u reads and audits; ad only administers; all has every scope. */
const KEYS = 'r:read,u:read+audit,ad:admin,all';
const bearer = (k: string): Record<string, string> => ({ authorization: `Bearer ${k}` });
const TABLE = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'n', type: 'int64' }] };
const VIEW = { source: 't', entity: 'id', features: [{ name: 'n', column: 'n' }] };

async function withDecision(asof: GrpcAsof, headers: Record<string, string> = {}): Promise<void> {
  const must = (r: { status: number; body: unknown }) => assert.ok(r.status < 300, JSON.stringify(r.body));
  must(await asof.req('PUT', '/tables/t', TABLE, headers));
  must(await asof.req('POST', '/tables/t/rows', { rows: [{ id: 'x', n: 7 }] }, headers));
  must(await asof.req('PUT', '/feature-views/v', VIEW, headers));
  must(await asof.req('GET', '/features/x?view=v&decision=q1', undefined, headers));
}

/** The outcome of a gRPC Follow: 'data' once a record arrives, else the status it ended with. */
function follow(asof: GrpcAsof, table: string, key?: string): Promise<'data' | grpc.StatusObject> {
  return new Promise((resolve) => {
    const s = asof.changelog.Follow({ table }, key ? grpcBearer(key) : new grpc.Metadata());
    s.on('data', () => {
      resolve('data');
      s.cancel();
    });
    s.on('status', resolve);
    s.on('error', () => undefined);
  });
}

function denied(res: { status: number; body: any }, what: string): void {
  assert.equal(res.status, 403, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.code, 'ASOF_PERMISSION_DENIED', what);
  assert.equal(res.body.error.details.scope, 'audit', what);
  assert.ok(!JSON.stringify(res.body).includes('"q1"'), `${what}: the answer holds nothing of the decision`);
}

describe('internal tables with API keys: the audit scope reads them, read alone does not', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ apiKeys: KEYS } as never);
    await withDecision(asof, bearer('all'));
  });
  after(() => asof?.destroy());

  test('REST rows, changelog (page and SSE), describe: 403 for read, the decision for read+audit', async () => {
    const urls = ['/tables/_asof_decisions', '/tables/_asof_decisions/rows/q1', '/tables/_asof_decisions/changelog?from=0'];
    for (const url of urls) denied(await asof.req('GET', url, undefined, bearer('r')), `GET ${url} with read`);
    denied(await asof.req('GET', urls[2], undefined, { ...bearer('r'), accept: 'text/event-stream' }), 'SSE follow with read');
    // Refused before the name is looked up: a table that does not exist is no different.
    denied(await asof.req('GET', '/tables/_asof_nothing', undefined, bearer('r')), 'an internal name that names no table');
    assert.equal((await asof.req('GET', '/tables/_asof_nothing', undefined, bearer('u'))).status, 404);

    const d = await asof.req('GET', urls[0], undefined, bearer('u'));
    assert.equal(d.status, 200);
    assert.equal(d.body.name, '_asof_decisions');
    const row = await asof.req('GET', urls[1], undefined, bearer('u'));
    assert.equal(row.status, 200);
    assert.equal(row.body.row.id, 'q1');
    const log = await asof.req('GET', urls[2], undefined, bearer('u'));
    assert.equal(log.status, 200);
    assert.deepEqual(log.body.records.map((r: any) => r.row.id), ['q1']);
  });

  test('GET /tables lists internal tables only to a key with the audit scope', async () => {
    const names = async (k: string) => (await asof.req('GET', '/tables', undefined, bearer(k))).body.tables.map((t: any) => t.name);
    assert.deepEqual(await names('r'), ['t']);
    assert.deepEqual(await names('u'), ['_asof_decisions', 't']);
  });

  test('gRPC ChangelogService/Follow: PERMISSION_DENIED for read, records for read+audit', async () => {
    const r = await follow(asof, '_asof_decisions', 'r');
    assert.ok(r !== 'data', 'the read key was sent a decision');
    assert.equal(r.code, grpc.status.PERMISSION_DENIED);
    assert.equal(asofError(r as grpc.ServiceError).details.scope, 'audit');
    assert.equal(await follow(asof, '_asof_decisions', 'u'), 'data');
  });

  test('training-set entity rows and vector search naming the decision log: 403 for read', async () => {
    const ts = { entities: { table: '_asof_decisions' }, features: ['v:n'] };
    denied(await asof.req('POST', '/training-sets', ts, bearer('r')), 'training set from the decision log with read');
    const rows = await asof.req('POST', '/training-sets', ts, bearer('u'));
    assert.equal(rows.status, 200, JSON.stringify(rows.body));
    assert.equal(rows.body.rows[0].id, 'q1');

    const search = { table: '_asof_decisions', vector: [1, 0], k: 1 };
    denied(await asof.req('POST', '/vectors/search', search, bearer('r')), 'vector search of the decision log with read');
    // With the scope the request is judged on its merits: the table has no vector column.
    assert.equal((await asof.req('POST', '/vectors/search', search, bearer('u'))).body.error.code, 'ASOF_INVALID_ARGUMENT');
  });

  test('a feature view over the decision log (which would serve it to read keys) needs a definer with the audit scope', async () => {
    const dv = { source: '_asof_decisions', entity: 'id', features: [{ name: 'outcome', column: 'outcome' }] };
    denied(await asof.req('PUT', '/feature-views/dv', dv, bearer('ad')), 'an admin-only key defining a view over the decision log');
    assert.equal((await asof.req('GET', '/feature-views/dv', undefined, bearer('r'))).status, 404, 'nothing was defined');
    assert.equal((await asof.req('PUT', '/feature-views/dv', dv, bearer('all'))).status, 201);
  });
});

/** The tables /metrics gives per-table series of, to `headers`' key: each series name with the tables it names. */
async function metricTables(asof: GrpcAsof, headers: Record<string, string> = {}): Promise<Map<string, string[]>> {
  const res = await asof.req('GET', '/metrics', undefined, headers);
  assert.equal(res.status, 200, String(res.body));
  const out = new Map<string, string[]>();
  for (const m of String(res.body).matchAll(/^(asof_[a-z_]+)\{table="([^"]+)"/gm)) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  return out;
}

describe('/metrics with API keys: the internal tables\' per-table series only for a key with the audit scope', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ apiKeys: `${KEYS},w:write` } as never);
    await withDecision(asof, bearer('all'));
  });
  after(() => asof?.destroy());

  test('read, write and admin keys see every series of table t and none of _asof_decisions; read+audit sees both', async () => {
    for (const k of ['r', 'w', 'ad']) {
      const series = await metricTables(asof, bearer(k));
      for (const name of ['asof_table_records', 'asof_table_rows', 'asof_changelog_offset']) assert.deepEqual(series.get(name), ['t'], `${name} for key ${k}`);
    }
    const audited = await metricTables(asof, bearer('u'));
    for (const name of ['asof_table_records', 'asof_table_rows', 'asof_changelog_offset']) assert.deepEqual(audited.get(name), ['_asof_decisions', 't'], `${name} for read+audit`);
  });
});

test('ASOF_METRICS_OPEN=true: a scrape without a key sees no internal table; one presenting a key with the audit scope does', async () => {
  const asof = await grpcAsof({ apiKeys: KEYS, metricsOpen: 'true' } as never);
  try {
    await withDecision(asof, bearer('all'));
    assert.deepEqual((await metricTables(asof)).get('asof_table_records'), ['t'], 'no key');
    assert.deepEqual((await metricTables(asof, bearer('nonsense'))).get('asof_table_records'), ['t'], 'a key that is not valid');
    assert.deepEqual((await metricTables(asof, bearer('r'))).get('asof_table_records'), ['t'], 'a read key');
    assert.deepEqual((await metricTables(asof, bearer('u'))).get('asof_table_records'), ['_asof_decisions', 't'], 'a read+audit key');
  } finally {
    await asof.destroy();
  }
});

test('without keys (auth off) the decision log reads as before', async () => {
  const asof = await grpcAsof();
  try {
    await withDecision(asof);
    assert.ok((await asof.req('GET', '/tables')).body.tables.some((t: any) => t.name === '_asof_decisions'));
    assert.equal((await asof.req('GET', '/tables/_asof_decisions/rows/q1')).body.row.id, 'q1');
    assert.equal((await asof.req('GET', '/tables/_asof_decisions/changelog')).body.records.length, 1);
    assert.equal(await follow(asof, '_asof_decisions'), 'data');
    assert.deepEqual((await metricTables(asof)).get('asof_table_records'), ['_asof_decisions', 't']);
  } finally {
    await asof.destroy();
  }
});
