/**
 * gRPC online lookup: `asof.v1.OnlineService/GetOnlineFeatures` for one entity
 * and 20 features, against a bare grpc-js server answering the same response
 * bytes on the same method path (no lookup, no decoding, no encoding: its
 * handler returns a prepared buffer). Both servers run in their own child
 * process, driven by this one over raw HTTP/2 (gRPC framing by hand, so the
 * driver costs less than a grpc-js client would); they are measured in turns,
 * ROUNDS times, so a burst of other work on the machine hits both alike.
 *
 * Each turn: the most calls per second with CONCURRENCY in flight, with
 * p50/p99 latency there; then p50/p99 at half that rate (open loop, fixed
 * arrival schedule, latency from the scheduled start). Each phase also reads
 * the server's CPU time (/proc) and reports it per call: unlike calls/s it
 * barely moves when other work shares the machine, and bare/asof CPU per call
 * is the calls/s ratio a dedicated core would give. Prints every turn, the
 * medians, both ratios, and a Markdown row for bench/RESULTS.md.
 *
 * With --attribute, also splits asof's CPU per call into transport, request
 * decoding, the online service's lookup, and answer conversion + encoding.
 *
 * With --codecs, only times each half of the codec in process (see codecs).
 *
 *   npm run bench:grpc [-- --attribute | --codecs]   (DURATION_S=5 CONCURRENCY=64 ROUNDS=3 by default)
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type ClientHttp2Session } from 'node:http2';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ConfigSchema, admissionLimits } from '../src/config.js';
import { Admission } from '../src/admission.js';
import { silentLogger } from '../src/logger.js';
import { startAsof } from '../src/app.js';
import { loadProtos } from '../src/grpc/protos.js';
import { decodeOnlineRequest, entityKeys } from '../src/grpc/online-codec.js';
import { startGrpcServer } from '../src/grpc/server.js';
import { ApiKeys } from '../src/access.js';
import type { Services } from '../src/services.js';
import { spawnChild } from '../support/child-server.js';

const METHOD = '/asof.v1.OnlineService/GetOnlineFeatures';
const FEATURES = 20;
const DURATION_MS = Number(process.env.DURATION_S ?? 5) * 1000;
const WARMUP_MS = 2000;
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const SESSIONS = 4;
const ROUNDS = Number(process.env.ROUNDS ?? 3);

/** 20 features of mixed types over one pk table: 10 float64, 4 int64, 3 string, 2 bool, 1 timestamp. */
const TYPES = ['float64', 'float64', 'int64', 'string', 'float64', 'bool', 'float64', 'int64', 'float64', 'string', 'float64', 'timestamp', 'float64', 'int64', 'bool', 'float64', 'string', 'float64', 'int64', 'float64'];
const valueOf = (type: string, i: number): unknown =>
  ({ float64: i + 0.5, int64: 1000 + i, string: `value-${i}`, bool: i % 2 === 0, timestamp: '2026-01-01T00:00:00.000Z' })[type];

// ---- child: asof -------------------------------------------------------------------------------

/** asof in this process with the benchmark's table and view (one entity, 20 features). */
async function asofWithData(dataDir: string): Promise<{ asof: Awaited<ReturnType<typeof startAsof>>; config: ReturnType<typeof ConfigSchema.parse> }> {
  const config = ConfigSchema.parse({ dataDir, port: 0, grpcPort: 0, logLevel: 'silent' });
  const asof = await startAsof(config, silentLogger);
  const { engine, ingest, registry } = asof.services;
  const columns = [{ name: 'driver_id', type: 'int64', nullable: false }, ...TYPES.map((type, i) => ({ name: `f${i}`, type, nullable: true }))];
  await engine.defineTable('drivers', { kind: 'pk', primaryKey: ['driver_id'], columns });
  const row: Record<string, unknown> = { driver_id: 1001 };
  TYPES.forEach((t, i) => (row[`f${i}`] = valueOf(t, i)));
  await ingest.write('drivers', [row]);
  await registry.defineView('driver_stats', { source: 'drivers', entity: 'driver_id', features: TYPES.map((_, i) => ({ name: `f${i}`, column: `f${i}` })) });
  return { asof, config };
}

