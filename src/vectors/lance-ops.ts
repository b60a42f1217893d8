/**
 * The vector columns' side in the process's LanceDB thread
 * (engine/lance-host.ts runs these handlers; lance-client.ts asks them): each
 * column's LanceVectors and its older-version handles live here, named by
 * numbers the main thread holds. The main thread never loads LanceDB.
 */
import type * as lancedb from '@lancedb/lancedb';
import type { HostAnswer } from '../engine/lance-host.js';
// Only here, in the LanceDB thread: lance-tier.ts loads the CommonJS copy of Arrow that LanceDB uses.
import { ipcBatches } from '../engine/lance-tier.js';
import { lanceModule, LanceVectors, type IndexParams, type StoreColumn } from './lance-store.js';
import type { Metric } from './distance.js';

/** A vector service's Lance connection: its id, and where its datasets are. */
export interface VectorConn {
  id: string;
  uri: string;
  storageOptions?: Record<string, string>;
}

/** The LanceVectors methods the main thread may call (lance-client.ts). */
export type StoreMethod = 'addMissingColumns' | 'upsert' | 'append' | 'deleteKeys' | 'deleteAfter' | 'version' | 'latest' | 'countRows' | 'indexStats' | 'buildIndex' | 'ensureKeyIndex' | 'optimize' | 'versions';
const METHODS = new Set<string>(['addMissingColumns', 'upsert', 'append', 'deleteKeys', 'deleteAfter', 'version', 'latest', 'countRows', 'indexStats', 'buildIndex', 'ensureKeyIndex', 'optimize', 'versions'] satisfies StoreMethod[]);

const conns = new Map<string, Promise<lancedb.Connection>>();
const stores = new Map<number, LanceVectors>();
const versionTables = new Map<number, lancedb.Table>();
let next = 1;

function connection(c: VectorConn): Promise<lancedb.Connection> {
  let db = conns.get(c.id);
  if (!db) {
    db = lanceModule().then((m) => m.connect(c.uri, c.storageOptions ? { storageOptions: c.storageOptions } : undefined));
    db.catch(() => conns.delete(c.id));
    conns.set(c.id, db);
  }
  return db;
}

function store(h: number): LanceVectors {
  const s = stores.get(h);
  if (!s) throw new Error(`vector store ${h} is not open in this LanceDB thread`);
  return s;
}

export async function tableNames(c: VectorConn): Promise<HostAnswer> {
  return { value: await (await connection(c)).tableNames() };
}

/** Opens (or creates) a column's dataset; answers its handle. */
export async function open(c: VectorConn, name: string, dim: number, columns: StoreColumn[], fresh: boolean): Promise<HostAnswer> {
  const s = await LanceVectors.open(await connection(c), name, dim, columns, fresh);
  const h = next++;
  stores.set(h, s);
  return { value: h };
}

export async function call(h: number, method: StoreMethod, args: unknown[]): Promise<HostAnswer> {
  if (!METHODS.has(method)) throw new Error(`LanceVectors has no method "${method}" the main thread may call`);
  const s = store(h) as unknown as Record<StoreMethod, (...a: unknown[]) => Promise<unknown>>;
  return { value: (await s[method](...args)) ?? null };
}

/** A read-only handle on version `version` of store `h`; answers its handle and the columns that version has. */
export async function at(h: number, version: number): Promise<HostAnswer> {
  const t = await store(h).at(version);
  const columns = await t.schema().then(
    (s) => s.fields.map((f) => f.name),
    (e: unknown) => {
      t.close();
      throw e;
    },
  );
  const v = next++;
  versionTables.set(v, t);
  return { value: { id: v, columns } };
}

/** Nearest rows of store `h`, or of the older version `v` when given: Arrow IPC streams, transferred (lance-store.ts). */
export async function search(h: number, v: number | undefined, q: { vector: Float32Array; limit: number; metric: Metric; where?: string; exact: boolean; params: IndexParams }): Promise<HostAnswer> {
  let t: lancedb.Table | undefined;
  if (v === undefined) t = store(h).table;
  else t = versionTables.get(v);
  if (!t) throw new Error(`vector version handle ${v} is not open in this LanceDB thread`);
  const batches = await ipcBatches(LanceVectors.searchQuery(t, q));
  return { value: batches, transfer: batches.map((b) => b.buffer as ArrayBuffer) };
}

export async function closeVersion(v: number): Promise<HostAnswer> {
  versionTables.get(v)?.close();
  versionTables.delete(v);
  return { value: null };
}

export async function close(h: number): Promise<HostAnswer> {
  stores.get(h)?.close();
  stores.delete(h);
  return { value: null };
}

export async function disconnect(c: VectorConn): Promise<HostAnswer> {
  const db = conns.get(c.id);
  conns.delete(c.id);
  await db?.then((d) => d.close(), () => undefined);
  return { value: null };
}
