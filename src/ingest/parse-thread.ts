/**
 * An ingest thread (parse-pool.ts): parses and validates JSON write bodies
 * and answers their rows as columns, or nothing (the main thread then parses
 * the body itself); json-rows.ts says why and when.
 */
import { parentPort } from 'node:worker_threads';
import type { TableDef } from '../engine/schema.js';
import { parseWriteBody, SchemaCache, transferList, type ParsedRows } from './json-rows.js';

export interface ParseRequest {
  id: number;
  bytes: Uint8Array;
  /** SchemaCache.keyOf the table's definition; `def` comes along the first time a thread is sent this key. */
  schemaKey: string;
  def?: TableDef;
  maxRows: number;
}

export interface ParseReply {
  id: number;
  parsed?: ParsedRows;
  /** The thread no longer holds the definition of `schemaKey` (the main thread sends it again next time). */
  forgot?: boolean;
}

const schemas = new SchemaCache();

parentPort!.on('message', (m: ParseRequest) => {
  let reply: ParseReply = { id: m.id };
  try {
    const schema = schemas.get(m.schemaKey) ?? (m.def ? schemas.set(m.schemaKey, m.def) : undefined);
    if (!schema) reply = { id: m.id, forgot: true };
    else reply = { id: m.id, parsed: parseWriteBody(m.bytes, schema, m.maxRows) };
  } catch {
    // Whatever went wrong here, the main thread parses the body and answers as it always does.
  }
  parentPort!.postMessage(reply, reply.parsed ? transferList(reply.parsed) : []);
});
