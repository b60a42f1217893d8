/**
 * The apache-arrow internals asof uses (src/engine/arrow-internals.ts), each
 * checked against Arrow's public API: when an Arrow upgrade moves or changes
 * one, this fails and says which, before the changelog codec misbehaves.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import * as internals from '../../src/engine/arrow-internals.js';

const table = new A.Table({ id: A.vectorFromArray([1, 2, 3], new A.Int32()), score: A.vectorFromArray([0.5, -1, 2.25], new A.Float64()), name: A.vectorFromArray(['a', 'bé', 'c'], new A.Utf8()) });
const batch = table.batches[0];

test('arrow internals: every export exists and is a class', () => {
  for (const name of ['VectorAssembler', 'VectorLoader', 'RecordBatchHeader'] as const) {
    assert.equal(typeof internals[name], 'function', `apache-arrow internal ${name} is gone (src/engine/arrow-internals.ts): this Arrow version moved it`);
  }
});

/** The messages of an IPC stream (continuation marker, metadata length, metadata, body), by the format spec. */
function messages(stream: Uint8Array): { message: A.Message; body: Uint8Array }[] {
  const out: { message: A.Message; body: Uint8Array }[] = [];
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  let at = 0;
  while (at + 8 <= stream.length) {
    const len = view.getInt32(at + 4, true);
    if (len === 0) break;
    const message = A.Message.decode(stream.subarray(at + 8, at + 8 + len));
    const bodyAt = at + 8 + len;
    out.push({ message, body: stream.subarray(bodyAt, bodyAt + Number(message.bodyLength)) });
    at = bodyAt + Number(message.bodyLength);
  }
  return out;
}

type Header = { length: number; nodes: { length: number; nullCount: number }[]; buffers: { offset: number; length: number }[] };
const stream = A.RecordBatchStreamWriter.writeAll(table).toUint8Array(true);
const [schemaMessage, batchMessage] = messages(stream);

test('arrow internals: VectorAssembler + RecordBatchHeader make the record batch the public stream writer makes', () => {
  const body = internals.VectorAssembler.assemble(...batch.data.children.map((d) => new A.Vector([d])));
  const mine = A.Message.decode(A.Message.encode(A.Message.from(new internals.RecordBatchHeader(batch.numRows, body.nodes, body.bufferRegions), body.byteLength)));
  assert.equal(mine.isRecordBatch(), true, 'RecordBatchHeader makes a record batch message');
  const pub = batchMessage.message;
  assert.equal(Number(mine.bodyLength), Number(pub.bodyLength), 'VectorAssembler: body length');
  const h = (m: A.Message): Header => m.header() as unknown as Header;
  assert.deepEqual(h(mine).nodes.map((n) => [Number(n.length), Number(n.nullCount)]), h(pub).nodes.map((n) => [Number(n.length), Number(n.nullCount)]), 'VectorAssembler: field nodes');
  assert.deepEqual(h(mine).buffers.map((b) => [Number(b.offset), Number(b.length)]), h(pub).buffers.map((b) => [Number(b.offset), Number(b.length)]), 'VectorAssembler: buffer regions');
});

test("arrow internals: VectorLoader reads the public writer's batch body back to the same values", () => {
  const schema = schemaMessage.message.header() as A.Schema;
  const header = batchMessage.message.header() as unknown as { nodes: never; buffers: never };
  const children = new internals.VectorLoader(batchMessage.body, header.nodes, header.buffers, new Map(), batchMessage.message.version).visitMany(schema.fields) as A.Data[];
  const got = schema.fields.map((_f, i) => [...new A.Vector([children[i]])]);
  assert.deepEqual(got, [[1, 2, 3], [0.5, -1, 2.25], ['a', 'bé', 'c']], 'VectorLoader: values');
});
