/**
 * The cold tier's worker thread (cold-thread.ts starts it): every LanceDB
 * call, and the Arrow work around it, runs here, so tiering's copy of each
 * record (decoding frames, building Arrow batches, the Lance commit and its
 * index upkeep) and cold reads never take the ingest path's event loop.
 *
 * Requests come one message each (`ColdRequest`) and are answered by id, in
 * any order; an error is answered as its message. Bytes going back to the
 * main thread are fresh buffers, transferred, not copied.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { ColdColumn, ColdFrame, ColdTable, KeyMatch } from './cold-tier.js';
import { openLanceTier } from './lance-tier.js';

/** What the main thread asks, one message each. */
export type ColdRequest = { id: number } & (
  | { op: 'open'; table: string; keyColumns: string[] }
  | { op: 'append'; table: string; frames: ColdFrame[]; columns: ColdColumn[] }
  | { op: 'frames'; table: string; from: number; to: number }
  | { op: 'keyRecords'; table: string; key: KeyMatch[]; from: number; to: number; expected: number }
  | { op: 'close' }
);

/** Where a table's cold data stands after an open or an append, and which thread answered. */
export interface ColdState {
  end: number;
  versions: { version: number; end: number }[];
  threadId: number;
}

export type ColdReply = { id: number; value?: unknown; error?: string };

export interface ColdWorkerData {
  uri: string;
  storageOptions: Record<string, string>;
}

if (!parentPort) throw new Error('cold-worker.ts runs only as a worker thread (cold-thread.ts)');
const port = parentPort;
const { uri, storageOptions } = workerData as ColdWorkerData;
const tier = openLanceTier(uri, storageOptions);
tier.catch(() => undefined); // a failed connect is answered to every request that needs it
const tables = new Map<string, ColdTable>();

const state = (t: ColdTable): ColdState => ({ end: t.end(), versions: t.versions(), threadId });

function opened(name: string): ColdTable {
  const t = tables.get(name);
  if (!t) throw new Error(`cold tier worker: table "${name}" is not open here`);
  return t;
}

async function handle(req: ColdRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
  switch (req.op) {
    case 'open': {
      const t = tables.get(req.table) ?? (await (await tier).open(req.table, req.keyColumns));
      tables.set(req.table, t);
      return { value: state(t) };
    }
    case 'append': {
      const t = opened(req.table);
      await t.append(req.frames, req.columns);
      return { value: state(t) };
    }
    case 'frames': {
      // Each frame copied out of the query's batch, so only its own bytes cross (transferred).
      const frames = (await opened(req.table).frames(req.from, req.to)).map((f) => ({ meta: f.meta, bytes: f.bytes.slice() }));
      return { value: frames, transfer: frames.map((f) => f.bytes.buffer as ArrayBuffer) };
    }
    case 'keyRecords': {
      // Each in a buffer of its own already (lance-tier.ts), else copied out.
      const got = (await opened(req.table).keyRecords(req.key, req.from, req.to, req.expected)).map((b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice()));
      return { value: got, transfer: got.map((b) => b.buffer as ArrayBuffer) };
    }
    case 'close': {
      for (const t of tables.values()) await t.close();
      tables.clear();
      await (await tier).close();
      return { value: null };
    }
  }
}

port.on('message', (req: ColdRequest) => {
  handle(req).then(
    ({ value, transfer }) => {
      port.postMessage({ id: req.id, value } satisfies ColdReply, transfer ?? []);
      // Closed: nothing else keeps the thread alive, so it exits on its own once LanceDB's work is done.
      if (req.op === 'close') port.close();
    },
    (e: unknown) => port.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e) } satisfies ColdReply),
  );
});
