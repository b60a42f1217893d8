/**
 * How much a plain Node HTTP server's GET costs from one process to the next,
 * and whether reading large request bodies first changes it: a bare Fastify
 * route answering the 2,050 bytes of bench:online's GET, in fresh processes,
 * each measured either as started or after it has read a number of large
 * bodies (read into a buffer, nothing parsed), alternating:
 *
 *   npm run bench:node-bodies [-- --processes 6 --bodies 20 --body-bytes 1600000 --seconds 4 --node-args '--flag ...']
 *
 * `--node-args` gives the servers V8 or Node flags, to see whether one changes the odds.
 *
 * Why: on session 22's machine (Node 20, bench/RESULTS.md) server processes
 * landed in a fast or a slow state for their whole life, 20-30% apart in CPU
 * per GET, the slow ones with V8 defining the tick objects of
 * `process.nextTick` through its runtime; asof's processes and bare ones
 * alike. A single bench:online run compares one asof process against one
 * bare process, each in either state. This shows, on the machine at hand,
 * how far apart the states are and how often each comes, with and without
 * the large bodies bench:online's asof process reads when it loads its users.
 * It measures Node, not asof. Not a test: it prints, it asserts nothing.
 */
import { fileURLToPath } from 'node:url';
import { freePort, rawRequest } from './lib.js';
import { drive } from './online-load.js';
import { spawnChild, waitReady, type ChildServer } from '../support/child-server.js';

const SELF = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number): number => (process.argv.includes(`--${name}`) ? Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) : dflt);
const PROCESSES = arg('processes', 6);
const BODIES = arg('bodies', 20);
const BODY_BYTES = arg('body-bytes', 1_600_000);
const SECONDS = arg('seconds', 4);
/** The size of bench:online's GET answer (20 features). */
const ANSWER_BYTES = 2050;
const NODE_ARGS = process.argv.includes('--node-args') ? process.argv[process.argv.indexOf('--node-args') + 1].split(' ').filter(Boolean) : [];

/** The server: the GET route of bench:online's bare reference, and a route that reads a body and drops it. */
async function serve(port: number): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const answer = Buffer.alloc(ANSWER_BYTES, 120);
  const app = Fastify({ bodyLimit: 64 * 2 ** 20 });
  app.get('/features/:entity', (_req, reply) => {
    void reply.type('application/json; charset=utf-8').send(answer);
  });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, (body as Buffer).length));
  app.post('/drain', async (req) => ({ bytes: req.body }));
  app.get('/readyz', async () => ({ status: 'ready' }));
  await app.listen({ port, host: '127.0.0.1' });
}

/** Server CPU per GET (µs) of one fresh process, after `bodies` bodies of BODY_BYTES. */
async function oneProcess(bodies: number, gets: Buffer[]): Promise<number> {
  const port = await freePort();
  const server: ChildServer = spawnChild([...NODE_ARGS, SELF, 'serve', String(port)], { port });
  try {
    await waitReady(server, { timeoutMs: 60_000 });
    const body = Buffer.alloc(BODY_BYTES, 97);
    for (let i = 0; i < bodies; i++) {
      const res = await fetch(`${server.url}/drain`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
      if (!res.ok) throw new Error(`POST /drain: ${res.status}`);
      await res.text();
    }
    for (let i = 0; i < 2; i++) await drive(server, gets, { seconds: 1, connections: 32 });
    return (await drive(server, gets, { seconds: SECONDS, connections: 32 })).cpuUs;
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve') return serve(Number(process.argv[3]));
  const gets = Array.from({ length: 1000 }, (_, i) => rawRequest('GET', `/features/${i}`));
  const fresh: number[] = [];
  const after: number[] = [];
  console.log(`node ${process.version}${NODE_ARGS.length ? ` ${NODE_ARGS.join(' ')}` : ''}; ${PROCESSES} processes each way, alternating; ${BODIES} bodies of ${BODY_BYTES.toLocaleString('en-US')} bytes; ${SECONDS} s of GETs (32 connections) each`);
  for (let p = 0; p < PROCESSES; p++) {
    fresh.push(await oneProcess(0, gets));
    after.push(await oneProcess(BODIES, gets));
    console.log(`  pair ${p + 1}: server CPU per GET ${fresh[p].toFixed(1)} µs as started, ${after[p].toFixed(1)} µs after the bodies`);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // Relative to the run's cheapest process: when every process of a run is in the slow state, none counts as slow.
  const low = Math.min(...fresh, ...after);
  const slow = (xs: number[]): number => xs.filter((x) => x > low * 1.15).length;
  console.log(`\n| processes | server CPU per GET, µs (each) | median | more than 1.15x the run's cheapest process |`);
  console.log('| --- | --- | --- | --- |');
  console.log(`| as started | ${fresh.map((x) => x.toFixed(1)).join(', ')} | ${median(fresh).toFixed(1)} | ${slow(fresh)} of ${PROCESSES} |`);
  console.log(`| after ${BODIES} bodies of ${BODY_BYTES.toLocaleString('en-US')} bytes | ${after.map((x) => x.toFixed(1)).join(', ')} | ${median(after).toFixed(1)} | ${slow(after)} of ${PROCESSES} |`);
}

await main();
