/**
 * Parquet output through DuckDB: rows are appended to a DuckDB table in
 * 2,048-row data chunks (scalar columns copied from typed arrays in one call
 * each, not value by value), then `COPY ... TO` writes the file. DuckDB spills
 * to a temporary folder beyond its memory limit, so large outputs stay within
 * bounded memory.
 *
 * Types: bool BOOLEAN, int32 INTEGER, int64 BIGINT, float32 FLOAT, float64
 * DOUBLE, string and json VARCHAR (json as JSON text), timestamp TIMESTAMPTZ
 * (Parquet timestamp, UTC-adjusted, microseconds), list<T> T[], struct STRUCT,
 * vector<D> FLOAT[D].
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import duckdb from '@duckdb/node-bindings';
import { arrayValue, DuckDBDataChunk, DuckDBInstance, listValue, structValue, timestampTZValue, type DuckDBAppender, type DuckDBConnection, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import type { ColumnType } from '../engine/types.js';
import type { FileColumn } from './files.js';
import { cell, isNumberColumn, type Column, type NumberColumn, type OutBatch } from './out-columns.js';
import { sqlIdent } from './files.js';
import type { OutputWriter } from './writers.js';

const CHUNK = 2048;
const TWO32 = 4294967296;

export function duckType(t: ColumnType): string {
  switch (t.kind) {
    case 'bool':
      return 'BOOLEAN';
    case 'int32':
      return 'INTEGER';
    case 'int64':
      return 'BIGINT';
    case 'float32':
      return 'FLOAT';
    case 'float64':
      return 'DOUBLE';
    case 'string':
    case 'json':
      return 'VARCHAR';
    case 'timestamp':
      return 'TIMESTAMPTZ';
    case 'list':
      return `${duckType(t.item)}[]`;
    case 'struct':
      return `STRUCT(${t.fields.map((f) => `${sqlIdent(f.name)} ${duckType(f.type)}`).join(', ')})`;
    case 'vector':
      return `FLOAT[${t.dim}]`;
  }
}

let shared: Promise<DuckDBInstance> | undefined;

/**
 * One DuckDB instance per process for Parquet output (starting one costs tens
 * of ms); each writer has its own connection and table. It spills to a
 * folder under the system's temporary directory beyond 512 MB.
 */
function instance(): Promise<DuckDBInstance> {
  if (!shared) {
    const spill = join(tmpdir(), `asof-duckdb-${process.pid}`);
    // DuckDB makes the folder when the instance starts; it lives as long as the process.
    process.once('exit', () => rmSync(spill, { recursive: true, force: true }));
    shared = DuckDBInstance.create(':memory:', { threads: '2', memory_limit: '512MB', temp_directory: spill });
  }
  return shared;
}

export async function openParquetWriter(path: string, columns: FileColumn[]): Promise<OutputWriter> {
  const conn = await (await instance()).connect();
  const table = `out_${randomUUID().replaceAll('-', '')}`;
  try {
    await conn.run(`CREATE TABLE ${table} (${columns.map((c) => `${sqlIdent(c.name)} ${duckType(c.type)}`).join(', ')})`);
    const appender = await conn.createAppender(table);
    return new ParquetWriter(path, table, columns, conn, appender);
  } catch (e) {
    conn.closeSync();
    throw e;
  }
}

class ParquetWriter implements OutputWriter {
  private readonly types: DuckDBType[];
  constructor(
    private readonly path: string,
    private readonly table: string,
    private readonly columns: FileColumn[],
    private readonly conn: DuckDBConnection,
    private readonly appender: DuckDBAppender,
  ) {
    this.types = columns.map((_, i) => appender.columnType(i));
  }

  async write(b: OutBatch): Promise<void> {
    for (let s = 0; s < b.n; s += CHUNK) {
      const n = Math.min(CHUNK, b.n - s);
      const chunk = DuckDBDataChunk.create(this.types, n);
      this.columns.forEach((c, k) => fill(chunk, k, c.type, b.columns[k], s, n));
      this.appender.appendDataChunk(chunk);
    }
  }

  async close(): Promise<void> {
    try {
      this.appender.closeSync();
      await this.conn.run(`COPY ${this.table} TO '${this.path.replaceAll("'", "''")}' (FORMAT parquet)`);
    } finally {
      await this.release();
    }
  }

  async abort(): Promise<void> {
    try {
      this.appender.closeSync();
    } catch {
      /* already closed */
    }
    await this.release();
  }

  private async release(): Promise<void> {
    await this.conn.run(`DROP TABLE IF EXISTS ${this.table}`).catch(() => undefined);
    this.conn.closeSync();
  }
}

