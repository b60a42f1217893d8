/**
 * The ingest service: validate every row of a request, then write them as one
 * unit. A request with any bad row writes nothing. Used by REST, gRPC and the CLI.
 */
import { createHash } from 'node:crypto';
import { AsofError } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import type { WriteOp } from '../engine/table.js';
import { isReservedName } from '../engine/schema.js';
import { countRowsIngested } from '../metrics.js';

export interface IngestResult {
  count: number;
  firstOffset: number | null;
  lastOffset: number | null;
  token: Token;
}

export interface IngestOptions {
  /** Most rows one request may carry (413 beyond). */
  maxRows: number;
  /** How many Idempotency-Keys are remembered (oldest forgotten first). */
  idempotencyCapacity: number;
  /** How long an Idempotency-Key is remembered, ms. */
  idempotencyTtlMs: number;
}

interface Remembered {
  table: string;
  fingerprint: string;
  at: number;
  answer: Promise<IngestResult>;
}

export class IngestService {
  /** Insertion-ordered, so the first entries are the oldest. */
  private readonly idempotency = new Map<string, Remembered>();

  constructor(
    private readonly engine: Engine,
    private readonly opts: IngestOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Validates and writes rows. With an idempotency key, a retry of the same
   * request (same table and body) returns the first answer and writes nothing;
   * the same key with a different request is a 409.
   * `fingerprint` identifies the body (defaults to a hash of the rows); a
   * function is called only when there is a key, so plain writes hash nothing.
   */
  async write(table: string, rows: unknown[], op: WriteOp = 'upsert', idempotencyKey?: string, fingerprint?: string | (() => string)): Promise<IngestResult> {
    if (!idempotencyKey) return this.doWrite(table, rows, op);
    this.expire();
    const fp = typeof fingerprint === 'function' ? fingerprint() : (fingerprint ?? hashOf(JSON.stringify([op, rows])));
    const seen = this.idempotency.get(idempotencyKey);
    if (seen) {
      if (seen.table !== table || seen.fingerprint !== fp) {
        throw new AsofError('ASOF_CONFLICT', `Idempotency-Key "${idempotencyKey}" was already used for a different request`, { idempotencyKey });
      }
      return seen.answer;
    }
    const answer = this.doWrite(table, rows, op);
    this.idempotency.set(idempotencyKey, { table, fingerprint: fp, at: this.now(), answer });
    // A rejected request wrote nothing; forget it so a corrected retry can go through.
    answer.catch(() => this.idempotency.delete(idempotencyKey));
    return answer;
  }

  private async doWrite(tableName: string, rows: unknown[], op: WriteOp): Promise<IngestResult> {
    const table = this.engine.writable(tableName);
    if (isReservedName(tableName)) throw new AsofError('ASOF_PERMISSION_DENIED', `table "${tableName}" is internal to asof: it is written only by asof itself (decisions: POST /decisions)`, { table: tableName });
    if (op !== 'upsert' && op !== 'delete') throw new AsofError('ASOF_INVALID_ARGUMENT', `op must be "upsert" or "delete", got ${JSON.stringify(op)}`, [{ field: 'op', reason: 'unknown op' }]);
    if (rows.length > this.opts.maxRows) {
      throw new AsofError('ASOF_PAYLOAD_TOO_LARGE', `a request may carry at most ${this.opts.maxRows} rows, got ${rows.length}`, { maxRows: this.opts.maxRows, rows: rows.length });
    }
    const { rows: valid, issues } = table.schema.validate(rows, { keysOnly: op === 'delete' });
    if (issues.length > 0) {
      const first = issues[0];
      throw new AsofError('ASOF_INVALID_ROW', `row ${first.row}: ${first.field ? `column "${first.field}": ` : ''}${first.reason}; nothing was written`, issues);
    }
    const r = await table.write(valid, op);
    countRowsIngested(tableName, r.count);
    return { count: r.count, firstOffset: r.firstOffset, lastOffset: r.lastOffset, token: { [tableName]: r.lastOffset ?? table.endOffset - 1 } };
  }

  private expire(): void {
    const cutoff = this.now() - this.opts.idempotencyTtlMs;
    for (const [k, v] of this.idempotency) {
      if (v.at >= cutoff && this.idempotency.size <= this.opts.idempotencyCapacity) break;
      this.idempotency.delete(k);
    }
  }
}

export const hashOf = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('base64url');
