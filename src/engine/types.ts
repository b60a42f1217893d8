/**
 * Column types, parsed from their text form (`int64`, `list<string>`,
 * `struct<a:int32,b:string>`, `vector<128>`) into a tree once, at the edge.
 */
import { AsofError } from '../errors.js';

export type ColumnType =
  | { kind: 'bool' }
  | { kind: 'int32' }
  | { kind: 'int64' }
  | { kind: 'float32' }
  | { kind: 'float64' }
  | { kind: 'string' }
  | { kind: 'timestamp' }
  | { kind: 'json' }
  | { kind: 'list'; item: ColumnType }
  | { kind: 'struct'; fields: { name: string; type: ColumnType }[] }
  | { kind: 'vector'; dim: number };

const SCALARS = new Set(['bool', 'int32', 'int64', 'float32', 'float64', 'string', 'timestamp', 'json']);
export const MAX_VECTOR_DIM = 65_536;

/** Parses a type's text form; throws a plain Error whose message says what is wrong. */
export function parseType(text: string): ColumnType {
  const p = new TypeParser(text);
  const t = p.type();
  p.end();
  return t;
}

class TypeParser {
  private i = 0;
  constructor(private readonly s: string) {}

  type(): ColumnType {
    const name = this.ident();
    if (SCALARS.has(name)) return { kind: name } as ColumnType;
    if (name === 'list') {
      this.expect('<');
      const item = this.type();
      this.expect('>');
      return { kind: 'list', item };
    }
    if (name === 'vector') {
      this.expect('<');
      const digits = this.match(/^\d+/);
      const dim = Number(digits);
      if (!digits || dim < 1 || dim > MAX_VECTOR_DIM) throw new Error(`vector dimension must be 1..${MAX_VECTOR_DIM} in "${this.s}"`);
      this.expect('>');
      return { kind: 'vector', dim };
    }
    if (name === 'struct') {
      this.expect('<');
      const fields: { name: string; type: ColumnType }[] = [];
      do {
        const fname = this.ident();
        this.expect(':');
        if (fields.some((f) => f.name === fname)) throw new Error(`duplicate struct field "${fname}" in "${this.s}"`);
        fields.push({ name: fname, type: this.type() });
      } while (this.accept(','));
      this.expect('>');
      return { kind: 'struct', fields };
    }
    throw new Error(`unknown type "${name}" in "${this.s}" (known: ${[...SCALARS].join(', ')}, list<T>, struct<name:T,...>, vector<D>)`);
  }

  end(): void {
    this.skip();
    if (this.i !== this.s.length) throw new Error(`unexpected "${this.s.slice(this.i)}" in type "${this.s}"`);
  }

  private skip(): void {
    while (this.s[this.i] === ' ') this.i++;
  }
  private match(re: RegExp): string {
    this.skip();
    const m = re.exec(this.s.slice(this.i));
    if (!m) return '';
    this.i += m[0].length;
    return m[0];
  }
  private ident(): string {
    const id = this.match(/^[A-Za-z_][A-Za-z0-9_]*/);
    if (!id) throw new Error(`expected a name at position ${this.i} in type "${this.s}"`);
    return id;
  }
  private accept(ch: string): boolean {
    this.skip();
    if (this.s[this.i] === ch) {
      this.i++;
      return true;
    }
    return false;
  }
  private expect(ch: string): void {
    if (!this.accept(ch)) throw new Error(`expected "${ch}" at position ${this.i} in type "${this.s}"`);
  }
}

export function formatType(t: ColumnType): string {
  switch (t.kind) {
    case 'list':
      return `list<${formatType(t.item)}>`;
    case 'struct':
      return `struct<${t.fields.map((f) => `${f.name}:${formatType(f.type)}`).join(',')}>`;
    case 'vector':
      return `vector<${t.dim}>`;
    default:
      return t.kind;
  }
}

/** Parses the type of column `index` (named `column`) of a definition, turning a syntax problem into a 400 that names the field (`columns[1].type`, as every definition issue names a column). */
export function parseColumnType(column: string, text: string, index: number): ColumnType {
  try {
    return parseType(text);
  } catch (e) {
    throw new AsofError('ASOF_INVALID_DEFINITION', `column "${column}": ${(e as Error).message}`, [{ field: `columns[${index}].type`, reason: (e as Error).message }]);
  }
}
