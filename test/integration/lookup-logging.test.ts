/**
 * The lookup routes at the default configuration (server.ts, "hot" routes):
 * at LOG_LEVEL=info their requests are not logged one by one, errors are, and
 * other routes still log every request; at debug every lookup is logged with
 * its request id. Lookups go through Fastify's hooks like any route: the
 * API-key check refuses them and the metrics hook counts them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigSchema } from '../../src/config.js';
import { startAsof, type Asof } from '../../src/app.js';
import { tempDir } from '../helpers.js';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  req?: { url?: string };
}

async function start(level: string, apiKeys?: string): Promise<{ asof: Asof; lines: Line[]; stop: () => Promise<void> }> {
  const dir = await tempDir();
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  const logger = pino({ level }, sink);
  const config = ConfigSchema.parse({ dataDir: dir.path, port: 0, grpcPort: 0, ...(apiKeys ? { apiKeys } : {}) });
  const asof = await startAsof(config, logger, { listen: true });
  return {
    asof,
    lines,
    stop: async () => {
      await asof.close();
      await dir.cleanup();
    },
  };
}

async function seed(asof: Asof, headers: Record<string, string> = {}): Promise<void> {
  const send = async (method: string, path: string, body: unknown): Promise<void> => {
    const r = await fetch(asof.url + path, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${await r.text()}`);
  };
  await send('PUT', '/tables/people', { kind: 'pk', primaryKey: ['name'], columns: [{ name: 'name', type: 'string', nullable: false }, { name: 'age', type: 'int32', nullable: true }] });
  await send('POST', '/tables/people/rows', { rows: [{ name: 'ann', age: 41 }] });
  await send('PUT', '/feature-views/person', { source: 'people', entity: 'name', features: [{ name: 'age', column: 'age' }] });
}

const requestLines = (lines: Line[], path: string): Line[] => lines.filter((l) => l.msg === 'incoming request' && l.req?.url?.startsWith(path));

test('LOG_LEVEL=info (the default): lookups are not logged one by one, other routes are', async () => {
  assert.equal(ConfigSchema.parse({}).logLevel, 'info', 'the default level this test stands for');
  const { asof, lines, stop } = await start('info');
  try {
    await seed(asof);
    for (let i = 0; i < 3; i++) {
      const one = await fetch(asof.url + '/features/ann?view=person');
      assert.equal(one.status, 200);
      assert.equal(((await one.json()) as { features: Record<string, unknown> }).features['person:age'], 41);
    }
    const many = await fetch(asof.url + '/features', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entities: ['ann', 'bo'], view: 'person' }) });
    assert.equal(many.status, 200);
    assert.equal((await fetch(asof.url + '/tables/people')).status, 200);
    assert.deepEqual(requestLines(lines, '/features'), []);
    assert.equal(requestLines(lines, '/tables/people').length >= 3, true, 'the other routes log each request');
    // The metrics hook ran for every lookup.
    const metrics = await (await fetch(asof.url + '/metrics')).text();
    assert.match(metrics, /asof_http_requests_total\{route="\/features\/:entity",method="GET",status="200"\} 3/);
  } finally {
    await stop();
  }
});

test('LOG_LEVEL=debug: every lookup is logged with its request id', async () => {
  const { asof, lines, stop } = await start('debug');
  try {
    await seed(asof);
    assert.equal((await fetch(asof.url + '/features/ann?view=person')).status, 200);
    const logged = requestLines(lines, '/features/ann');
    assert.equal(logged.length, 1);
    assert.ok(logged[0].reqId, 'the line carries the request id');
  } finally {
    await stop();
  }
});

test('lookups pass the API-key hook like any route', async () => {
  const { asof, stop } = await start('info', 'k1');
  try {
    await seed(asof, { authorization: 'Bearer k1' });
    const refused = await fetch(asof.url + '/features/ann?view=person');
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'ASOF_UNAUTHENTICATED');
    assert.equal((await fetch(asof.url + '/features/ann?view=person', { headers: { authorization: 'Bearer k2' } })).status, 401);
    assert.equal((await fetch(asof.url + '/features/ann?view=person', { headers: { authorization: 'Bearer k1' } })).status, 200);
  } finally {
    await stop();
  }
});
