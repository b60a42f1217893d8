/**
 * The changelog and snapshots on disk, damaged by hand: torn and corrupt
 * tails, garbage, old and broken snapshots, a log shorter than its snapshot;
 * and the rule that a write is answered only after fdatasync. (Damage before
 * the end of the log: damage.test.ts; failed fdatasyncs: fsync-failure.test.ts.)
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, open, readFile, stat, truncate, unlink, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import type { Row } from '../../src/engine/schema.js';
import { ChangelogFile, HEADER_BYTES } from '../../src/engine/log.js';
import type { AsofError } from '../../src/errors.js';
import { captureLogger, tempDir } from '../helpers.js';

const ACCOUNTS = {
  kind: 'pk' as const,
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'name', type: 'string', nullable: true },
    { name: 'balance', type: 'float64', nullable: true },
  ],
};
const EVENTS = {
  kind: 'log' as const,
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'what', type: 'string', nullable: true },
  ],
};

async function openEngine(dataDir: string, snapshotEvery = 1e9) {
  const cap = captureLogger();
  const engine = await Engine.open({ dataDir, logger: cap.logger, snapshotEvery });
  return { engine, lines: cap.lines };
}

async function write(engine: Engine, table: string, rows: unknown[], op: 'upsert' | 'delete' = 'upsert') {
  const t = engine.table(table);
  const { rows: valid, issues } = t.schema.validate(rows, { keysOnly: op === 'delete' });
  assert.deepEqual(issues, []);
  return t.write(valid, op);
}

async function records(engine: Engine, table: string) {
  const out: { offset: number; changeType: string; commitTime: number; row: Row }[] = [];
  for await (const r of engine.table(table).scan()) out.push(r);
  return out;
}

/** Start positions of the frames in a changelog file, by walking the headers. */
function frameStarts(buf: Buffer): number[] {
  const starts: number[] = [];
  for (let pos = 0; pos + HEADER_BYTES <= buf.length; pos += HEADER_BYTES + buf.readUInt32LE(pos + 8)) starts.push(pos);
  return starts;
}

const logPath = (dir: string, table: string) => join(dir, 'tables', table, 'changelog-00000000000000000000.log');
const snapPath = (dir: string, table: string) => join(dir, 'tables', table, 'state.snapshot');

