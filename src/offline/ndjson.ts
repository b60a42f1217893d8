/**
 * NDJSON files read line by line (imports, training-set entity rows): one
 * JSON object per line, lines split at `\n` (a `\r` before it is JSON
 * whitespace), blank lines skipped, as `POST /tables/{table}/rows` reads an
 * NDJSON body. A line is held whole until its newline, so its length is
 * capped: a file of one multi-GB line would otherwise be held whole.
 */
import { createReadStream } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { AsofError } from '../errors.js';
import { parseJsonText } from '../engine/json-safety.js';

/**
 * The longest NDJSON line (one row) a file may have, bytes, when the caller
 * gives none: the default ASOF_MAX_BODY_BYTES, the largest body (so the
 * largest row) `POST /tables/{table}/rows` takes. Servers and the CLI pass
 * the configured body limit instead.
 */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

const NEWLINE = 0x0a;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** A line longer than the cap, found before its end was read. */
class LineTooLong extends Error {
  constructor(readonly line: number) {
    super('line too long');
  }
}

/**
 * The file's rows in file order. Throws 400 ASOF_INVALID_ROW for a line that
 * is not a JSON object (naming row and line), 400 for bytes that are not
 * UTF-8, and 413 ASOF_PAYLOAD_TOO_LARGE for a line over `maxLineBytes`,
 * having read no more of it than the cap.
 */
export async function* ndjsonObjects(path: string, maxLineBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<Record<string, unknown>> {
  let row = 0;
  try {
    for await (const { bytes, line, at } of lines(createReadStream(path), maxLineBytes)) {
      if (!isUtf8(bytes)) throw new AsofError('ASOF_INVALID_ARGUMENT', `the file is not valid UTF-8 (in line ${line}, the bytes from ${at}); nothing was imported`, [{ row, field: 'file', reason: `invalid UTF-8 in line ${line}` }]);
      const text = bytes.toString('utf8');
      if (!text.trim()) continue;
      let obj: unknown;
      try {
        obj = parseJsonText(text, { what: `NDJSON line ${line}` });
      } catch (e) {
        const reason = (e as Error).message;
        throw new AsofError('ASOF_INVALID_ROW', `row ${row}: ${reason}`, [{ row, field: '', reason: `line ${line}: ${reason}` }]);
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new AsofError('ASOF_INVALID_ROW', `NDJSON line ${line} is not a JSON object`, [{ row, field: '', reason: 'not an object' }]);
      row++;
      yield obj as Record<string, unknown>;
    }
  } catch (e) {
    if (!(e instanceof LineTooLong)) throw e;
    throw new AsofError('ASOF_PAYLOAD_TOO_LARGE', `row ${row}: NDJSON line ${e.line} is longer than ${maxLineBytes} bytes, the most one row may take (ASOF_MAX_BODY_BYTES)`, { row, line: e.line, maxLineBytes });
  }
}

/**
 * The lines of a byte stream without their `\n` (a UTF-8 BOM at the start
 * dropped), with their 1-based number and the file offset they start at.
 * Throws LineTooLong as soon as a line has more than `maxBytes` bytes.
 */
async function* lines(chunks: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<{ bytes: Buffer; line: number; at: number }> {
  let parts: Buffer[] = [];
  let held = 0;
  let line = 1;
  let at = 0;
  let read = 0;
  let first = true;
  for await (let chunk of chunks) {
    if (first) {
      first = false;
      if (chunk.subarray(0, BOM.length).equals(BOM)) {
        chunk = chunk.subarray(BOM.length);
        read = at = BOM.length;
      }
    }
    let from = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, from)) {
      if (held + nl - from > maxBytes) throw new LineTooLong(line);
      const piece = chunk.subarray(from, nl);
      yield { bytes: held ? Buffer.concat([...parts, piece]) : piece, line, at };
      parts = [];
      held = 0;
      line++;
      at = read + nl + 1;
      from = nl + 1;
    }
    if (held + chunk.length - from > maxBytes) throw new LineTooLong(line);
    if (from < chunk.length) {
      parts.push(chunk.subarray(from));
      held += chunk.length - from;
    }
    read += chunk.length;
  }
  if (held) yield { bytes: Buffer.concat(parts), line, at };
}
