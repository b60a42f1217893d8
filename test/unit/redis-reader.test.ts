/**
 * The lean lookup client's wire code (online/resp.ts): commands as
 * RESP bytes, and replies parsed off a stream cut at every possible place.
 * Expected bytes and replies are written by this test's own encoder, from
 * the RESP2 spec; the client's behaviour against a real Redis (timeouts,
 * reconnects, outages) is in the contract and Redis integration tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createServer, type Server, type Socket } from 'node:net';
import { silentLogger } from '../../src/logger.js';
import { FLUSH_COMMANDS, FLUSH_FIELDS, leanReaderSupports, RedisLookupReader } from '../../src/online/redis-reader.js';
import { command, Commands, RedisError, ReplyParser, type Reply } from '../../src/online/resp.js';
import { parseState } from '../../src/online/state-json.js';
import { rng } from '../integration/training-fixtures.js';

/** RESP2 encoding of a reply, per the spec. */
function encode(r: Reply): string {
  if (r === null) return '$-1\r\n';
  if (r instanceof RedisError) return `-${r.message}\r\n`;
  if (typeof r === 'number') return `:${r}\r\n`;
  if (Array.isArray(r)) return `*${r.length}\r\n` + r.map(encode).join('');
  return `$${Buffer.byteLength(r)}\r\n${r}\r\n`;
}

test('commands are RESP arrays of bulk strings, lengths in bytes', () => {
  assert.equal(command(['HMGET', 'k', 'é', '']).toString('utf8'), '*4\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$2\r\né\r\n$0\r\n\r\n');
  const long = 'x'.repeat(70_000) + '☃';
  assert.equal(command(['HMGET', long]).toString('utf8'), `*2\r\n$5\r\nHMGET\r\n$70003\r\n${long}\r\n`);
});

test('commands of generated arguments carry their UTF-8 byte lengths (Buffer.byteLength the oracle)', () => {
  const r = rng(7);
  // ASCII, 2- and 3-byte characters, surrogate pairs (4 bytes) and lone surrogates (written as U+FFFD, 3 bytes).
  const alphabet = ['a', '0', ':', ' ', '\r', '\n', 'é', 'ß', '☃', '€', '𝄞', '😀', '\ud800', '\udfff', '\u007f', '\u0080', '\u07ff', '\u0800'];
  // A turn's commands go out as one buffer, which grows from a small start here.
  const turn = new Commands(8);
  const all: Buffer[] = [];
  for (let trial = 0; trial < 500; trial++) {
    const args = Array.from({ length: r.int(1, trial % 50 === 0 ? 120 : 8) }, () => Array.from({ length: r.int(0, 12) }, () => r.pick(alphabet)).join(''));
    const expected = Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.map((a) => Buffer.concat([Buffer.from(`$${Buffer.byteLength(a)}\r\n`), Buffer.from(a, 'utf8'), Buffer.from('\r\n')]))]);
    assert.deepEqual(command(args), expected, JSON.stringify(args));
    turn.add(args);
    all.push(expected);
    if (trial % 7 === 6) assert.deepEqual(turn.take(), Buffer.concat(all.splice(0)));
  }
});

