/**
 * Tiered frames → the record batches LanceDB appends (lance-tier.ts has the
 * dataset's layout), built in LanceDB's own load of apache-arrow.
 *
 * LanceDB is CommonJS and checks Arrow objects with instanceof against its
 * require() of apache-arrow, which is not the ES module copy the engine
 * builds with. Tiering used to build each step's table in the engine's copy,
 * write it as IPC and read it back in LanceDB's (and copied every frame's
 * bytes into a Binary builder): about half of the worker's JavaScript, 0.7
 * CPU-ms per 1,000 records tiered on its thread against 0.9 in Lance's own
 * (session 12). Here the same batches are made in LanceDB's copy directly:
 * each stored column's buffers (decoded in place from the frame's payload)
 * are relabelled with that copy's types, and the record columns
 * (`_asof_offset`, `_asof_commit_time`, `_asof_frame`, `_asof_frame_pos`)
 * are written straight into typed arrays over the frame's own bytes.
 */
import * as A from 'apache-arrow';
import { createRequire } from 'node:module';
import { arrowType, buildColumn, CHANGE_COLUMN, decodeIpc } from './arrow-codec.js';
import type { ColdColumn, ColdFrame } from './cold-tier.js';
import { HEADER_BYTES, splitBody } from './log.js';

type ArrowModule = typeof import('apache-arrow');
/** LanceDB's copy of apache-arrow: what its `add`, `createTable` and query results use. */
export const LA: ArrowModule = createRequire(import.meta.url)('apache-arrow');

export const OFFSET = '_asof_offset';
export const COMMIT = '_asof_commit_time';
export const FRAME = '_asof_frame';
export const FRAME_POS = '_asof_frame_pos';

/**
 * The frame column is stored uncompressed: it repeats every frame's bytes,
 * and Lance's default zstd on it was most of tiering's compression work.
 * 200k records of bench:ingest's 5 columns, 64-frame commits, in process:
 * 1.11-1.26 CPU-ms per 1,000 records tiered against 1.48-1.57, the dataset
 * 13.4 MB against 7.7 (session 12); frames read back from Lance need no
 * decompression either. Lance applies it to datasets created with it.
 */
const FRAME_METADATA = new Map([['lance-encoding:compression', 'none']]);

/** The dataset's fields for a table's columns (record columns first), in LanceDB's Arrow. */
export function lanceFields(columns: ColdColumn[]): A.Field[] {
  return [
    new LA.Field(OFFSET, new LA.Int64(), false),
    new LA.Field(CHANGE_COLUMN, new LA.Int8(), false),
    new LA.Field(COMMIT, new LA.TimestampMillisecond('UTC'), false),
    new LA.Field(FRAME, new LA.Binary(), true, FRAME_METADATA),
    new LA.Field(FRAME_POS, new LA.Int64(), true),
    ...columns.map((c) => new LA.Field(c.name, arrowType(c.type, LA), true)),
  ];
}

/** One frame's records as a record batch of `schema` (lanceFields of `columns`), in LanceDB's Arrow. */
export function frameBatch(schema: A.Schema, columns: ColdColumn[], { meta, bytes }: ColdFrame): A.RecordBatch {
  const stored = decodeIpc(splitBody(bytes[4], bytes.subarray(HEADER_BYTES)).payload);
  const n = meta.count;
  const fields = schema.fields;
  const firstOnly = firstOnlyBitmap(n);
  const framePos = new BigInt64Array(n);
  framePos[0] = BigInt(meta.pos);
  const frameEnds = new Int32Array(n + 1).fill(bytes.length);
  frameEnds[0] = 0;
  const children = [
    int64Data(fields[0].type, int64Run(n, meta.firstOffset, 1)),
    relabel(stored.column(CHANGE_COLUMN)!, fields[1].type),
    int64Data(fields[2].type, int64Run(n, meta.commitTime, 0)),
    new LA.Data(fields[3].type, 0, n, n - 1, [frameEnds, bytes, firstOnly] as never),
    new LA.Data(fields[4].type, 0, n, n - 1, [undefined, framePos, firstOnly] as never),
    // A column added after this frame was written reads as null (built in the engine's Arrow, then relabelled: rare).
    ...columns.map((c, j) => relabel(stored.column(c.name) ?? buildColumn(c.type, new Array(n).fill(null)), fields[5 + j].type)),
  ];
  return new LA.RecordBatch(schema, LA.makeData({ type: new LA.Struct(fields), length: n, nullCount: 0, children }));
}

/** The same buffers under LanceDB's Arrow type (the same type in the other copy), children too. */
function relabel(d: A.Data, type: A.DataType): A.Data {
  const children = d.children.map((c, i) => relabel(c, type.children[i].type));
  return new LA.Data(type, d.offset, d.length, d.nullCount, [d.valueOffsets, d.values, d.nullBitmap, d.typeIds] as never, children);
}

function int64Data(type: A.DataType, values: BigInt64Array): A.Data {
  return new LA.Data(type, 0, values.length, 0, [undefined, values] as never);
}

/** from, from + step, ... (n values, all safe integers), written as two int32 halves each: no BigInt per value. */
function int64Run(n: number, from: number, step: number): BigInt64Array {
  const out = new BigInt64Array(n);
  const halves = new Int32Array(out.buffer);
  for (let i = 0, v = from; i < n; i++, v += step) {
    const hi = Math.floor(v / 4294967296);
    halves[2 * i] = v - hi * 4294967296;
    halves[2 * i + 1] = hi;
  }
  return out;
}

/** Validity bits with only the first of n set (the frame columns: a value on a frame's first record). */
function firstOnlyBitmap(n: number): Uint8Array {
  const bits = new Uint8Array(((n + 63) & ~63) >> 3);
  bits[0] = 1;
  return bits;
}
