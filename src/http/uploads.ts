/**
 * File uploads (CSV, NDJSON, Parquet) as a request body: the body is streamed
 * to a scratch file, never held in memory, and refused with 413 past the
 * upload limit. Used by training sets (entity rows) and imports.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AsofError } from '../errors.js';
import { FILE_FORMATS, type FileFormat } from '../offline/files.js';
import { unsupportedMediaType } from './route.js';

export const FILE_CONTENT_TYPES: Record<FileFormat, string> = {
  csv: 'text/csv',
  ndjson: 'application/x-ndjson',
  parquet: 'application/vnd.apache.parquet',
};
const BY_CONTENT_TYPE = new Map<string, FileFormat | undefined>([
  ['text/csv', 'csv'],
  ['application/x-ndjson', 'ndjson'],
  ['application/vnd.apache.parquet', 'parquet'],
  ['application/octet-stream', undefined],
]);

/**
 * Makes a (child) Fastify scope hand file bodies to handlers as raw streams.
 * Call inside `app.register`, so other routes keep their own parsers.
 */
export function acceptFileBodies(scope: FastifyInstance): void {
  for (const ct of BY_CONTENT_TYPE.keys()) {
    if (scope.hasContentTypeParser(ct)) scope.removeContentTypeParser(ct);
    scope.addContentTypeParser(ct, (_req, payload, done) => done(null, payload));
  }
}

const mediaType = (req: FastifyRequest): string => (req.headers['content-type'] ?? 'application/json').split(';')[0].trim().toLowerCase();

/** Whether the request carries a file body rather than JSON. */
export const isFileBody = (req: FastifyRequest): boolean => BY_CONTENT_TYPE.has(mediaType(req));

/** Refuses a body that is neither JSON nor a file (Fastify itself would hand text/plain through as a string). */
export function assertJsonOrFile(req: FastifyRequest): void {
  const ct = mediaType(req);
  if (ct !== 'application/json' && !BY_CONTENT_TYPE.has(ct)) {
    throw unsupportedMediaType(ct, ['application/json', ...Object.values(FILE_CONTENT_TYPES)]);
  }
}

/** The file format of a file body: from its Content-Type, or `?format=` for application/octet-stream. */
export function fileFormatOf(req: FastifyRequest, given?: string): FileFormat {
  const ct = mediaType(req);
  const byType = BY_CONTENT_TYPE.get(ct);
  if (byType) return byType;
  // ?fileFormat= names the format of an application/octet-stream body only: any other type (an Arrow stream, say) has
  // already been parsed by its own parser, so it is not a file to save (the fuzzer found that reaching a 500).
  if (ct === 'application/octet-stream' && given && (FILE_FORMATS as readonly string[]).includes(given)) return given as FileFormat;
  throw new AsofError('ASOF_UNSUPPORTED_MEDIA_TYPE', `a file body needs Content-Type ${Object.values(FILE_CONTENT_TYPES).join(', ')} (or application/octet-stream with ?fileFormat=csv|ndjson|parquet); got ${ct}`);
}

/** Streams the body to `path`; 413 beyond `maxBytes` (the partial file is removed). */
export async function saveBody(body: Readable, path: string, maxBytes: number): Promise<number> {
  let bytes = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > maxBytes) cb(new AsofError('ASOF_PAYLOAD_TOO_LARGE', `the uploaded file exceeds the limit of ${maxBytes} bytes (ASOF_MAX_UPLOAD_BYTES)`, { maxBytes }));
      else cb(null, chunk);
    },
  });
  try {
    await pipeline(body, limit, createWriteStream(path));
    return bytes;
  } catch (e) {
    await rm(path, { force: true });
    throw e;
  }
}