test('replies parse the same however the stream is cut', () => {
  const r = rng(31);
  const text = (): string => {
    const alphabet = ['a', 'Z', '0', ' ', '\r', '\n', '"', 'é', '☃', '𝄞', '$', '*', '-'];
    return Array.from({ length: r.int(0, 40) }, () => r.pick(alphabet)).join('');
  };
  const replies: Reply[] = [];
  for (let i = 0; i < 300; i++) {
    const kind = r.int(0, 5);
    if (kind === 0) replies.push(null);
    else if (kind === 1) replies.push(text());
    else if (kind === 2) replies.push(new RedisError(`ERR ${i} wrong`));
    else if (kind === 3) replies.push(r.int(-1000, 1000));
    else replies.push(Array.from({ length: r.int(0, 6) }, () => (r.chance(0.3) ? null : text())));
  }
  const bytes = Buffer.from(replies.map(encode).join(''), 'utf8');
  // Bulk strings come as latin1 text of their bytes, undecoded.
  const latin1 = (x: Reply): Reply => (typeof x === 'string' ? Buffer.from(x).toString('latin1') : Array.isArray(x) ? x.map(latin1) : x);
  for (let trial = 0; trial < 40; trial++) {
    const p = new ReplyParser();
    const got: Reply[] = [];
    let at = 0;
    while (at < bytes.length) {
      // Cuts anywhere, including inside a UTF-8 sequence and between \r and \n.
      const n = trial === 0 ? 1 : r.int(1, 64);
      p.feed(bytes.subarray(at, at + n));
      at += n;
      for (let x = p.next(); x !== undefined; x = p.next()) got.push(x);
    }
    assert.equal(p.next(), undefined);
    assert.equal(got.length, replies.length, `trial ${trial}`);
    got.forEach((g, i) => {
      if (replies[i] instanceof RedisError) {
        assert.ok(g instanceof RedisError);
        assert.equal(g.message, (replies[i] as RedisError).message);
      } else assert.deepEqual(g, latin1(replies[i]), `reply ${i}`);
    });
  }
});

test('HMGET replies of states, cut anywhere, read back as JSON.parse reads their UTF-8', () => {
  // What the Redis store does with a reply: each value's latin1 text to parseState. Strings with multi-byte characters
  // (split across chunks), escapes, raw bytes that are not UTF-8, long strings, nulls, absent fields.
  const value = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.constantFrom('São Paulo', 'a"b\\c\n', '𝄞 clef, long enough to copy', '\u0000', ''), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.boolean(), fc.constant(null));
  const stateBytes = fc.oneof(
    { weight: 4, arbitrary: fc.array(value, { maxLength: 8 }).map((v) => Buffer.from(JSON.stringify({ b: [1767225600123, 42, v] }))) },
    // Bytes that are not UTF-8 inside a string: decoded to U+FFFD as a whole state's UTF-8 decoding does.
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }).map((raw) => Buffer.concat([Buffer.from('{"b":[1,2,["x'), Buffer.from(raw.filter((c) => c >= 0x80)), Buffer.from('",3]]}')])) },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  fc.assert(
    fc.property(fc.array(stateBytes, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 40 }), (states, step) => {
      const wire = Buffer.concat([Buffer.from(`*${states.length}\r\n`), ...states.map((b) => (b === null ? Buffer.from('$-1\r\n') : Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])))]);
      const p = new ReplyParser();
      let got: Reply | undefined;
      let bytes: Buffer = Buffer.alloc(0);
      let starts: number[] = [];
      for (let at = 0; at < wire.length; at += step) {
        p.feed(wire.subarray(at, at + step));
        if (got === undefined && (got = p.next()) !== undefined) ({ bytes, starts } = p);
      }
      // A reply after it: the parser's next buffer, which must not disturb the bytes the states are read from.
      p.feed(Buffer.from('*1\r\n$3\r\n{"b\r\n'));
      assert.ok(Array.isArray(got));
      assert.equal(starts.length, states.length);
      got.forEach((g, i) => {
        const b = states[i];
        if (b === null) return assert.equal(starts[i], -1);
        const want = JSON.parse(b.toString('utf8'));
        assert.deepStrictEqual(parseState(g as string), want);
        // Off the reply's own bytes, as the Redis store reads states (the bytes past each state are the reply's CRLF and the next value).
        assert.deepStrictEqual(parseState(g as string, bytes, starts[i]), want);
      });
    }),
    { numRuns: 1000 },
  );
});

