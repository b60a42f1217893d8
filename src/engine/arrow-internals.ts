/**
 * The only place asof reaches into apache-arrow's internals (modules outside
 * its public `apache-arrow` entry point), pinned to apache-arrow 18.1.0.
 *
 * The changelog's hot paths write and read one record batch per commit
 * (arrow-encode.ts, arrow-decode.ts). Arrow's public writer and reader
 * (RecordBatchStreamWriter, tableFromIPC) produce and accept exactly these
 * bytes, but their queue, iterator and table machinery cost more than the
 * data; so the batch body is assembled and loaded with the visitors those
 * classes use inside. These paths are not a public API and may move in any
 * Arrow release: test/unit/arrow-internals.test.ts checks each export here
 * against the public writer and reader, and fails naming the export when an
 * upgrade breaks it.
 */
export { VectorAssembler } from 'apache-arrow/visitor/vectorassembler';
export { VectorLoader } from 'apache-arrow/visitor/vectorloader';
export { RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
