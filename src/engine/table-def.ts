/**
 * A table's definition checked: names, types, keys and event time of a new
 * table, and the only change an existing one takes (nullable columns appended
 * at the end, each a new schema version).
 */
import { AsofError, type FieldIssue } from '../errors.js';
import { checkName, isValidName, KEY_TYPES, NAME_PATTERN, type ColumnDef, type TableDef, type TableKind } from './schema.js';
import { formatType, parseColumnType, type ColumnType } from './types.js';

/** Names of Lance's system columns (`_rowid`, ...) and of the distance column its searches add. */
const LANCE_RESERVED = new Set(['_rowid', '_rowaddr', '_rowoffset', '_row_created_at_version', '_row_last_updated_at_version', '_distance']);

const METRICS = ['cosine', 'l2', 'dot'];

/**
 * The first struct field, at any depth (inside lists and structs), whose name a
 * column could not have: struct values are plain objects as rows are, so the
 * same names are reserved (an inherited `constructor` or `toString` would
 * otherwise read as a value, and a `__proto__` field could never be sent).
 * `path` is the field's path as row errors name it (`s.a`, `s[].a`).
 */
function badStructField(t: ColumnType, path: string): { path: string; reason: string } | undefined {
  if (t.kind === 'list') return badStructField(t.item, `${path}[]`);
  if (t.kind !== 'struct') return undefined;
  for (const f of t.fields) {
    const at = `${path}.${f.name}`;
    if (!isValidName(f.name)) return { path: at, reason: `must match ${NAME_PATTERN}` };
    if (f.name.startsWith('_asof')) return { path: at, reason: 'is reserved (names starting with _asof are)' };
    if (LANCE_RESERVED.has(f.name)) return { path: at, reason: 'is reserved (a column Lance adds to its datasets or searches)' };
    if (f.name in Object.prototype) return { path: at, reason: 'is reserved (a property of every JavaScript object)' };
    const inner = badStructField(f.type, at);
    if (inner) return inner;
  }
  return undefined;
}

/**
 * Checks a new table definition (create), or a change to an existing one
 * (evolve: only nullable columns appended at the end). Returns the definition
 * to persist and whether anything changed.
 */