async function serveAsof(dataDir: string, answerFile?: string): Promise<void> {
  const { asof, config } = await asofWithData(dataDir);
  // The same services answered through the codec generated from proto/ (grpc/online-codec.ts), in the same run: the server's hand-written wire stays only while it beats this.
  const hand = await startGrpcServer(asof.services, { host: '127.0.0.1', port: 0, keys: new ApiKeys({}), maxMessageBytes: 4 << 20, logger: silentLogger, version: 'bench', admission: new Admission(admissionLimits(config)), onlineWire: 'generated' });
  const ports = [asof.grpcPort!, hand.port];
  if (answerFile) ports.push(...(await stageServers(asof.services, await readFile(answerFile))));
  process.on('SIGTERM', () => void asof.close().then(() => process.exit(0)));
  process.stdout.write(`READY ${ports.join(' ')}\n`);
}

/**
 * For --attribute: in the asof process itself (same heap, same services),
 * bare grpc-js servers that stop after a stage of the real call and answer
 * asof's bytes: "transport" (nothing), "decode" (the request decoded as the
 * real server does), "lookup" (decoded, then the online service's plan and
 * evaluation). Their CPU per call, next to the real server's, says what each
 * stage costs.
 */
async function stageServers(services: Services, answer: Buffer): Promise<number[]> {
  const id = (b: Buffer): Buffer => b;
  const { online } = services;
  type Handler = (call: grpc.ServerUnaryCall<any, Buffer>, cb: grpc.sendUnaryData<Buffer>) => void;
  const lookup: Handler = (c, cb) => {
    const keys = entityKeys(c.request.entities);
    const plan = online.plan(c.request.selection);
    const e = plan instanceof Promise ? plan.then((p) => online.evaluate(keys, p)) : online.evaluate(keys, plan);
    if (e instanceof Promise) void e.then(() => cb(null, answer), cb);
    else cb(null, answer);
  };
  const stages: [boolean, Handler][] = [
    [false, (_c, cb) => cb(null, answer)],
    [true, (_c, cb) => cb(null, answer)],
    [true, lookup],
  ];
  const ports: number[] = [];
  for (const [decoded, handler] of stages) {
    const server = new grpc.Server();
    const service = { GetOnlineFeatures: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: decoded ? decodeOnlineRequest : id, responseSerialize: id, responseDeserialize: id } };
    server.addService(service as unknown as grpc.ServiceDefinition, { GetOnlineFeatures: handler });
    ports.push(await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p)))));
  }
  return ports;
}

/**
 * --codecs: GetOnlineFeatures' codec alone, in this process, in alternating
 * rounds: CPU µs per call to read the request into keys and a selection
 * (generated), and to encode the answer from the service's evaluation (the
 * same every call), hand-written against generated.
 */
async function codecs(dataDir: string, request: Buffer): Promise<void> {
  const { asof } = await asofWithData(dataDir);
  const { online } = asof.services;
  const hand = await import('../src/grpc/online-wire.js');
  const generated = await import('../src/grpc/online-codec.js');
  const req = generated.decodeOnlineRequest(request);
  const e = await online.evaluate(generated.entityKeys(req.entities), await online.plan(req.selection));
  const cases: [string, () => unknown][] = [
    ['request (generated)', () => generated.entityKeys(generated.decodeOnlineRequest(request).entities)],
    ['answer, hand-written', () => hand.encodeOnlineAnswer(e, req.entities)],
    ['answer, generated', () => generated.encodeOnlineAnswer(e, req.entities)],
  ];
  const us = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS + 1; round++) {
    for (const [name, fn] of cases) {
      let n = 0;
      const t0 = process.cpuUsage();
      const until = performance.now() + 1000;
      while (performance.now() < until) for (let i = 0; i < 100; i++, n++) fn();
      const cpu = process.cpuUsage(t0);
      if (round > 0) us.get(name)!.push((cpu.user + cpu.system) / n);
    }
  }
  console.log(`codec halves in process, CPU µs per call, medians over ${ROUNDS} rounds of 1 s (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}):`);
  for (const [name, xs] of us) console.log(`  ${name}: ${median(xs).toFixed(2)} (rounds ${xs.map((x) => x.toFixed(2)).join(', ')})`);
  await asof.close();
}