test('replies longer than a chunk (states of up to 40 kB, in chunks of 1 byte to 100 kB) read back whole; earlier replies keep their bytes', () => {
  // Large replies go through the parser's own growing buffer and resume mid-array: every state must still be read off
  // `bytes` at its start, including after later chunks moved the reply being read into a bigger buffer.
  const r = rng(47);
  const state = (i: number): Buffer | null => {
    if (r.chance(0.1)) return null;
    const values = Array.from({ length: r.int(0, 4000) }, (_, k) => (k % 3 === 0 ? `é${i}-${k}` : k % 3 === 1 ? k * 0.25 : k % 2 === 0));
    return Buffer.from(JSON.stringify({ b: [1767225600000 + i, i, values] }));
  };
  const replies = Array.from({ length: 6 }, (_, j) => Array.from({ length: r.int(1, 60) }, (_, i) => state(j * 100 + i)));
  const wire = Buffer.concat(
    replies.flatMap((states) => [Buffer.from(`*${states.length}\r\n`), ...states.map((b) => (b === null ? Buffer.from('$-1\r\n') : Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])))]),
  );
  assert.ok(wire.length > 1_000_000, `${wire.length} bytes`);
  for (let trial = 0; trial < 6; trial++) {
    const p = new ReplyParser();
    const got: { values: Reply; bytes: Buffer; starts: number[] }[] = [];
    for (let at = 0; at < wire.length; ) {
      const n = trial === 0 ? 65536 : r.chance(0.2) ? r.int(1, 16) : r.int(1, 100_000);
      p.feed(wire.subarray(at, at + n));
      at += n;
      for (let x = p.next(); x !== undefined; x = p.next()) got.push({ values: x, bytes: p.bytes, starts: p.starts });
    }
    assert.equal(got.length, replies.length, `trial ${trial}`);
    // Checked after the whole stream: no later chunk may have changed an earlier reply's bytes or starts.
    got.forEach(({ values, bytes, starts }, j) => {
      const states = replies[j];
      assert.deepEqual(values, states.map((b) => (b === null ? null : b.toString('latin1'))), `trial ${trial}, reply ${j}`);
      assert.deepEqual(starts.map((s) => s < 0), states.map((b) => b === null), `trial ${trial}, reply ${j}`);
      states.forEach((b, i) => {
        if (b !== null) assert.deepStrictEqual(parseState((values as string[])[i], bytes, starts[i]), JSON.parse(b.toString('utf8')), `trial ${trial}, reply ${j}, state ${i}`);
      });
    });
  }
});

test('bytes that are not RESP are refused, not guessed at', () => {
  const p = new ReplyParser();
  p.feed(Buffer.from('HTTP/1.1 400 Bad Request\r\n'));
  assert.throws(() => p.next(), /not a RESP reply/);
});

test('only plain redis:// URLs use the lean client', () => {
  assert.equal(leanReaderSupports('redis://127.0.0.1:6379'), true);
  assert.equal(leanReaderSupports('redis://user:pw@host:6380/2'), true);
  assert.equal(leanReaderSupports('rediss://host:6379'), false);
  assert.equal(leanReaderSupports('redis://host?family=6'), false);
  assert.equal(leanReaderSupports('not a url'), false);
});

/**
 * A peer that answers each HMGET (one per connection here) with `reply`, in `pieces` parts `gapMs` apart, or stops
 * after `stopAfter` parts (a server that froze mid-reply). Not Redis: a real one cannot be made to send slowly on cue
 * (its freezing is covered with SIGSTOP in the Redis integration tests).
 */