/** Validity as DuckDB wants it (uint64 words, bit set = valid; the same bit order as Arrow's bytes). */
function setValidity(vec: duckdb.Vector, valid: Uint8Array, nulls: number): void {
  if (nulls === 0) return;
  duckdb.vector_ensure_validity_writable(vec);
  duckdb.copy_data_to_vector_validity(vec, 0, valid.buffer as ArrayBuffer, valid.byteOffset, valid.byteLength);
}

function fill(chunk: DuckDBDataChunk, k: number, type: ColumnType, column: Column, s: number, n: number): void {
  const vec = duckdb.data_chunk_get_vector(chunk.chunk, k);
  if (isNumberColumn(column) && !column.big && (type.kind === 'float64' || type.kind === 'float32' || type.kind === 'int32')) return fillNumbers(vec, type.kind, column, s, n);
  // Chunk-relative values: the chunk's rows of the column.
  const values = isNumberColumn(column) ? Array.from({ length: n }, (_, i) => cell(column, s + i)) : column.slice(s, s + n);
  const valid = new Uint8Array(Math.ceil(n / 64) * 8);
  let nulls = 0;
  const present = (i: number): boolean => {
    const v = values[i];
    if (v === null || v === undefined) {
      nulls++;
      return false;
    }
    valid[i >> 3] |= 1 << (i & 7);
    return true;
  };
  switch (type.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
    case 'bool': {
      const buf = type.kind === 'int32' ? new Int32Array(n) : type.kind === 'float32' ? new Float32Array(n) : type.kind === 'float64' ? new Float64Array(n) : new Uint8Array(n);
      for (let i = 0; i < n; i++) if (present(i)) buf[i] = type.kind === 'bool' ? (values[i] ? 1 : 0) : (values[i] as number);
      duckdb.copy_data_to_vector(vec, 0, buf.buffer as ArrayBuffer, buf.byteOffset, buf.byteLength);
      return setValidity(vec, valid, nulls);
    }
    case 'int64':
    case 'timestamp': {
      // Two int32 halves per value: a BigInt per value would cost more than the rest of the column.
      const scale = type.kind === 'timestamp' ? 1000 : 1;
      const big = new BigInt64Array(n);
      const halves = new Int32Array(big.buffer);
      for (let i = 0; i < n; i++) {
        if (!present(i)) continue;
        const v = values[i];
        const x = typeof v === 'bigint' ? v : (v as number) * scale;
        if (typeof x === 'number' && Number.isSafeInteger(x)) {
          const hi = Math.floor(x / TWO32);
          halves[2 * i] = x - hi * TWO32;
          halves[2 * i + 1] = hi;
        } else big[i] = typeof x === 'bigint' ? x : BigInt(v as number) * BigInt(scale);
      }
      duckdb.copy_data_to_vector(vec, 0, big.buffer, 0, big.byteLength);
      return setValidity(vec, valid, nulls);
    }
    case 'string':
    case 'json':
      for (let i = 0; i < n; i++) if (present(i)) duckdb.vector_assign_string_element(vec, i, type.kind === 'json' ? JSON.stringify(values[i]) : (values[i] as string));
      return setValidity(vec, valid, nulls);
    default:
      chunk.setColumnValues(
        k,
        values.map((v) => toDuck(type, v)),
      );
  }
}

/** A typed number column straight into a DuckDB vector: no boxing, no per-value calls. */
function fillNumbers(vec: duckdb.Vector, kind: 'float64' | 'float32' | 'int32', c: NumberColumn, s: number, n: number): void {
  const src = c.values.subarray(s, s + n);
  const buf = kind === 'float64' ? src : kind === 'float32' ? Float32Array.from(src) : Int32Array.from(src);
  duckdb.copy_data_to_vector(vec, 0, buf.buffer as ArrayBuffer, buf.byteOffset, buf.byteLength);
  const valid = new Uint8Array(Math.ceil(n / 64) * 8);
  let nulls = 0;
  for (let i = 0; i < n; i++) {
    if (c.valid[s + i]) valid[i >> 3] |= 1 << (i & 7);
    else nulls++;
  }
  setValidity(vec, valid, nulls);
}

/** A canonical nested value → DuckDB's value objects. */
function toDuck(t: ColumnType, v: unknown): DuckDBValue {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'int64':
      return typeof v === 'bigint' ? v : BigInt(v as number);
    case 'timestamp':
      return timestampTZValue(BigInt(v as number) * 1000n);
    case 'json':
      return JSON.stringify(v);
    case 'list':
      return listValue((v as unknown[]).map((x) => toDuck(t.item, x)));
    case 'vector':
      return arrayValue(Array.from(v as ArrayLike<number>));
    case 'struct': {
      const o = v as Record<string, unknown>;
      return structValue(Object.fromEntries(t.fields.map((f) => [f.name, toDuck(f.type, o[f.name])])));
    }
    default:
      return v as DuckDBValue;
  }
}

