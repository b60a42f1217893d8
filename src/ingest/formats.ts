/**
 * Body formats rows arrive in, turned into plain row objects before validation:
 * JSON `{rows, op}`, NDJSON (one row per line) and an Arrow IPC stream.
 */
import * as A from 'apache-arrow';
import { AsofError } from '../errors.js';

/** NDJSON text → rows. Blank lines are skipped; a bad line is a 400 naming its row index and line. */
export function parseNdjson(text: string): unknown[] {
  const rows: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      rows.push(JSON.parse(line));
    } catch (e) {
      throw new AsofError('ASOF_INVALID_ROW', `NDJSON line ${i + 1} is not valid JSON: ${(e as Error).message}`, [{ row: rows.length, field: '', reason: `line ${i + 1}: invalid JSON` }]);
    }
  }
  return rows;
}

/** An Arrow IPC stream → rows (plain JS values; validation then checks them against the table). */
export function parseArrowStream(bytes: Uint8Array): unknown[] {
  let table: A.Table;
  try {
    table = A.tableFromIPC(bytes);
  } catch (e) {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `body is not a valid Arrow IPC stream: ${(e as Error).message}`, [{ field: 'body', reason: 'invalid Arrow IPC' }]);
  }
  const fields = table.schema.fields;
  const cols = fields.map((f) => ({ name: f.name, vec: table.getChild(f.name)!, ts: A.DataType.isTimestamp(f.type) || A.DataType.isDate(f.type) }));
  const rows: Record<string, unknown>[] = new Array(table.numRows);
  for (let i = 0; i < table.numRows; i++) {
    const row: Record<string, unknown> = {};
    for (const c of cols) {
      const v = c.vec.isValid(i) ? c.vec.get(i) : null;
      row[c.name] = v === null ? null : c.ts ? Number(v) : arrowToJs(v);
    }
    rows[i] = row;
  }
  return rows;
}

function arrowToJs(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (v instanceof A.Vector) return Array.from(v.toArray() as ArrayLike<unknown>, arrowToJs);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>, (x) => arrowToJs(x));
  if (typeof v === 'object') {
    const o = (typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(): unknown }).toJSON() : v) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = arrowToJs(x);
    return out;
  }
  return v;
}
