/**
 * Feature views and feature services: what they are, and the checks that make
 * a definition valid against its source table.
 */
import { AsofError, type FieldIssue } from '../errors.js';
import { checkName, type TableSchema } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';

export const AGG_FNS = ['count', 'sum', 'avg', 'min', 'max', 'last'] as const;
export type AggFn = (typeof AGG_FNS)[number];

export type FeatureDef = { name: string; column: string } | { name: string; agg: { fn: AggFn; column?: string; window: string } };

export interface FeatureViewDef {
  name: string;
  source: string;
  /** The entity key: one column of the source table (its primary key for pk tables). */
  entity: string;
  features: FeatureDef[];
  /** Duration text (`1d`, `30m`); values older than t - ttl are OUTSIDE_MAX_AGE online, null offline. */
  ttl?: string;
  /** Bumped on every redefinition; the online store keeps rows per version. */
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface FeatureServiceDef {
  name: string;
  features: string[];
  createdAt: number;
}

const DURATION_RE = /^(\d+)(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
export const MIN_WINDOW_MS = 1000;
export const MAX_WINDOW_MS = 90 * 86_400_000;

/** `90d` → milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2]] : undefined;
}

const NUMERIC = new Set(['int32', 'int64', 'float32', 'float64']);

/** The type of a feature's values: a column's type, or the aggregate's result type. */
export function featureType(f: FeatureDef, schema: TableSchema): ColumnType {
  if ('column' in f) return schema.byName.get(f.column)!.type;
  switch (f.agg.fn) {
    case 'count':
      return { kind: 'int64' };
    case 'sum':
    case 'avg':
      return { kind: 'float64' };
    default:
      return schema.byName.get(f.agg.column!)!.type;
  }
}

/**
 * Checks a view against its source table; throws 400 naming every bad
 * reference. Returns the canonical definition (without version/timestamps).
 */
export function checkFeatureView(name: string, body: { source: string; entity: string; features: FeatureDef[]; ttl?: string }, source: TableSchema | undefined): void {
  checkName('feature view', name);
  const issues: FieldIssue[] = [];
  if (!source) {
    throw new AsofError('ASOF_INVALID_DEFINITION', `feature view "${name}": source table "${body.source}" does not exist`, [{ field: 'source', reason: `unknown table "${body.source}"` }]);
  }
  const entityCol = source.byName.get(body.entity);
  if (!entityCol) issues.push({ field: 'entity', reason: `table "${source.name}" has no column "${body.entity}"` });
  else if (source.kind === 'pk' && (source.def.primaryKey.length !== 1 || source.def.primaryKey[0] !== body.entity)) {
    issues.push({ field: 'entity', reason: `the entity of a view over pk table "${source.name}" must be its single-column primary key (${source.def.primaryKey.join(', ')})` });
  } else if (!['bool', 'int32', 'int64', 'string', 'timestamp'].includes(entityCol.type.kind)) {
    issues.push({ field: 'entity', reason: `column "${body.entity}" has type ${entityCol.type.kind}, which cannot be an entity key` });
  }
  if (body.ttl !== undefined && !(parseDuration(body.ttl)! > 0)) issues.push({ field: 'ttl', reason: `"${body.ttl}" is not a duration like 30s, 15m, 1h or 1d` });
  if (body.features.length === 0) issues.push({ field: 'features', reason: 'a view needs at least one feature' });
  const names = new Set<string>();
  body.features.forEach((f, i) => {
    const at = `features[${i}]`;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(f.name)) issues.push({ field: `${at}.name`, reason: `"${f.name}" is not a valid feature name` });
    if (names.has(f.name)) issues.push({ field: `${at}.name`, reason: `duplicate feature "${f.name}"` });
    names.add(f.name);
    if ('column' in f) {
      if (!source.byName.has(f.column)) issues.push({ field: `${at}.column`, reason: `table "${source.name}" has no column "${f.column}"` });
      return;
    }
    const { fn, column, window } = f.agg;
    if (source.kind !== 'log') issues.push({ field: `${at}.agg`, reason: `windowed aggregates need a log table; "${source.name}" is a pk table` });
    if (!AGG_FNS.includes(fn)) issues.push({ field: `${at}.agg.fn`, reason: `unknown function "${fn}" (known: ${AGG_FNS.join(', ')})` });
    const w = parseDuration(window);
    if (w === undefined || w < MIN_WINDOW_MS || w > MAX_WINDOW_MS) issues.push({ field: `${at}.agg.window`, reason: `window "${window}" must be a duration from 1s to 90d` });
    if (column === undefined) {
      if (fn !== 'count') issues.push({ field: `${at}.agg.column`, reason: `${fn} needs a column` });
      return;
    }
    const c = source.byName.get(column);
    if (!c) issues.push({ field: `${at}.agg.column`, reason: `table "${source.name}" has no column "${column}"` });
    else if ((fn === 'sum' || fn === 'avg') && !NUMERIC.has(c.type.kind)) issues.push({ field: `${at}.agg.column`, reason: `${fn} needs a numeric column; "${column}" is ${c.type.kind}` });
    else if ((fn === 'min' || fn === 'max') && !NUMERIC.has(c.type.kind) && c.type.kind !== 'timestamp') issues.push({ field: `${at}.agg.column`, reason: `${fn} needs a numeric or timestamp column; "${column}" is ${c.type.kind}` });
  });
  if (issues.length) throw new AsofError('ASOF_INVALID_DEFINITION', `invalid feature view "${name}": ${issues[0].field}: ${issues[0].reason}`, issues);
}

/** A `view:feature` reference, split. */
export function parseRef(ref: string): { view: string; feature: string } {
  const i = ref.indexOf(':');
  if (i <= 0 || i === ref.length - 1 || ref.indexOf(':', i + 1) !== -1) {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `feature reference "${ref}" must be "view:feature"`, [{ field: 'features', reason: `bad reference "${ref}"` }]);
  }
  return { view: ref.slice(0, i), feature: ref.slice(i + 1) };
}