async function slowPeer(reply: Buffer, pieces: number, gapMs: number, stopAfter = pieces): Promise<{ url: string; server: Server; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.once('data', async () => {
      const size = Math.ceil(reply.length / pieces);
      for (let p = 0; p < Math.min(pieces, stopAfter); p++) {
        if (p) await new Promise((r) => setTimeout(r, gapMs));
        if (socket.destroyed) return;
        socket.write(reply.subarray(p * size, (p + 1) * size));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`, server, sockets };
}

test('a reply still arriving is not a frozen server: the timeout counts from the last bytes received', async () => {
  const values = ['1', ...Array.from({ length: 40 }, (_, i) => `{"b":[${i},${i},["${'v'.repeat(200)}"]]}`)];
  const reply = Buffer.from(`*${values.length}\r\n` + values.map((v) => `$${v.length}\r\n${v}\r\n`).join(''), 'latin1');
  // 16 parts 60 ms apart: about 900 ms in all, six times the timeout, never 150 ms without bytes.
  const slow = await slowPeer(reply, 16, 60);
  const reader = new RedisLookupReader(slow.url, 150, silentLogger);
  try {
    await reader.whenReady(2000);
    const started = performance.now();
    const got = await reader.hmget('k', ['f']);
    assert.ok(performance.now() - started > 600, 'the reply took longer than the timeout');
    assert.deepEqual(got.values, values);
  } finally {
    reader.close();
    for (const s of slow.sockets) s.destroy();
    slow.server.close();
  }
  // The same peer stopping after 3 parts: the lookup fails about a timeout after the last bytes.
  const frozen = await slowPeer(reply, 16, 60, 3);
  const stuck = new RedisLookupReader(frozen.url, 150, silentLogger);
  try {
    await stuck.whenReady(2000);
    const started = performance.now();
    await assert.rejects(stuck.hmget('k', ['f']), /timed out/);
    const ms = performance.now() - started;
    assert.ok(ms > 120 + 150 && ms < 5000, `failed ${Math.round(ms)} ms after sending`);
  } finally {
    stuck.close();
    for (const s of frozen.sockets) s.destroy();
    frozen.server.close();
  }
});

test("a turn's lookups go out in one write at the end of the turn, except that a batch of FLUSH_COMMANDS lookups or FLUSH_FIELDS fields is written at once", async () => {
  // A peer that answers each HMGET with as many nulls as it asked for.
  const server = createServer((socket) => {
    const parser = new ReplyParser();
    socket.on('data', (chunk: Buffer) => {
      parser.feed(chunk);
      for (let c = parser.next(); c !== undefined; c = parser.next()) socket.write(encode(new Array((c as string[]).length - 2).fill(null)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const reader = new RedisLookupReader(`redis://127.0.0.1:${(server.address() as { port: number }).port}`, 1000, silentLogger);
  try {
    await reader.whenReady(2000);
    // Each write: the field counts of its HMGETs, and whether it went out before the calling step ended.
    const writes: { fields: number[]; early: boolean }[] = [];
    let stepDone = false;
    const socket = (reader as unknown as { socket: Socket }).socket;
    const write = socket.write.bind(socket) as (b: Buffer) => boolean;
    socket.write = ((b: Buffer) => {
      const fields = [...b.toString('latin1').matchAll(/\*(\d+)\r\n\$5\r\nHMGET/g)].map((m) => Number(m[1]) - 2);
      writes.push({ fields, early: !stepDone });
      return write(b);
    }) as typeof socket.write;
    const fields = (n: number): string[] => Array.from({ length: n }, (_, i) => `e${i}`);
    // Three 2-field lookups stay below both thresholds, one more of FLUSH_FIELDS takes the batch over the fields'.
    assert.ok(FLUSH_FIELDS > 6 && FLUSH_COMMANDS > 4);
    const F = FLUSH_FIELDS;
    const asked = [F, 2, 2, 2, F, 2, 2];
    const answers = asked.map((n) => reader.hmget('k', fields(n)));
    stepDone = true;
    const got = await Promise.all(answers);
    assert.deepEqual(got.map((g) => g.values.length), asked);
    assert.deepEqual(writes, [
      { fields: [F], early: true },
      { fields: [2, 2, 2, F], early: true },
      { fields: [2, 2], early: false },
    ]);
    // Small lookups: FLUSH_COMMANDS of them go at once, the rest at the end of the turn.
    assert.ok(2 * (FLUSH_COMMANDS + 3) < FLUSH_FIELDS);
    writes.length = 0;
    stepDone = false;
    const small = Array.from({ length: FLUSH_COMMANDS + 3 }, () => reader.hmget('k', fields(2)));
    stepDone = true;
    await Promise.all(small);
    assert.deepEqual(writes, [
      { fields: new Array(FLUSH_COMMANDS).fill(2), early: true },
      { fields: [2, 2, 2], early: false },
    ]);
    // A few mid-sized lookups, below both thresholds together, wait for the end of the turn.
    writes.length = 0;
    stepDone = false;
    const mid = Array.from({ length: 3 }, () => reader.hmget('k', fields(20)));
    stepDone = true;
    await Promise.all(mid);
    assert.deepEqual(writes, [{ fields: [20, 20, 20], early: false }]);
  } finally {
    reader.close();
    server.close();
  }
});
