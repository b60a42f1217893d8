/**
 * The cold tier's side in the process's LanceDB thread (lance-host.ts runs
 * these handlers; cold-thread.ts asks them): every LanceDB call, and the Arrow
 * work around it, runs there, so tiering's copy of each record (decoding
 * frames, building Arrow batches, the Lance commit and its index upkeep) and
 * cold reads never take the ingest path's event loop.
 *
 * Each cold tier (an Engine's) is a connection of its own, named by the id its
 * ColdThreadTier made, with its own open tables. Bytes going back to the main
 * thread are fresh buffers, transferred, not copied.
 */
import { threadId } from 'node:worker_threads';
import type { ColdColumn, ColdFrame, ColdTable, ColdTier, KeyMatch } from './cold-tier.js';
import type { HostAnswer } from './lance-host.js';
import { openLanceTier } from './lance-tier.js';
import { StepTrimmer } from './native-heap.js';

/** Which cold tier a request is for: its id, and where its Lance data is. */
export interface ColdConn {
  id: string;
  uri: string;
  storageOptions: Record<string, string>;
}

/** Where a table's cold data stands after an open or an append, and which thread answered. */
export interface ColdState {
  end: number;
  threadId: number;
  /** Why the last append's index upkeep failed (it is tried again after the next): the main thread logs it. */
  maintenance?: string;
}

/** Gives the memory tiering steps freed back to the OS (native-heap.ts): one for the thread, whichever tier stepped. */
const trimmer = new StepTrimmer();

const tiers = new Map<string, { tier: Promise<ColdTier>; tables: Map<string, ColdTable> }>();

/** The cold tier `c`, connected on its first request (a failed connect is answered to every request that needs it). */
function tierOf(c: ColdConn): { tier: Promise<ColdTier>; tables: Map<string, ColdTable> } {
  let t = tiers.get(c.id);
  if (!t) {
    const tier = openLanceTier(c.uri, c.storageOptions);
    tier.catch(() => undefined);
    tiers.set(c.id, (t = { tier, tables: new Map() }));
  }
  return t;
}

const state = (t: ColdTable): ColdState => ({ end: t.end(), threadId, maintenance: t.maintenanceFailure?.() });

function opened(c: ColdConn, name: string): ColdTable {
  const t = tierOf(c).tables.get(name);
  if (!t) throw new Error(`cold tier worker: table "${name}" is not open here`);
  return t;
}

export async function open(c: ColdConn, table: string, keyColumns: string[]): Promise<HostAnswer> {
  const { tier, tables } = tierOf(c);
  const t = tables.get(table) ?? (await (await tier).open(table, keyColumns));
  tables.set(table, t);
  return { value: state(t) };
}

export async function append(c: ColdConn, table: string, frames: ColdFrame[], columns: ColdColumn[]): Promise<HostAnswer> {
  const t = opened(c, table);
  await t.append(frames, columns);
  // The step's record batches were decoded and written by LanceDB's threads and are freed now: give their memory back (native-heap.ts).
  trimmer.afterStep();
  return { value: state(t) };
}

export async function frames(c: ColdConn, table: string, from: number, to: number): Promise<HostAnswer> {
  // Each frame copied out of the query's batch, so only its own bytes cross (transferred).
  const got = (await opened(c, table).frames(from, to)).map((f) => ({ meta: f.meta, bytes: f.bytes.slice() }));
  return { value: got, transfer: got.map((f) => f.bytes.buffer as ArrayBuffer) };
}

export async function keyRecords(c: ColdConn, table: string, key: KeyMatch[], from: number, to: number, expected: number): Promise<HostAnswer> {
  // Each in a buffer of its own already (lance-tier.ts), else copied out.
  const got = (await opened(c, table).keyRecords(key, from, to, expected)).map((b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice()));
  return { value: got, transfer: got.map((b) => b.buffer as ArrayBuffer) };
}

/** Closes the tier's tables and its connection (never the thread: other users share it). */
export async function close(c: ColdConn): Promise<HostAnswer> {
  const t = tiers.get(c.id);
  if (!t) return { value: null };
  tiers.delete(c.id);
  for (const table of t.tables.values()) await table.close();
  await (await t.tier.catch(() => undefined))?.close();
  return { value: null };
}
