/**
 * tierStep reads a step's frames from the hot log and hands them to the cold
 * tier: every frame's bytes exactly as the changelog stores them (oracle: the
 * log's own readBytes, frame by frame), all in the one buffer they were
 * read into, which the tier may take, whether the step lies in one segment
 * or across several.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBatch } from '../../src/engine/arrow-codec.js';
import type { ColdFrame, ColdTable } from '../../src/engine/cold-tier.js';
import { FrameIndex } from '../../src/engine/indexes.js';
import { FILE_START } from '../../src/engine/log.js';
import { TableSchema } from '../../src/engine/schema.js';
import { SegmentedLog } from '../../src/engine/segments.js';
import { tierStep } from '../../src/engine/table-tier.js';

const schema = new TableSchema({
  name: 't',
  kind: 'log',
  columns: [
    { name: 'k', type: 'int64', nullable: false },
    { name: 's', type: 'string', nullable: true },
  ],
  primaryKey: ['k'],
  eventTime: undefined,
  schemaVersions: [{ version: 1, columnCount: 2, createdAt: 0 }],
  createdAt: 0,
});

/** A cold table that records what it was given. */
function recording(): ColdTable & { got: { frames: ColdFrame[]; copies: Uint8Array[]; given?: ArrayBuffer }[] } {
  let end = 0;
  const got: { frames: ColdFrame[]; copies: Uint8Array[]; given?: ArrayBuffer }[] = [];
  return {
    got,
    end: () => end,
    append: async (frames, _columns, given) => {
      got.push({ frames, copies: frames.map((f) => Uint8Array.from(f.bytes)), given });
      end = frames[frames.length - 1].meta.firstOffset + frames[frames.length - 1].meta.count;
    },
    frames: async () => [],
    keyRecords: async () => [],
    close: async () => undefined,
  };
}

for (const segmentBytes of [1 << 20, 1000]) {
  test(`tierStep hands the cold tier each frame as stored (segments of ${segmentBytes} bytes)`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'asof-tier-step-'));
    const gap = async (): Promise<never> => {
      throw new Error('no gap expected');
    };
    const { log } = await SegmentedLog.open(dir, FILE_START, segmentBytes, () => undefined, gap, 't');
    try {
      const frames = new FrameIndex();
      let offset = 0;
      for (let b = 0; b < 12; b++) {
        // Strings of odd lengths, so frames are not all one size.
        const rows = Array.from({ length: 3 + b }, (_, i) => ({ k: offset + i, s: 'x'.repeat((b * 7 + i) % 13) }));
        const [meta] = await log.append([{ firstOffset: offset, count: rows.length, schemaVersion: 1, commitTime: 1000 + b, payload: encodeBatch(schema.columns, new Uint8Array(rows.length), rows) }]);
        frames.push(meta);
        offset += rows.length;
      }
      const cold = recording();
      const src = { frames, log, cold, coldBelow: 0, end: offset };
      const limits = { olderThan: 1005, maxRecords: 1_000_000, maxBytes: 1 << 30, due: Infinity };
      assert.equal(await tierStep(src, 't', schema.columns, limits), 3 + 4 + 5 + 6 + 7 + 8);
      assert.equal(await tierStep(src, 't', schema.columns, { ...limits, olderThan: Infinity }), offset - 33);
      assert.equal(cold.got.length, 2);
      const sent = cold.got.flatMap((g) => g.frames.map((f, i) => ({ meta: f.meta, bytes: g.copies[i] })));
      assert.equal(sent.length, 12);
      for (let i = 0; i < 12; i++) {
        assert.deepEqual(sent[i].meta, frames.get(i));
        assert.deepEqual(sent[i].bytes, new Uint8Array(await log.readBytes(frames.get(i))), `frame ${i}`);
      }
      // Every frame a view into the one buffer given up, within a segment or across several.
      for (const g of cold.got) {
        assert.ok(g.given);
        for (const f of g.frames) assert.equal(f.bytes.buffer, g.given);
      }
      if (segmentBytes < 100_000) assert.ok(log.segments().length > 3, 'steps across segments');
    } finally {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