// ---- child: the bare reference -----------------------------------------------------------------

async function serveBare(bytesFile: string): Promise<void> {
  const answer = await readFile(bytesFile);
  const id = (b: Buffer): Buffer => b;
  const server = new grpc.Server();
  const service = { GetOnlineFeatures: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } };
  server.addService(service as unknown as grpc.ServiceDefinition, { GetOnlineFeatures: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, answer) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
  process.stdout.write(`READY ${port}\n`);
}

// ---- driver ------------------------------------------------------------------------------------

/** A child of this file in `role` (through support/child-server.ts), ready once it prints `READY <port> ...` (its servers pick their own ports). */
async function startChild(args: string[]): Promise<Child> {
  const child = spawnChild([...(process.env.CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? []), fileURLToPath(import.meta.url), ...args], {});
  try {
    const ports = (await child.readyLine(/READY ([\d ]+)\n/))[1].trim().split(' ').map(Number);
    return { proc: child.proc, port: ports[0], ports, stop: () => child.stop() };
  } catch (e) {
    await child.kill();
    throw e;
  }
}

interface Child {
  proc: ChildProcess;
  port: number;
  ports: number[];
  stop(): Promise<void>;
}

/** gRPC length-prefixed message: 1 byte "not compressed", 4 bytes big-endian length, the bytes. */
const frame = (msg: Buffer): Buffer => Buffer.concat([Buffer.from([0, (msg.length >>> 24) & 255, (msg.length >>> 16) & 255, (msg.length >>> 8) & 255, msg.length & 255]), msg]);

/** One call; resolves with the response message bytes, rejects on a non-zero grpc-status. */
function unaryCall(session: ClientHttp2Session, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': METHOD, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== '0') reject(new Error(`grpc-status ${t['grpc-status']}: ${t['grpc-message']}`));
    });
    req.on('end', () => resolve(Buffer.concat(chunks).subarray(5)));
    req.on('error', reject);
    req.end(body);
  });
}

interface Phase {
  rps: number;
  p50: number;
  p99: number;
  /** Driver CPU use over the phase, 0..1 of one core. */
  driverCpu: number;
  /** Server CPU time per call, µs (user + system); NaN where /proc is not readable. */
  serverUs: number;
}

/** CPU time a process has used, ms (Linux /proc; utime + stime in clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

const percentile = (sorted: Float64Array, p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

function summarize(lat: number[], ms: number, cpuStart: NodeJS.CpuUsage, serverCpuMs: number): Phase {
  const sorted = Float64Array.from(lat).sort();
  const cpu = process.cpuUsage(cpuStart);
  return { rps: lat.length / (ms / 1000), p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), driverCpu: (cpu.user + cpu.system) / 1000 / ms, serverUs: (serverCpuMs * 1000) / lat.length };
}

/** Closed loop: CONCURRENCY calls always in flight; throughput and latency at saturation. */
async function saturate(t: Target, body: Buffer, ms: number): Promise<Phase> {
  const { sessions } = t;
  const lat: number[] = [];
  const cpu = process.cpuUsage();
  const server = await cpuMs(t.pid);
  const started = performance.now();
  const until = started + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      const s = sessions[i % sessions.length];
      while (performance.now() < until) {
        const t0 = performance.now();
        await unaryCall(s, body);
        lat.push(performance.now() - t0);
      }
    }),
  );
  return summarize(lat, performance.now() - started, cpu, (await cpuMs(t.pid)) - server);
}