describe('a torn or corrupt changelog tail is cut at the last whole frame', () => {
  const damages: [string, (path: string, lastFrame: number, size: number) => Promise<number>][] = [
    ['truncated mid-frame', async (path, last, size) => {
      const cutAt = last + Math.floor((size - last) / 2);
      await truncate(path, cutAt);
      return cutAt - last;
    }],
    ['a byte flipped in the last frame\'s payload', async (path, last, size) => {
      const fh = await open(path, 'r+');
      const at = last + HEADER_BYTES + Math.floor((size - last - HEADER_BYTES) / 2);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at);
      b[0] ^= 0x40;
      await fh.write(b, 0, 1, at);
      await fh.close();
      return size - last;
    }],
    ['garbage appended', async (path) => {
      const junk = Buffer.from('not a frame, just what a crashed disk might leave behind...');
      await appendFile(path, junk);
      return junk.length;
    }],
    ['a plausible header with a bad checksum appended', async (path, last) => {
      const whole = await readFile(path);
      const header = Buffer.from(whole.subarray(last, last + HEADER_BYTES));
      header.writeBigInt64LE(BigInt(10_000), 16);
      await appendFile(path, Buffer.concat([header, Buffer.alloc(header.readUInt32LE(8))]));
      return HEADER_BYTES + header.readUInt32LE(8);
    }],
  ];

  for (const withSnapshot of [false, true]) {
    for (const [what, damage] of damages) {
      test(`${what} (${withSnapshot ? 'with an older snapshot' : 'no snapshot'})`, async () => {
        const dir = await tempDir();
        try {
          let { engine } = await openEngine(dir.path);
          await engine.defineTable('events', EVENTS);
          await engine.defineTable('accounts', ACCOUNTS);
          for (let i = 0; i < 4; i++) {
            await write(engine, 'events', Array.from({ length: 3 }, (_, j) => ({ user: i, ts: 1000 * i + j, what: `e${i}.${j} ☃` })));
            await write(engine, 'accounts', [{ id: i, name: `a${i}` }, { id: 0, balance: i }]);
          }
          await engine.close(); // snapshot here
          const older = `${dir.path}/older`;
          if (withSnapshot) for (const t of ['events', 'accounts']) await copyFile(snapPath(dir.path, t), `${older}-${t}`);
          ({ engine } = await openEngine(dir.path));
          for (let i = 4; i < 7; i++) {
            await write(engine, 'events', [{ user: i, ts: 1000 * i, what: `e${i}` }]);
            await write(engine, 'accounts', [{ id: i, name: `a${i}` }, { id: 1, balance: i }]);
          }
          const before = { events: await records(engine, 'events'), accounts: await records(engine, 'accounts') };
          const byId = (rows: Iterable<Row>) => [...rows].sort((a, b) => Number(a.id) - Number(b.id));
          const stateBefore = byId(engine.table('accounts').liveRows());
          await engine.close();
          // As if the process had died before the close: the snapshot is the older one, or none.
          for (const t of ['events', 'accounts']) {
            if (withSnapshot) await copyFile(`${older}-${t}`, snapPath(dir.path, t));
            else await unlink(snapPath(dir.path, t));
          }

          const cuts: Record<string, number> = {};
          const lastFrame: Record<string, { offset: number; count: number }> = {};
          for (const t of ['events', 'accounts']) {
            const buf = await readFile(logPath(dir.path, t));
            const starts = frameStarts(buf);
            const last = starts[starts.length - 1];
            lastFrame[t] = { offset: Number(buf.readBigInt64LE(last + 16)), count: buf.readUInt32LE(last + 24) };
            cuts[t] = await damage(logPath(dir.path, t), last, buf.length);
          }
          const reopened = await openEngine(dir.path);
          engine = reopened.engine;
          for (const t of ['events', 'accounts'] as const) {
            const warn = reopened.lines.find((l) => l.level === 'warn' && l.obj.table === t);
            assert.ok(warn, `a warning about ${t}`);
            assert.equal(warn.obj.cutBytes, cuts[t], 'the warning says how many bytes were cut');
            assert.match(warn.msg ?? '', new RegExp(`${cuts[t]} bytes`));
            const lostFrame = what.startsWith('truncated') || what.startsWith('a byte');
            const kept = lostFrame ? lastFrame[t].offset : lastFrame[t].offset + lastFrame[t].count;
            const got = await records(engine, t);
            assert.deepEqual(got, before[t].slice(0, kept), 'every whole frame before the damage is kept, exactly');
            assert.equal(engine.table(t).endOffset, kept);
            assert.equal((await stat(logPath(dir.path, t))).size, (await readFile(logPath(dir.path, t))).length);
          }
          if (!what.startsWith('truncated') && !what.startsWith('a byte')) {
            assert.deepEqual(byId(engine.table('accounts').liveRows()), stateBefore, 'nothing lost: the state is what it was');
          } else {
            assert.deepEqual(engine.table('accounts').get('1')?.balance, 5, 'the state is the one before the cut frame');
          }
          // Offsets continue densely on the next write, and a restart sees no damage any more.
          const next = await write(engine, 'events', [{ user: 99, ts: 1, what: 'after' }]);
          assert.equal(next.firstOffset, engine.table('events').endOffset - 1);
          assert.equal(next.firstOffset, (await records(engine, 'events')).length - 1);
          const afterWrite = await records(engine, 'events');
          await engine.close();
          const again = await openEngine(dir.path);
          assert.deepEqual(again.lines.filter((l) => l.level === 'warn'), []);
          assert.deepEqual(await records(again.engine, 'events'), afterWrite);
          await again.engine.close();
        } finally {
          await dir.cleanup();
        }
      });
    }
  }
});