export function defineTable(
  name: string,
  body: { kind: TableKind; columns: ColumnDef[]; primaryKey?: string[]; eventTime?: string },
  existing: TableDef | undefined,
  now: number,
): { def: TableDef; changed: boolean } {
  checkName('table', name);
  const issues: FieldIssue[] = [];
  const seen = new Set<string>();
  const columns: ColumnDef[] = body.columns.map((c, i) => {
    if (!isValidName(c.name)) issues.push({ field: `columns[${i}].name`, reason: `must match ${NAME_PATTERN}` });
    if (seen.has(c.name)) issues.push({ field: `columns[${i}].name`, reason: `duplicate column "${c.name}"` });
    seen.add(c.name);
    if (c.name.startsWith('_asof')) issues.push({ field: `columns[${i}].name`, reason: 'names starting with _asof are reserved' });
    // Lance refuses these in a dataset or clashes with them in a search, so the table could not tier nor be searched; a
    // table that has one already keeps it (it worked but for those).
    else if (LANCE_RESERVED.has(c.name) && !existing?.columns.some((x) => x.name === c.name)) issues.push({ field: `columns[${i}].name`, reason: `"${c.name}" is reserved (a column Lance adds to its datasets or searches)` });
    // A row is a plain object: a column named like an inherited property (`constructor`, `__proto__`) would read that property when the value is missing.
    else if (c.name in Object.prototype) issues.push({ field: `columns[${i}].name`, reason: `"${c.name}" is reserved (a property of every JavaScript object)` });
    return { name: c.name, type: c.type, nullable: c.nullable, ...(c.metric === undefined ? {} : { metric: c.metric }) };
  });
  if (columns.length === 0) issues.push({ field: 'columns', reason: 'a table needs at least one column' });
  const types = new Map<string, ColumnType>();
  for (const [i, c] of columns.entries()) {
    try {
      const t = parseColumnType(c.name, c.type, i);
      types.set(c.name, t);
      // A column the table already has keeps its type (it is unchanged or a 409 below): a struct stored before field names were checked still opens and evolves.
      const kept = existing?.columns.find((x) => x.name === c.name);
      const field = kept && kept.type === formatType(t) ? undefined : badStructField(t, c.name);
      if (field) issues.push({ field: `columns[${i}].type`, reason: `struct field "${field.path}" ${field.reason}` });
    } catch (e) {
      issues.push({ field: `columns[${i}].type`, reason: (e as Error).message });
    }
  }
  const pk = body.primaryKey ?? [];
  if (body.kind === 'pk' && pk.length === 0) issues.push({ field: 'primaryKey', reason: 'a pk table needs a primaryKey' });
  for (const k of pk) {
    const c = columns.find((x) => x.name === k);
    const t = types.get(k);
    if (!c) issues.push({ field: 'primaryKey', reason: `unknown column "${k}"` });
    else if (c.nullable && body.kind === 'pk') issues.push({ field: 'primaryKey', reason: `key column "${k}" must not be nullable` });
    else if (t && !KEY_TYPES.has(t.kind)) issues.push({ field: 'primaryKey', reason: `key column "${k}" has type ${c.type}; keys must be one of ${[...KEY_TYPES].join(', ')}` });
  }
  if (new Set(pk).size !== pk.length) issues.push({ field: 'primaryKey', reason: 'a column appears twice' });
  if (body.kind === 'log' && !body.eventTime) issues.push({ field: 'eventTime', reason: 'a log table must name its eventTime column' });
  if (body.eventTime) {
    const c = columns.find((x) => x.name === body.eventTime);
    if (!c) issues.push({ field: 'eventTime', reason: `unknown column "${body.eventTime}"` });
    else if (types.get(c.name)?.kind !== 'timestamp') issues.push({ field: 'eventTime', reason: `column "${c.name}" must have type timestamp` });
    else if (body.kind === 'log' && c.nullable) issues.push({ field: 'eventTime', reason: `the eventTime column "${c.name}" of a log table must not be nullable` });
  }
  if (issues.length) throw new AsofError('ASOF_INVALID_DEFINITION', `invalid definition of table "${name}": ${issues[0].field}: ${issues[0].reason}`, issues);

  for (const [i, c] of columns.entries()) {
    if (c.metric !== undefined && types.get(c.name)?.kind !== 'vector') issues.push({ field: `columns[${i}].metric`, reason: `a metric applies to vector<D> columns only; "${c.name}" has type ${c.type}` });
    else if (c.metric !== undefined && !METRICS.includes(c.metric)) issues.push({ field: `columns[${i}].metric`, reason: `metric must be one of ${METRICS.join(', ')}` });
  }
  if (issues.length) throw new AsofError('ASOF_INVALID_DEFINITION', `invalid definition of table "${name}": ${issues[0].field}: ${issues[0].reason}`, issues);

  // Normalise type text so comparisons are exact; vector columns state their metric.
  for (const c of columns) {
    c.type = formatType(types.get(c.name)!);
    if (types.get(c.name)!.kind === 'vector') c.metric ??= 'cosine';
  }

  if (!existing) {
    return {
      def: { name, kind: body.kind, columns, primaryKey: pk, eventTime: body.eventTime, schemaVersions: [{ version: 1, columnCount: columns.length, createdAt: now }], createdAt: now },
      changed: true,
    };
  }
  const conflict = (why: string): never => {
    throw new AsofError('ASOF_SCHEMA_CONFLICT', `incompatible change to table "${name}": ${why}. Only nullable columns added at the end are allowed.`, { reason: why });
  };
  if (existing.kind !== body.kind) conflict(`kind cannot change from ${existing.kind} to ${body.kind}`);
  if (JSON.stringify(existing.primaryKey) !== JSON.stringify(pk)) conflict(`primaryKey cannot change from [${existing.primaryKey.join(', ')}] to [${pk.join(', ')}]`);
  if ((existing.eventTime ?? null) !== (body.eventTime ?? null)) conflict(`eventTime cannot change from ${existing.eventTime ?? 'none'} to ${body.eventTime ?? 'none'}`);
  if (columns.length < existing.columns.length) {
    const missing = existing.columns.filter((c) => !columns.some((x) => x.name === c.name)).map((c) => c.name);
    conflict(`columns cannot be removed (missing: ${missing.join(', ') || 'reordered'})`);
  }
  existing.columns.forEach((old, i) => {
    const now = columns[i];
    if (now.name !== old.name) conflict(`column ${i} is "${old.name}", not "${now.name}" (columns cannot be renamed or reordered)`);
    if (now.type !== old.type) conflict(`column "${old.name}" cannot change type from ${old.type} to ${now.type}`);
    if (now.nullable !== old.nullable) conflict(`column "${old.name}" cannot change nullability`);
    // Definitions stored before metrics existed mean cosine.
    if ((now.metric ?? null) !== (old.metric ?? (now.metric === undefined ? null : 'cosine'))) conflict(`column "${old.name}" cannot change metric from ${old.metric ?? 'cosine'} to ${now.metric}`);
  });
  const added = columns.slice(existing.columns.length);
  for (const c of added) if (!c.nullable) conflict(`added column "${c.name}" must be nullable (old records have no value for it)`);
  if (added.length === 0) return { def: existing, changed: false };
  const last = existing.schemaVersions[existing.schemaVersions.length - 1];
  return {
    def: { ...existing, columns, schemaVersions: [...existing.schemaVersions, { version: last.version + 1, columnCount: columns.length, createdAt: now }] },
    changed: true,
  };
}
