/**
 * The per-request loggers Fastify gets from requestLoggers (request-logger.ts),
 * through a real Fastify server: every line a request writes carries its
 * request id, a route's log level holds, and a quiet route writes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import pino from 'pino';
import { requestLoggers } from '../../src/http/request-logger.js';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
}

async function server(level: string) {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  let n = 0;
  // Children made for requests, counted: pino's children inherit this own `child` from the root.
  const root = pino({ level }, sink);
  const made = { count: 0 };
  const pinoChild = root.child;
  root.child = function (this: typeof root, bindings: Record<string, unknown>, opts?: object) {
    if ('reqId' in bindings) made.count++;
    return pinoChild.call(this, bindings, opts);
  } as typeof root.child;
  const app = Fastify({ loggerInstance: requestLoggers(root), genReqId: () => `req-${++n}` });
  const handler = (req: { log: { info(m: string): void; warn(m: string): void; error(m: string): void; debug(m: string): void; child(b: object): { info(m: string): void } } }) => {
    req.log.debug('handler debug');
    req.log.info('handler info');
    req.log.warn('handler warn');
    req.log.child({ part: 'x' }).info('child info');
    req.log.error('handler error');
    return 'ok';
  };
  app.get('/quiet', { logLevel: 'warn' }, handler);
  app.get('/lookup', { logLevel: 'warn' }, (req) => {
    req.log.info('not written');
    return 'ok';
  });
  app.get('/plain', handler);
  await app.ready();
  return { app, lines, made };
}

test('a route at warn writes its warnings and errors with the request id, and nothing below', async () => {
  const { app, lines } = await server('info');
  const r = await app.inject('/quiet');
  assert.equal(r.statusCode, 200);
  assert.deepEqual(
    lines.map((l) => [l.msg, l.level, l.reqId]),
    [
      ['handler warn', 40, 'req-1'],
      ['handler error', 50, 'req-1'],
    ],
  );
});

test('a route at warn whose requests write nothing below warn makes no logger for them', async () => {
  const { app, lines, made } = await server('info');
  for (let i = 0; i < 3; i++) assert.equal((await app.inject('/lookup')).statusCode, 200);
  assert.deepEqual(lines, []);
  assert.equal(made.count, 0);
  await app.inject('/quiet');
  assert.equal(made.count, 1, 'a line at warn makes the request its logger');
});

test('a route at the logger level (info) logs the request, its lines and its children with the request id', async () => {
  const { app, lines } = await server('info');
  await app.inject('/plain');
  await app.inject('/plain');
  const of = (id: string) => lines.filter((l) => l.reqId === id).map((l) => l.msg);
  assert.deepEqual(of('req-1'), ['incoming request', 'handler info', 'handler warn', 'child info', 'handler error', 'request completed']);
  assert.deepEqual(of('req-2'), of('req-1'));
  assert.equal(lines.length, 12, 'no line without a request id');
});

test('a route without a level of its own follows the logger: debug adds its debug lines, error keeps only errors', async () => {
  const debug = await server('debug');
  await debug.app.inject('/plain');
  assert.deepEqual(
    debug.lines.filter((l) => l.msg.startsWith('handler')).map((l) => l.msg),
    ['handler debug', 'handler info', 'handler warn', 'handler error'],
  );
  const quiet = await server('error');
  await quiet.app.inject('/plain');
  await quiet.app.inject('/plain');
  assert.deepEqual(
    quiet.lines.map((l) => [l.msg, l.reqId]),
    [
      ['handler error', 'req-1'],
      ['handler error', 'req-2'],
    ],
  );
});
