/**
 * The ingest service: validate every row of a request, then write them as one
 * unit. A request with any bad row writes nothing. Used by REST, gRPC and the CLI.
 */
import { createHash } from 'node:crypto';
import { AsofError } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import { checkOp, type WriteOp } from '../engine/table.js';
import { isReservedName, type Row, type TableSchema } from '../engine/schema.js';
import { mayBendBytes } from '../engine/json-safety.js';
import { checkBentNumbers, holdsExactNumbers } from './bent-columns.js';
import { countRowsIngested } from '../metrics.js';
import type { KeyedRequest } from '../engine/idempotency.js';
import { columnar, fromColumns } from './json-rows.js';
import type { ParsePool } from './parse-pool.js';
import { quoteSentLiterals } from './quote-literals.js';

export interface IngestResult {
  count: number;
  firstOffset: number | null;
  lastOffset: number | null;
  token: Token;
}

export interface IngestOptions {
  /** Most rows one request may carry (413 beyond). */
  maxRows: number;
  /**
   * Most cells (rows x the table's columns) one request may carry (413 beyond).
   * Why cells and not bytes: a row is validated into a canonical row with
   * every column filled, gathered into one array per column, built into Arrow
   * buffers and encoded into the frame, and a cell the body leaves out (2
   * bytes of `{}` cover 300 null columns) costs 8 bytes in each of those four:
   * about 32 bytes per cell, so 50,000 rows of `{"ts":1}` to a table of 300
   * float64 columns peaked at 491 MB for a 639 KB body, and the body-byte
   * admission limit never saw it.
   */
  maxCells: number;
  /** Ingest threads that parse large JSON bodies (parse-pool.ts); absent: every body is parsed on the main thread. */
  parsePool?: ParsePool;
}

/**
 * Bodies from this size go to an ingest thread; smaller writes skip the round trip. Not tuned by a
 * measurement: bench:ingest's bodies (1,000 rows, 90 and 138 KiB) are all above it.
 */
export const OFF_THREAD_MIN_BYTES = 32 * 1024;

/** A JSON write body parsed (and its rows validated) on an ingest thread. */
/** A write body an ingest thread parsed: its rows, and its `op` when it named one (an upsert: deletes are parsed on the main thread). */
export interface ParsedWriteBody {
  rows: Row[];
  op?: 'upsert';
}

/** Rows an ingest thread validated, and against which schema: written without validating them again while the table still has that schema. */
const validatedFor = new WeakMap<unknown[], TableSchema>();

/** Longest Idempotency-Key accepted, characters (it is stored with the records it wrote). */
export const MAX_IDEMPOTENCY_KEY = 256;

interface InFlight {
  table: string;
  fingerprint: string;
  answer: Promise<IngestResult>;
}

export class IngestService {
  /** Keyed requests not answered yet; answered ones are remembered by their table, durably (engine/idempotency.ts). */
  private readonly inFlight = new Map<string, InFlight>();

  constructor(
    private readonly engine: Engine,
    private readonly opts: IngestOptions,
  ) {
    // Checked here: a missing limit would make every comparison with it false, and so no limit at all.
    for (const k of ['maxRows', 'maxCells'] as const) if (!(opts[k] >= 1)) throw new Error(`IngestService: ${k} must be a number of at least 1, got ${String(opts[k])}`);
  }

  /**
   * A JSON write body (`{rows, op}`) parsed and its rows validated on an
   * ingest thread, when that pays: a large body, for a table whose columns
   * can cross threads (json-rows.ts). Undefined (at once, or from the
   * promise) means: parse it here, as any other body. The rows answered are
   * canonical and `write` does not validate them again; every rule that does
   * not depend on the rows (the table exists and takes writes, the row count)
   * is still checked by `write`.
   */
  /**
   * Whether a JSON write body to `tableName` (its bytes) must keep its text beside its rows (json-safety.ts
   * noteRowsText): only for a table with an int32, int64, timestamp or json part, and only when the text may hold a
   * number literal a float64 bends (mayBendBytes, a fraction of JSON.parse's time), for the check that reads it
   * (bent-columns.ts). Any other body's text is let go once parsed (held by every write, it was copied by each
   * young-generation collection while the write waited for its fsync).
   */
  keepsBodyText(tableName: string, bytes: Uint8Array): boolean {
    return this.engine.has(tableName) && holdsExactNumbers(this.engine.table(tableName).schema) && mayBendBytes(bytes);
  }