/** Open loop: calls start on a fixed schedule at `rate`/s whatever the answers (checked every millisecond); latency counts from the scheduled start. */
async function atRate(t: Target, body: Buffer, rate: number, ms: number): Promise<Phase> {
  const { sessions } = t;
  const lat: number[] = [];
  const pending: Promise<void>[] = [];
  const cpu = process.cpuUsage();
  const server = await cpuMs(t.pid);
  const started = performance.now();
  const interval = 1000 / rate;
  let n = 0;
  for (let now = started; now - started < ms; now = performance.now()) {
    for (const due = Math.floor((now - started) / interval); n <= due; n++) {
      const scheduled = started + n * interval;
      pending.push(unaryCall(sessions[n % sessions.length], body).then(() => void lat.push(performance.now() - scheduled)));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  return summarize(lat, ms, cpu, (await cpuMs(t.pid)) - server);
}

interface Target {
  name: string;
  pid: number;
  sessions: ClientHttp2Session[];
}

async function open(name: string, child: { proc: ChildProcess; port: number }, port = child.port): Promise<Target> {
  const sessions = Array.from({ length: SESSIONS }, () => connect(`http://127.0.0.1:${port}`));
  await Promise.all(sessions.map((s) => once(s, 'connect')));
  return { name, pid: child.proc.pid!, sessions };
}

const fmt = (p: Phase) =>
  `${Math.round(p.rps).toString().padStart(6)} calls/s  p50 ${p.p50.toFixed(2).padStart(6)} ms  p99 ${p.p99.toFixed(2).padStart(7)} ms  server ${p.serverUs.toFixed(0).padStart(4)} µs CPU/call  (driver CPU ${(p.driverCpu * 100).toFixed(0)}%)`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Server CPU per call of each stage of the real call (see stageServers), medians over ROUNDS. */
async function attribute(dataDir: string, answerFile: string, body: Buffer, children: Child[]): Promise<void> {
  const child = await startChild(['asof-server', dataDir, answerFile]);
  children.push(child);
  const [full, , transport, decode, lookup] = child.ports;
  const targets = [await open('transport', child, transport), await open('decode', child, decode), await open('lookup', child, lookup), await open('full', child, full)];
  for (const t of targets) await saturate(t, body, WARMUP_MS);
  const us = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) for (const t of targets) us.get(t.name)!.push((await saturate(t, body, DURATION_MS)).serverUs);
  for (const t of targets) for (const s of t.sessions) s.close();
  await child.stop();
  const m = targets.map((t) => median(us.get(t.name)!));
  console.log(`\nwhere asof's server CPU per call goes (medians, µs): transport ${m[0].toFixed(0)}, + request decode ${(m[1] - m[0]).toFixed(0)}, + plan and evaluation ${(m[2] - m[1]).toFixed(0)}, + answer conversion and encoding ${(m[3] - m[2]).toFixed(0)} = ${m[3].toFixed(0)}`);
}

/** CPU pressure of the machine (Linux PSI "some avg10"), to say whether other work competed with the run. */
async function cpuPressure(): Promise<string> {
  try {
    return `${/avg10=([\d.]+)/.exec(await readFile('/proc/pressure/cpu', 'utf8'))?.[1] ?? '?'}% (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`;
  } catch {
    return `? (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`;
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'asof-bench-grpc-'));
  const children: Child[] = [];
  try {
    const pkg = loadProtos();
    const method = (pkg['asof.v1.OnlineService'] as grpc.ServiceDefinition).GetOnlineFeatures;
    const request = method.requestSerialize({ entities: [{ int64_value: '1001' }], features: { refs: TYPES.map((_, i) => `driver_stats:f${i}`) } });
    const body = frame(request);
    if (process.argv.includes('--codecs')) return await codecs(join(dir, 'codecs'), request);

    const asof = await startChild(['asof-server', join(dir, 'data')]);
    children.push(asof);
    // The answer the bare server replays: asof's own bytes for this request.
    const probe = connect(`http://127.0.0.1:${asof.port}`);
    const answer = await unaryCall(probe, body);
    probe.close();
    const decoded = method.responseDeserialize(answer) as { results: { features: { status: string }[] }[] };
    const present = decoded.results[0].features.filter((f) => f.status === 'PRESENT').length;
    if (present !== FEATURES) throw new Error(`expected ${FEATURES} PRESENT features, got ${present}`);
    await writeFile(join(dir, 'answer.bin'), answer);
    const bare = await startChild(['bare-server', join(dir, 'answer.bin')]);
    children.push(bare);

    console.log(`GetOnlineFeatures, 1 entity x ${FEATURES} features; answer ${answer.length} bytes, request ${request.length} bytes`);
    console.log(`${CONCURRENCY} calls in flight over ${SESSIONS} HTTP/2 connections; ${ROUNDS} rounds of asof then bare, ${DURATION_MS / 1000} s per phase; CPU pressure before: ${await cpuPressure()}`);
    // asof: the server as it runs (the answer by the hand-written encoder); generated: the same services answering through the generated encoder.
    const targets = [await open('asof', asof), await open('generated', { ...asof, port: asof.ports[1] }), await open('bare', bare)];
    for (const t of targets) await saturate(t, body, WARMUP_MS);
    const results: Record<string, { full: Phase; half: Phase }[]> = { asof: [], generated: [], bare: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        const full = await saturate(t, body, DURATION_MS);
        const half = await atRate(t, body, full.rps / 2, DURATION_MS);
        results[t.name].push({ full, half });
        console.log(`round ${round} ${t.name.padEnd(9)} saturated: ${fmt(full)}`);
        console.log(`round ${round} ${t.name.padEnd(9)} half load: ${fmt(half)}`);
      }
    }
    for (const t of targets) for (const s of t.sessions) s.close();
    const pressure = await cpuPressure();

    const ratios = results.asof.map((a, i) => a.full.rps / results.bare[i].full.rps);
    const genRatios = results.generated.map((a, i) => a.full.rps / results.bare[i].full.rps);
    const m = (name: string, pick: (r: { full: Phase; half: Phase }) => number) => median(results[name].map(pick));
    const row = (name: string) => ({
      rps: m(name, (r) => r.full.rps),
      p50: m(name, (r) => r.full.p50),
      p99: m(name, (r) => r.full.p99),
      h50: m(name, (r) => r.half.p50),
      h99: m(name, (r) => r.half.p99),
      us: m(name, (r) => r.full.serverUs),
    });
    const a = row('asof');
    const b = row('bare');
    console.log(`\nmedians over ${ROUNDS} rounds`);
    const h = row('generated');
    for (const [name, x] of [['asof', a], ['generated', h], ['bare', b]] as const) {
      console.log(`${name}: ${Math.round(x.rps)} calls/s, p50/p99 ${x.p50.toFixed(2)}/${x.p99.toFixed(2)} ms saturated, ${x.h50.toFixed(2)}/${x.h99.toFixed(2)} ms at half load; ${x.us.toFixed(0)} µs server CPU per call`);
    }
    console.log(`asof (hand-written answer) / bare calls/s: ${median(ratios).toFixed(2)} (per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}); CPU pressure after: ${pressure}`);
    console.log(`generated codec / bare calls/s: ${median(genRatios).toFixed(2)} (per round: ${genRatios.map((r) => r.toFixed(2)).join(', ')}); by server CPU per call: ${(b.us / h.us).toFixed(2)}`);
    // Server CPU per call is what a dedicated core would turn into throughput; it shrugs off other work on the machine.
    const cpuRatio = b.us / a.us;
    console.log(`asof / bare by server CPU per call (calls/s one dedicated core would give): ${cpuRatio.toFixed(2)}`);
    if (process.argv.includes('--attribute')) await attribute(join(dir, 'attr'), join(dir, 'answer.bin'), body, children);
    const machine = `${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
    console.log(`machine: ${machine}`);
    const f2 = (x: number) => x.toFixed(2);
    console.log(
      `\n| ${new Date().toISOString().slice(0, 10)} | ${Math.round(a.rps)} | ${Math.round(b.rps)} | **${median(ratios).toFixed(2)}** | ${a.us.toFixed(0)} | ${b.us.toFixed(0)} | **${cpuRatio.toFixed(2)}** | ${f2(a.p50)} / ${f2(a.p99)} | ${f2(b.p50)} / ${f2(b.p99)} | ${f2(a.h50)} / ${f2(a.h99)} | ${f2(b.h50)} / ${f2(b.h99)} | ${pressure} |`,
    );
  } finally {
    for (const c of children) await c.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

const [role, arg, arg2] = process.argv.slice(2);
const run = role === 'asof-server' ? serveAsof(arg, arg2) : role === 'bare-server' ? serveBare(arg) : main();
run.catch((e) => {
  console.error(e);
  process.exit(1);
});
