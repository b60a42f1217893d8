/**
 * Strict CSV (RFC 4180): the first line is the header, every record has as
 * many fields as the header, quotes are `"` (doubled inside a quoted field),
 * fields are separated by `,`, records by LF or CRLF.
 *
 * DuckDB reads the file, but with its dialect stated, never sniffed: its
 * sniffer, faced with a malformed file, guessed a dialect in which the last
 * line was the header and answered zero rows. The header is read here (so its
 * names are known before DuckDB starts), and DuckDB's errors are turned into
 * 400s naming the line and row, without the file's path on the server.
 */
import { open } from 'node:fs/promises';
import { AsofError } from '../errors.js';

/** The most bytes a header line may take. */
const MAX_HEADER_BYTES = 1 << 20;

/** The names in the first record of a CSV file; 400 when there is none, or it is not one well-formed record. */
export async function readCsvHeader(path: string): Promise<string[]> {
  const fh = await open(path, 'r');
  let text: string;
  try {
    const buf = Buffer.alloc(MAX_HEADER_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    text = buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a UTF-8 byte order mark is not part of the first name
  const bad = (reason: string): never => {
    throw new AsofError('ASOF_INVALID_ROW', `CSV header (line 1): ${reason}; nothing was imported`, [{ field: 'header', reason }]);
  };
  if (text.trim() === '') bad('the file is empty; its first line must name the columns');
  const names: string[] = [];
  let field = '';
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      // Quoted field: up to the next lone quote.
      for (i++; ; i++) {
        if (i >= text.length) bad('a quoted name has no closing quote');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i++;
          } else break;
        } else field += text[i];
      }
      i++;
      if (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') bad(`text after the closing quote of name ${names.length + 1}`);
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        if (text[i] === '"') bad(`a quote inside unquoted name ${names.length + 1}`);
        field += text[i++];
      }
    }
    names.push(field);
    field = '';
    if (i >= text.length || text[i] === '\n' || text[i] === '\r') break;
    i++; // the comma
  }
  if (i >= text.length && text.length >= MAX_HEADER_BYTES) bad(`the header is longer than ${MAX_HEADER_BYTES} bytes`);
  const seen = new Set<string>();
  names.forEach((n, k) => {
    if (n === '') bad(`name ${k + 1} is empty`);
    if (seen.has(n)) bad(`column "${n}" is named twice`);
    seen.add(n);
  });
  return names;
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * DuckDB's read_csv over `path` with the dialect stated. `text: 'all'` reads
 * every column as text with nothing sniffed at all; otherwise DuckDB infers
 * the types of the columns not listed in `text` (never the dialect or header).
 * Names in `text` the header lacks are ignored: the caller names the missing
 * column itself (an entity column absent from entity rows).
 */
export function csvSource(path: string, header: string[], text: string[] | 'all'): string {
  const args = [sqlString(path), 'header = true', "delim = ','", `quote = '"'`, `escape = '"'`, 'strict_mode = true', 'null_padding = false'];
  if (text === 'all') args.push('auto_detect = false', `columns = {${header.map((n) => `${sqlString(n)}: 'VARCHAR'`).join(', ')}}`);
  else {
    const present = text.filter((n) => header.includes(n));
    // `types = {}` is a DuckDB syntax error: with no column to read as text, the argument is left out.
    if (present.length) args.push(`types = {${present.map((n) => `${sqlString(n)}: 'VARCHAR'`).join(', ')}}`);
  }
  return `read_csv(${args.join(', ')})`;
}

/** A DuckDB error while reading a CSV file → 400 naming the line (and data row) and why; never the server path. */
export function csvReadError(e: unknown, path: string): AsofError {
  if (e instanceof AsofError) return e;
  const msg = (e as Error).message ?? String(e);
  const line = /CSV Error on Line: (\d+)/.exec(msg)?.[1];
  const columns = /Expected Number of Columns: (\d+) Found: (\d+)/.exec(msg);
  let reason: string;
  if (columns) reason = `expected ${columns[1]} fields (one per header name), found ${columns[2]}`;
  else if (/unterminated quote/i.test(msg)) reason = 'a quoted field has no closing quote';
  else if (/unicode|utf-?8/i.test(msg)) reason = 'the text is not valid UTF-8';
  else reason = withoutPaths(msg.split('\n')[0], path).replace(/^Invalid Input Error: /, '');
  if (line) {
    const row = Number(line) - 2; // line 1 is the header; rows count from 0
    return new AsofError('ASOF_INVALID_ROW', `CSV line ${line} (row ${row}): ${reason}; nothing was imported`, [{ row, field: '', reason: `line ${line}: ${reason}` }]);
  }
  return new AsofError('ASOF_INVALID_ARGUMENT', `cannot read the csv file: ${reason}`, [{ field: 'file', reason }]);
}

/** A message with the server's file path (and any other quoted absolute path) replaced: paths are not the client's business. */
export function withoutPaths(message: string, path: string): string {
  return message.replaceAll(path, '<file>').replace(/(["'])\/[^"'\n]*\1/g, '<file>');
}
