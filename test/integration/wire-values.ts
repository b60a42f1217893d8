/**
 * asof.v1 and Feast `Value` messages as proto-loader decodes them (oneofs
 * named, longs as strings), turned into plain forms tests compare: the set
 * field and its value, or the JSON the REST forms answer for the same value.
 */

/** A decoded asof.v1.Value → {field: value}, recursively, timestamps as epoch ms. */
export function asofPlain(v: any): any {
  const k = v.kind;
  const x = v[k];
  switch (k) {
    case 'timestamp_value':
      return { [k]: Number(x.seconds) * 1000 + (x.nanos ?? 0) / 1e6 };
    case 'list_value':
      return { [k]: (x.values ?? []).map(asofPlain) };
    case 'struct_value':
      return { [k]: Object.fromEntries(Object.entries(x.fields ?? {}).map(([n, f]) => [n, asofPlain(f)])) };
    case 'vector_value':
      return { [k]: x.values };
    default:
      return { [k]: x };
  }
}

/** A decoded asof.v1.Value → the JSON REST answers for it (timestamps RFC 3339, int64 beyond 2^53 as strings, json_value parsed). */
export function asofJson(v: any): unknown {
  const x = v[v.kind];
  switch (v.kind) {
    case undefined:
    case 'null_value':
      return null;
    case 'int64_value':
      return Number.isSafeInteger(Number(x)) ? Number(x) : x;
    case 'timestamp_value':
      return new Date(Number(x.seconds) * 1000 + x.nanos / 1e6).toISOString();
    case 'json_value':
      return JSON.parse(x);
    case 'list_value':
      return (x.values ?? []).map(asofJson);
    case 'struct_value':
      return Object.fromEntries(Object.entries(x.fields ?? {}).map(([n, f]) => [n, asofJson(f)]));
    case 'vector_value':
      return x.values;
    default:
      return x;
  }
}

/** A decoded feast.types.Value → {field: value}, lists as arrays, maps as objects of the same. */
export function feastPlain(v: any): any {
  const k = v.val;
  if (k === undefined) return {};
  const x = v[k];
  if (k === 'map_val') return { [k]: Object.fromEntries(Object.entries(x.val ?? {}).map(([n, i]) => [n, feastPlain(i)])) };
  if (k === 'map_list_val') return { [k]: (x.val ?? []).map((m: any) => Object.fromEntries(Object.entries(m.val ?? {}).map(([n, i]) => [n, feastPlain(i)]))) };
  if (k.endsWith('_list_val')) return { [k]: x.val ?? [] };
  return { [k]: x };
}

/** A decoded feast.types.Value → the JSON Feast's REST form gives it (int64 beyond 2^53 as strings, NaN as null, maps as objects). */
export function feastJson(v: any): unknown {
  const int64 = (x: string) => (Number.isSafeInteger(Number(x)) ? Number(x) : x);
  const num = (x: number) => (Number.isNaN(x) ? null : x);
  const map = (m: any) => Object.fromEntries(Object.entries(m.val ?? {}).map(([n, i]) => [n, feastJson(i)]));
  const x = v[v.val];
  switch (v.val) {
    case undefined:
    case 'null_val':
      return null;
    case 'int64_val':
    case 'unix_timestamp_val':
      return int64(x);
    case 'double_val':
    case 'float_val':
      return num(x);
    case 'int64_list_val':
    case 'unix_timestamp_list_val':
      return (x.val ?? []).map(int64);
    case 'double_list_val':
    case 'float_list_val':
      return (x.val ?? []).map(num);
    case 'map_val':
      return map(x);
    case 'map_list_val':
      return (x.val ?? []).map(map);
    default:
      return v.val.endsWith('_list_val') ? (x.val ?? []) : x;
  }
}
