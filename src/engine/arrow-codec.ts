/**
 * Canonical rows ↔ Arrow record batches. The changelog stores each commit as
 * one Arrow IPC stream (schema + one record batch): column `_asof_change`
 * (int8 change type) followed by the table's columns as they were at that
 * schema version. Decoding fills columns the batch lacks (added later) with null.
 *
 * Encoding is in arrow-encode.ts, decoding in arrow-decode.ts; this module is
 * the one place the rest of the code imports them from.
 */
export { arrowType, CHANGE_COLUMN, CHANGE_NAMES, ChangeType, type ChangeName, type ChangeTypeCode } from './arrow-schema.js';
export { buildColumn, encodeBatch, encodeValues } from './arrow-encode.js';
export { decodeBatch, decodeColumn, decodeIpc, decodeValues, decodeValuesInto, streamMetadata, type DecodedBatch, type StoredBatch } from './arrow-decode.js';