  parseJsonBody(tableName: string, bytes: Uint8Array): Promise<ParsedWriteBody | undefined> | undefined {
    const pool = this.opts.parsePool;
    if (!pool || bytes.length < OFF_THREAD_MIN_BYTES) return undefined;
    // Whatever `write` refuses without looking at the rows is refused there, from the body parsed here.
    if (this.engine.role !== 'primary' || isReservedName(tableName) || !this.engine.has(tableName)) return undefined;
    const schema = this.engine.table(tableName).schema;
    if (!columnar(schema)) return undefined;
    // Over the row limit for this table, the thread answers undefined before building any column; `write` then answers the 413.
    return pool.parse(bytes, schema, this.maxRowsFor(schema)).then((p) => {
      if (!p) return undefined;
      const rows = fromColumns(schema, p);
      validatedFor.set(rows, schema);
      return p.op ? { rows, op: p.op } : { rows };
    });
  }

  /**
   * Validates and writes rows. With an idempotency key, a retry of the same
   * request (same table, op and body) returns the first answer and writes
   * nothing, also after a restart, while the key is remembered (24 h, 100,000
   * keys per table by default; engine/idempotency.ts); the same key with a
   * different request is a 409. A request that failed wrote nothing and is
   * not remembered, so its retry writes.
   * `fingerprint` identifies the body (defaults to a hash of the rows); a
   * function is called only when there is a key, so plain writes hash nothing.
   */
  async write(table: string, rows: unknown[], op: WriteOp = 'upsert', idempotencyKey?: string, fingerprint?: string | (() => string)): Promise<IngestResult> {
    if (!idempotencyKey) return this.doWrite(table, rows, op);
    if (idempotencyKey.length > MAX_IDEMPOTENCY_KEY) {
      throw new AsofError('ASOF_INVALID_ARGUMENT', `an Idempotency-Key may have at most ${MAX_IDEMPOTENCY_KEY} characters, got ${idempotencyKey.length}`, [{ field: 'Idempotency-Key', reason: `longer than ${MAX_IDEMPOTENCY_KEY} characters` }]);
    }
    const fp = typeof fingerprint === 'function' ? fingerprint() : (fingerprint ?? hashOf(JSON.stringify([op, rows])));
    const conflict = (): AsofError => keyConflict(idempotencyKey);
    const pending = this.inFlight.get(idempotencyKey);
    if (pending) {
      if (pending.table !== table || pending.fingerprint !== fp) throw conflict();
      return pending.answer;
    }
    const done = this.engine.keyedAnswer(idempotencyKey);
    if (done) {
      if (done.table !== table || done.answer.fingerprint !== fp) throw conflict();
      const a = done.answer;
      return { count: a.count, firstOffset: a.firstOffset, lastOffset: a.lastOffset, token: { [table]: a.tokenOffset } };
    }
    const answer = this.doWrite(table, rows, op, { key: idempotencyKey, fingerprint: fp });
    this.inFlight.set(idempotencyKey, { table, fingerprint: fp, answer });
    // Settled: the table remembers an answered key (recorded before the answer); a rejected request wrote nothing.
    const forget = (): void => void this.inFlight.delete(idempotencyKey);
    answer.then(forget, forget);
    return answer;
  }

  /**
   * Validates at once, then waits for the commit holding only the validated
   * rows: not an async function, whose suspended frame would keep the request's
   * parsed rows alive until the fsync (each young-generation collection
   * copied them meanwhile). Validation errors still arrive as a rejection.
   */
  /** The ingest threads, when there are any (their metrics; tests stop one as a crash would). */
  get parsePool(): ParsePool | undefined {
    return this.opts.parsePool;
  }

