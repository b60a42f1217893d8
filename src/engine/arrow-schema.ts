/**
 * What every changelog batch shares: the change-type column and the Arrow type
 * of each column type.
 */
import * as A from 'apache-arrow';
import type { ColumnType } from './types.js';

export const CHANGE_COLUMN = '_asof_change';

/** Change types, as stored (int8) and as named on the wire. */
export const ChangeType = { INSERT: 0, UPDATE_BEFORE: 1, UPDATE_AFTER: 2, DELETE: 3 } as const;
export type ChangeTypeCode = (typeof ChangeType)[keyof typeof ChangeType];
export const CHANGE_NAMES = ['+I', '-U', '+U', '-D'] as const;
export type ChangeName = (typeof CHANGE_NAMES)[number];

/** The Arrow type a column type is stored as; `M` is the apache-arrow load to build it in (LanceDB's, for the cold tier: lance-batch.ts). */
export function arrowType(t: ColumnType, M: typeof import('apache-arrow') = A): A.DataType {
  switch (t.kind) {
    case 'bool':
      return new M.Bool();
    case 'int32':
      return new M.Int32();
    case 'int64':
      return new M.Int64();
    case 'float32':
      return new M.Float32();
    case 'float64':
      return new M.Float64();
    case 'string':
    case 'json':
      return new M.Utf8();
    case 'timestamp':
      return new M.TimestampMillisecond('UTC');
    case 'list':
      return new M.List(new M.Field('item', arrowType(t.item, M), true));
    case 'struct':
      return new M.Struct(t.fields.map((f) => new M.Field(f.name, arrowType(f.type, M), true)));
    case 'vector':
      return new M.FixedSizeList(t.dim, new M.Field('item', new M.Float32(), false));
  }
}