describe('snapshots', () => {
  /** Writes inserts, updates and deletes over 300 keys in many small commits. */
  async function history(engine: Engine): Promise<void> {
    await engine.defineTable('accounts', ACCOUNTS);
    await engine.defineTable('events', EVENTS);
    for (let round = 0; round < 12; round++) {
      const rows = Array.from({ length: 50 }, (_, i) => ({ id: (round * 37 + i * 7) % 300, name: `n${round}-${i}`, balance: round * 1000 + i }));
      await Promise.all([
        write(engine, 'accounts', rows.slice(0, 25)),
        write(engine, 'accounts', rows.slice(25)),
        write(engine, 'events', rows.map((r) => ({ user: r.id, ts: r.balance, what: r.name }))),
      ]);
      if (round % 3 === 2) await write(engine, 'accounts', rows.slice(0, 10).map((r) => ({ id: r.id })), 'delete');
    }
  }

  async function image(engine: Engine) {
    const acc = engine.table('accounts');
    const ev = engine.table('events');
    const keys = [...new Set((await records(engine, 'accounts')).map((r) => String(r.row.id)))].sort();
    return {
      state: [...acc.liveRows()].sort((a, b) => Number(a.id) - Number(b.id)),
      rowCount: acc.rowCount,
      accounts: await records(engine, 'accounts'),
      events: await records(engine, 'events'),
      keyIndex: keys.map((k) => [k, [...acc.offsetsOf(k)], [...ev.offsetsOf(k)]]),
      end: [acc.endOffset, ev.endOffset, acc.lastCommit, ev.lastCommit],
    };
  }

  const cases: [string, number, (dir: string) => Promise<void>, RegExp | undefined][] = [
    ['no snapshot at all (full replay)', 1e9, async (dir) => {
      for (const t of ['accounts', 'events']) await unlink(snapPath(dir, t));
    }, undefined],
    ['the snapshot written at close', 1e9, async () => undefined, undefined],
    ['a snapshot older than the log tail', 300, async () => undefined, undefined],
    ['a damaged snapshot falls back to a full replay', 1e9, async (dir) => {
      for (const t of ['accounts', 'events']) {
        const buf = await readFile(snapPath(dir, t));
        buf[buf.length - 3] ^= 1;
        await writeFile(snapPath(dir, t), buf);
      }
    }, /snapshot unusable \(checksum mismatch\)/],
    ['a truncated snapshot falls back to a full replay', 1e9, async (dir) => {
      for (const t of ['accounts', 'events']) await truncate(snapPath(dir, t), 100);
    }, /snapshot unusable/],
  ];

  for (const [what, snapshotEvery, tamper, warning] of cases) {
    test(`state, changelog and key index after a restart equal those before: ${what}`, async () => {
      const dir = await tempDir();
      try {
        const first = await openEngine(dir.path, snapshotEvery);
        await history(first.engine);
        const before = await image(first.engine);
        let snapOffset = -1;
        if (what.includes('older')) {
          // Keep the snapshot the cadence wrote mid-way, as if the process died before the close.
          await first.engine.table('accounts').snapshot().catch(() => undefined);
          snapOffset = Number((await readFile(snapPath(dir.path, 'accounts'))).readDoubleLE(8));
          const kept = await readFile(snapPath(dir.path, 'accounts'));
          await write(first.engine, 'accounts', [{ id: 1, name: 'late' }, { id: 2 }]);
          await write(first.engine, 'accounts', [{ id: 3 }], 'delete');
          Object.assign(before, await image(first.engine));
          await first.engine.close();
          await writeFile(snapPath(dir.path, 'accounts'), kept);
        } else {
          await first.engine.close();
        }
        await tamper(dir.path);
        const second = await openEngine(dir.path, snapshotEvery);
        const recovered = second.lines.filter((l) => l.msg === 'table recovered');
        if (what.includes('older')) {
          const acc = recovered.find((l) => l.obj.table === 'accounts')!;
          assert.equal(acc.obj.fromSnapshot, snapOffset);
          assert.ok(snapOffset > 0 && (acc.obj.replayed as number) > 0, 'started from the snapshot and replayed the tail after it');
        }
        if (what.startsWith('the snapshot written')) assert.ok(recovered.every((l) => l.obj.replayed === 0), 'nothing to replay after a clean close');
        if (warning) assert.ok(second.lines.some((l) => l.level === 'warn' && warning.test(l.msg ?? '')), `warned: ${JSON.stringify(second.lines)}`);
        else assert.deepEqual(second.lines.filter((l) => l.level === 'warn'), []);
        assert.deepEqual(await image(second.engine), before);
        await second.engine.close();
      } finally {
        await dir.cleanup();
      }
    });
  }

  test('a changelog shorter than its snapshot (acknowledged records lost) does not open; the other tables serve', async () => {
    const dir = await tempDir();
    try {
      let { engine } = await openEngine(dir.path);
      await history(engine);
      const events = await records(engine, 'events');
      await engine.close();
      const size = (await stat(logPath(dir.path, 'accounts'))).size;
      await truncate(logPath(dir.path, 'accounts'), size - 10);
      ({ engine } = await openEngine(dir.path));
      assert.throws(() => engine.table('accounts'), (e: AsofError) => e.code === 'ASOF_TABLE_UNAVAILABLE' && /snapshot covers .* acknowledged records are missing/.test(e.message) && !e.message.includes(dir.path));
      assert.deepEqual(await records(engine, 'events'), events);
      await engine.close();
    } finally {
      await dir.cleanup();
    }
  });

  test('a snapshot that belongs to another changelog is ignored: the changelog wins', async () => {
    const [mine, other] = [await tempDir(), await tempDir()];
    try {
      const a = await openEngine(mine.path);
      await history(a.engine);
      await write(a.engine, 'accounts', [{ id: 7, name: 'only here' }]);
      const want = await image(a.engine);
      await a.engine.close();
      const b = await openEngine(other.path);
      await b.engine.defineTable('accounts', ACCOUNTS);
      await b.engine.defineTable('events', EVENTS);
      for (let i = 0; i < 5; i++) await write(b.engine, 'accounts', [{ id: 1000 + i, name: 'elsewhere' }]);
      await b.engine.close();
      await copyFile(snapPath(other.path, 'accounts'), snapPath(mine.path, 'accounts'));
      const again = await openEngine(mine.path);
      assert.ok(again.lines.some((l) => l.level === 'warn' && l.obj.table === 'accounts' && /snapshot unusable \(the frame at byte/.test(l.msg ?? '')), JSON.stringify(again.lines));
      assert.deepEqual(await image(again.engine), want);
      await again.engine.close();
    } finally {
      await mine.cleanup();
      await other.cleanup();
    }
  });

  test('damage to a frame after the table opened is an error when read, never a wrong answer', async () => {
    const dir = await tempDir();
    try {
      let { engine } = await openEngine(dir.path);
      await history(engine);
      await engine.close();
      ({ engine } = await openEngine(dir.path));
      const buf = await readFile(logPath(dir.path, 'events'));
      buf[frameStarts(buf)[1] + HEADER_BYTES + 20] ^= 0xff;
      await writeFile(logPath(dir.path, 'events'), buf);
      await assert.rejects(records(engine, 'events'), /fails its checksum/);
      await engine.close();
    } finally {
      await dir.cleanup();
    }
  });
});

test('a write is answered only after fdatasync returns', async () => {
  const dir = await tempDir();
  const real = ChangelogFile.fileOps;
  try {
    const { engine } = await openEngine(dir.path);
    await engine.defineTable('events', EVENTS);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let synced = 0;
    ChangelogFile.fileOps = {
      ...real,
      async datasync(path, fh) {
        await gate;
        synced++;
        return real.datasync(path, fh);
      },
    };
    let answered = false;
    const w = write(engine, 'events', [{ user: 1, ts: 1 }]).then((r) => ((answered = true), r));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false, 'no answer while fdatasync has not returned');
    release();
    assert.deepEqual((await w).firstOffset, 0);
    assert.equal(synced, 1);
    await engine.close();
  } finally {
    ChangelogFile.fileOps = real;
    await dir.cleanup();
  }
});
