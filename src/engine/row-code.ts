/**
 * Row functions compiled for one column list: build a canonical row, gather
 * rows into columns, and validate a row that is probably valid.
 *
 * Why generated code: a loop over columns reads `row[column.name]` with a
 * different name on each turn, which V8 can only do through its slowest
 * (megamorphic) property lookup; that lookup was a third of the ingest path.
 * Generated code names each property literally, so every access is a plain
 * monomorphic field load, and every row is built by one object literal (one
 * hidden class for all rows of a table, whether validated or decoded).
 *
 * Only column names that are plain identifiers and not properties of
 * Object.prototype are compiled (checked here again, not trusted from the
 * catalog); for anything else `compileRowCode` returns undefined and callers
 * use their generic loops.
 */
import type { Row } from './schema.js';

export interface RowCode {
  /** One canonical row per index, from one value array per column (in column order). */
  build(columns: unknown[][], n: number): Row[];
  /** The inverse: one value array per column, in column order. */
  gather(rows: Row[]): unknown[][];
  /**
   * An input object → its canonical row, when the row is valid; returns
   * undefined or throws when it may not be, and the caller then runs the
   * precise validator on it (which names every problem).
   */
  validate(src: Record<string, unknown>): Row | undefined;
}

/** A column as far as row code needs it; `validate` needs nullable and coerce, `build` and `gather` only the name. */
interface Col {
  name: string;
  nullable?: boolean;
  coerce?: (v: unknown) => unknown;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function compileRowCode(columns: Col[]): RowCode | undefined {
  if (columns.length === 0 || columns.length > 10_000) return undefined;
  for (const c of columns) if (!IDENT.test(c.name) || c.name in Object.prototype) return undefined;
  const names = columns.map((c) => JSON.stringify(c.name));
  const idx = columns.map((_, i) => i);
  const literal = (value: (i: number) => string): string => `{${idx.map((i) => `${names[i]}: ${value(i)}`).join(', ')}}`;

  const build = new Function(
    'cols',
    'n',
    `"use strict";
    ${idx.map((i) => `const c${i} = cols[${i}];`).join('\n')}
    const rows = new Array(n);
    for (let i = 0; i < n; i++) rows[i] = ${literal((i) => `c${i}[i]`)};
    return rows;`,
  ) as RowCode['build'];

  const gather = new Function(
    'rows',
    `"use strict";
    const n = rows.length;
    ${idx.map((i) => `const c${i} = new Array(n);`).join('\n')}
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      ${idx.map((i) => `c${i}[i] = r[${names[i]}];`).join('\n')}
    }
    return [${idx.map((i) => `c${i}`).join(', ')}];`,
  ) as RowCode['gather'];

  // Counts the input's own keys against the columns it named, so an unknown
  // column (or an undefined value) sends the row to the precise validator.
  const validate = !columns.every((c) => c.coerce) ? () => undefined : new Function(
    'coerce',
    `"use strict";
    ${idx.map((i) => `const f${i} = coerce[${i}];`).join('\n')}
    return function (src) {
      let seen = 0;
      ${idx
        .map((i) => {
          const nullCheck = columns[i].nullable ? '' : ` if (v${i} === null) return undefined;`;
          return `const v${i} = src[${names[i]}]; if (v${i} === undefined) ${columns[i].nullable ? '{}' : 'return undefined;'} else {${nullCheck} seen++; }`;
        })
        .join('\n')}
      let keys = 0;
      for (const k in src) keys++;
      if (keys !== seen) return undefined;
      return ${literal((i) => `v${i} === undefined || v${i} === null ? null : f${i}(v${i})`)};
    };`,
  )(columns.map((c) => c.coerce)) as RowCode['validate'];

  return { build, gather, validate };
}

const cache = new WeakMap<object, RowCode | null>();
/** Column lists that arrive with data (Arrow bodies) are keyed by their names; bounded. */
const byNames = new Map<string, RowCode | null>();

/** `compileRowCode`, once per column list (column lists are immutable: a schema change makes a new one). */
export function rowCodeFor(columns: Col[]): RowCode | undefined {
  if (!columns.every((c) => c.coerce)) {
    const key = columns.map((c) => c.name).join(',');
    let code = byNames.get(key);
    if (code === undefined) {
      if (byNames.size >= 256) byNames.delete(byNames.keys().next().value!);
      code = compileRowCode(columns) ?? null;
      byNames.set(key, code);
    }
    return code ?? undefined;
  }
  let code = cache.get(columns);
  if (code === undefined) {
    code = compileRowCode(columns) ?? null;
    cache.set(columns, code);
  }
  return code ?? undefined;
}
