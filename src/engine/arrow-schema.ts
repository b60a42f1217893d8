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

export function arrowType(t: ColumnType): A.DataType {
  switch (t.kind) {
    case 'bool':
      return new A.Bool();
    case 'int32':
      return new A.Int32();
    case 'int64':
      return new A.Int64();
    case 'float32':
      return new A.Float32();
    case 'float64':
      return new A.Float64();
    case 'string':
    case 'json':
      return new A.Utf8();
    case 'timestamp':
      return new A.TimestampMillisecond('UTC');
    case 'list':
      return new A.List(new A.Field('item', arrowType(t.item), true));
    case 'struct':
      return new A.Struct(t.fields.map((f) => new A.Field(f.name, arrowType(f.type), true)));
    case 'vector':
      return new A.FixedSizeList(t.dim, new A.Field('item', new A.Float32(), false));
  }
}