  /** Most rows one request to a table of this schema may carry: the row limit, or fewer for a wide table (the cell limit). */
  maxRowsFor(schema: TableSchema): number {
    return Math.max(1, Math.min(this.opts.maxRows, Math.floor(this.opts.maxCells / schema.columns.length)));
  }

  /** Stops the ingest threads. */
  async close(): Promise<void> {
    await this.opts.parsePool?.close();
  }

  private doWrite(tableName: string, rows: unknown[], op: WriteOp, keyed?: KeyedRequest): Promise<IngestResult> {
    let checked: { table: ReturnType<Engine['writable']>; valid: Row[] };
    try {
      checked = this.check(tableName, rows, op);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.commit(tableName, checked.table, checked.valid, op, keyed);
  }

  private check(tableName: string, rows: unknown[], op: WriteOp): { table: ReturnType<Engine['writable']>; valid: Row[] } {
    const table = this.engine.writable(tableName);
    if (isReservedName(tableName)) throw new AsofError('ASOF_PERMISSION_DENIED', `table "${tableName}" is internal to asof: it is written only by asof itself (decisions: POST /decisions)`, { table: tableName });
    if (op !== 'upsert' && op !== 'delete') throw new AsofError('ASOF_INVALID_ARGUMENT', `op must be "upsert" or "delete", got ${JSON.stringify(op)}`, [{ field: 'op', reason: 'unknown op' }]);
    // Before the rows: a delete's rows name only key columns, and a log table's rows are checked as no delete.
    checkOp(table.schema, op);
    if (rows.length > this.opts.maxRows) {
      throw new AsofError('ASOF_PAYLOAD_TOO_LARGE', `a request may carry at most ${this.opts.maxRows} rows, got ${rows.length}`, { maxRows: this.opts.maxRows, rows: rows.length });
    }
    const columns = table.schema.columns.length;
    if (rows.length * columns > this.opts.maxCells) {
      const most = this.maxRowsFor(table.schema);
      throw new AsofError(
        'ASOF_PAYLOAD_TOO_LARGE',
        `a request may carry at most ${this.opts.maxCells} cells (rows x the table's columns, null ones included; ASOF_MAX_BATCH_CELLS), got ${rows.length} rows x ${columns} columns = ${rows.length * columns}: send at most ${most} rows per request to table "${tableName}"`,
        { maxCells: this.opts.maxCells, cells: rows.length * columns, rows: rows.length, columns, maxRows: most },
      );
    }
    // Rows an ingest thread validated against this very schema are canonical already (parseJsonBody).
    if (op === 'upsert' && validatedFor.get(rows) === table.schema) return { table, valid: rows as Row[] };
    const { rows: valid, issues } = table.schema.validate(rows, { keysOnly: op === 'delete' });
    if (issues.length > 0) {
      quoteSentLiterals(issues, rows);
      const first = issues[0];
      throw new AsofError('ASOF_INVALID_ROW', `row ${first.row}: ${first.field ? `column "${first.field}": ` : ''}${first.reason}; nothing was written`, issues);
    }
    // A delete's key too: `{"id":1.0000000000000000001}` would delete key 1.
    checkBentNumbers(table.schema, rows);
    return { table, valid };
  }

  private async commit(tableName: string, table: ReturnType<Engine['writable']>, valid: Row[], op: WriteOp, keyed?: KeyedRequest): Promise<IngestResult> {
    const r = await table.write(valid, op, keyed);
    countRowsIngested(tableName, r.count);
    return { count: r.count, firstOffset: r.firstOffset, lastOffset: r.lastOffset, token: { [tableName]: r.tokenOffset } };
  }
}

/** The 409 for an Idempotency-Key used before for another request (or table), naming the key the client sent. */
export const keyConflict = (idempotencyKey: string): AsofError =>
  new AsofError('ASOF_CONFLICT', `Idempotency-Key "${idempotencyKey}" was already used for a different request`, { idempotencyKey });

export const hashOf = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('base64url');
