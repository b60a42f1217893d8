/**
 * Number literals a float64 bends, judged against a table's columns: the rule
 * "a value is stored exactly as sent or refused" for JSON text (REST bodies,
 * NDJSON, gRPC's ndjson, CSV, NDJSON and Parquet imports). JSON.parse reads
 * `1.0000000000000000001` as 1 and `1700000000000.00000001` as
 * 1700000000000, so a whole number would be stored where the client sent a
 * fraction; only the text shows it (json-safety.ts bentNumbers).
 *
 * Where it counts: a `json` value (any number in it), an `int32`, `int64` or
 * `timestamp`, alone or inside a list or struct. A `float32`, `float64` or
 * `vector` takes the nearest value it holds, as documented (`0.1` is the
 * double nearest 0.1): its literals are skipped.
 */
import { AsofError, type FieldIssue } from '../errors.js';
import { bentNumberReason, bentNumbersInRows, bentScalarReason, type BentNumber } from '../engine/json-safety.js';
import type { TableSchema } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';

const EXACT = new Set(['int32', 'int64', 'timestamp', 'json']);

/** Whether a type holds, at any depth, a part whose numbers must come as sent (an int32, int64, timestamp or json). */
export const holdsExactPart = (t: ColumnType): boolean => EXACT.has(t.kind) || (t.kind === 'list' && holdsExactPart(t.item)) || (t.kind === 'struct' && t.fields.some((f) => holdsExactPart(f.type)));

const exactTables = new WeakMap<TableSchema, boolean>();

/** Whether a table has an int32, int64, timestamp or json part: only its writes' text is read for bent numbers. */
export function holdsExactNumbers(schema: TableSchema): boolean {
  let v = exactTables.get(schema);
  if (v === undefined) exactTables.set(schema, (v = schema.columns.some((c) => holdsExactPart(c.type))));
  return v;
}

/** Where a path [row, column, ...] lands: the type there, the field as errors name it, and the path left inside a json value. */
interface Place {
  type: ColumnType;
  field: string;
  inside: (string | number)[];
}

function placeOf(schema: TableSchema, path: (string | number)[]): Place | undefined {
  const column = typeof path[0] === 'number' && typeof path[1] === 'string' ? schema.byName.get(path[1]) : undefined;
  if (!column) return undefined;
  let type: ColumnType = column.type;
  let field = column.name;
  let k = 2;
  for (; k < path.length && type.kind !== 'json'; k++) {
    const step = path[k];
    let inner: ColumnType | undefined;
    if ((type.kind === 'list' || type.kind === 'vector') && typeof step === 'number') inner = type.kind === 'list' ? type.item : { kind: 'float32' };
    else if (type.kind === 'struct') inner = type.fields.find((f) => f.name === step)?.type;
    // A number under a scalar, or a field a struct lacks: the row validator refuses it.
    if (!inner) return undefined;
    field += type.kind === 'struct' ? `.${String(step)}` : '[]';
    type = inner;
  }
  return { type, field, inside: path.slice(k) };
}

/** The `counts` of bentNumbers for rows of this table: true where a literal lands on a part whose numbers must come as sent. */
export function countsIn(schema: TableSchema): (path: (string | number)[]) => boolean {
  // A row's own columns ([row, column]), by far the most asked, answered once per column name.
  const top = new Map<string, boolean>();
  return (path) => {
    const known = path.length === 2 && typeof path[0] === 'number' && typeof path[1] === 'string' ? top.get(path[1]) : undefined;
    if (known !== undefined) return known;
    const at = placeOf(schema, path);
    const counts = at !== undefined && EXACT.has(at.type.kind);
    if (path.length === 2 && typeof path[0] === 'number' && typeof path[1] === 'string') top.set(path[1], counts);
    return counts;
  };
}

/** The issue for a bent number at [row, column, ...]; undefined where the column takes the nearest double. */
export function bentIssue(schema: TableSchema, b: BentNumber): FieldIssue | undefined {
  const at = placeOf(schema, b.path);
  if (!at) return undefined;
  const kind = at.type.kind;
  if (kind !== 'json' && kind !== 'int32' && kind !== 'int64' && kind !== 'timestamp') return undefined;
  const reason = kind === 'json' ? bentNumberReason(b, at.inside) : bentScalarReason(b, kind);
  return { row: b.path[0] as number, field: at.field, reason };
}

/**
 * Refuses rows parsed from a text (json-safety.ts noteRowsText) in which a
 * number bound for an exact part was bent: 400 ASOF_INVALID_ROW naming the
 * row, the column (and the path inside a json value) and why; nothing written.
 * Rows with no text kept (no literal in it could bend) pass at once.
 */
export function checkBentNumbers(schema: TableSchema, rows: unknown[]): void {
  if (!holdsExactNumbers(schema)) return;
  for (const b of bentNumbersInRows(rows, countsIn(schema))) {
    const issue = bentIssue(schema, b);
    if (issue) throw new AsofError('ASOF_INVALID_ROW', `row ${issue.row}: column "${issue.field}": ${issue.reason}; nothing was written`, [issue]);
  }
}
