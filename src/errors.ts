/**
 * The one error catalogue. Every error asof returns has a stable wire `code`
 * (never changed once published), an HTTP status, a gRPC status and whether a
 * retry may help. REST and gRPC both map from here; a test keeps this table,
 * the OpenAPI spec and the README in step.
 */

/** gRPC status codes used by the catalogue (numeric values from grpc's spec). */
export const GrpcStatus = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusName = keyof typeof GrpcStatus;

interface ErrorSpec {
  http: number;
  grpc: GrpcStatusName;
  retriable: boolean;
  /** What the code means, for the docs. */
  doc: string;
}

export const ERROR_CATALOGUE = {
  ASOF_INVALID_ARGUMENT: { http: 400, grpc: 'INVALID_ARGUMENT', retriable: false, doc: 'The request is malformed or a field is invalid; details name the field.' },
  ASOF_INVALID_ROW: { http: 400, grpc: 'INVALID_ARGUMENT', retriable: false, doc: 'A row does not match the table schema; details name the row index, the column and why. Nothing was written.' },
  ASOF_INVALID_DEFINITION: { http: 400, grpc: 'INVALID_ARGUMENT', retriable: false, doc: 'A table, feature view or service definition is invalid or references something unknown.' },
  ASOF_UNAUTHENTICATED: { http: 401, grpc: 'UNAUTHENTICATED', retriable: false, doc: 'No valid API key was given.' },
  ASOF_PERMISSION_DENIED: { http: 403, grpc: 'PERMISSION_DENIED', retriable: false, doc: 'The API key may not do this.' },
  ASOF_TABLE_NOT_FOUND: { http: 404, grpc: 'NOT_FOUND', retriable: false, doc: 'No table has this name.' },
  ASOF_ROW_NOT_FOUND: { http: 404, grpc: 'NOT_FOUND', retriable: false, doc: 'The table holds no row with this key.' },
  ASOF_FEATURE_VIEW_NOT_FOUND: { http: 404, grpc: 'NOT_FOUND', retriable: false, doc: 'No feature view has this name.' },
  ASOF_FEATURE_SERVICE_NOT_FOUND: { http: 404, grpc: 'NOT_FOUND', retriable: false, doc: 'No feature service has this name.' },
  ASOF_NOT_FOUND: { http: 404, grpc: 'NOT_FOUND', retriable: false, doc: 'The resource does not exist.' },
  ASOF_SCHEMA_CONFLICT: { http: 409, grpc: 'FAILED_PRECONDITION', retriable: false, doc: 'The schema change is incompatible (only nullable columns added at the end are allowed); the message says why.' },
  ASOF_CONFLICT: { http: 409, grpc: 'ALREADY_EXISTS', retriable: false, doc: 'The request conflicts with the current state (for example an Idempotency-Key reused with a different body, or a table or view name another primary holds in the shared Redis: `details.heldBy` names it).' },
  ASOF_PAYLOAD_TOO_LARGE: { http: 413, grpc: 'RESOURCE_EXHAUSTED', retriable: false, doc: 'The body or batch exceeds the configured limit.' },
  ASOF_UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: 'INVALID_ARGUMENT', retriable: false, doc: 'The Content-Type is not one this route accepts.' },
  ASOF_REQUEST_TIMEOUT: { http: 408, grpc: 'DEADLINE_EXCEEDED', retriable: true, doc: 'While the request held a slot of bounded work, the client stopped sending its request body (or, on a gRPC client stream, its next message) for longer than ASOF_BODY_IDLE_TIMEOUT_MS, sent it slower than ASOF_BODY_MIN_BYTES_PER_S over a window of ASOF_BODY_RATE_WINDOW_MS, or took longer than ASOF_BODY_MAX_MS over a body read into memory (details.reason: idle, slow, too_long); the unfinished body was not written (earlier messages of a stream stay written, as the details say).' },
  ASOF_OVERLOADED: { http: 429, grpc: 'RESOURCE_EXHAUSTED', retriable: true, doc: 'Too many requests in flight; retry with backoff.' },
  ASOF_BACKEND_UNAVAILABLE: { http: 503, grpc: 'UNAVAILABLE', retriable: true, doc: 'A backend (the online store, for example Redis) is unreachable, or another primary took the name of a view this one materializes there (the message names it); asof recovers by itself when it returns, or when the name is free again.' },
  ASOF_STORAGE_FAILED: { http: 503, grpc: 'UNAVAILABLE', retriable: true, doc: 'The changelog could not be written or fsync\'d. Nothing of the request was written (the file is cut back to its last durable frame before anything more is acknowledged): retry. An import that fails after some of its batches were committed says so in `details.written`.' },
  ASOF_TABLE_UNAVAILABLE: { http: 503, grpc: 'UNAVAILABLE', retriable: false, doc: 'The table did not open at start-up, for example because its changelog is damaged before its end (the message then names the file, the byte and the offsets affected; `asof repair` cuts the damage); or a changelog frame a read needs was damaged on disk since (the message names the table, the frame\'s offsets, file and byte; reads from later offsets answer). Other tables keep serving. Vector search also answers it for a column whose Lance dataset does not open (the message names the column and why); a search or flush 1 s after the failure (doubling up to 30 s while it keeps failing) tries to open it again.' },
  ASOF_NOT_READY: { http: 503, grpc: 'UNAVAILABLE', retriable: true, doc: 'The server is starting or stopping.' },
  ASOF_INTERNAL: { http: 500, grpc: 'INTERNAL', retriable: true, doc: 'An unexpected failure; the log has the cause.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The one error type the services throw; adapters turn it into HTTP or gRPC. */
export class AsofError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AsofError';
    this.code = code;
    this.details = details;
  }
  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code].http;
  }
  get grpcStatus(): number {
    return GrpcStatus[ERROR_CATALOGUE[this.code].grpc];
  }
  get retriable(): boolean {
    return ERROR_CATALOGUE[this.code].retriable;
  }
  /**
   * The message as clients see it. A server-side failure's message may quote
   * a storage error, which names files on the server: their paths are not the
   * client's business (the log keeps the full message).
   */
  get publicMessage(): string {
    return this.httpStatus >= 500 ? withoutServerPaths(this.message) : this.message;
  }
  /**
   * The wire form. `details` is always there: a 400's list of field issues
   * ([] when none was given), another error's object of facts ({} when none).
   */
  toJSON(): { error: { code: ErrorCode; message: string; details: unknown } } {
    return { error: { code: this.code, message: this.publicMessage, details: this.details ?? (this.httpStatus === 400 ? [] : {}) } };
  }
}

/**
 * File paths in a message replaced by `<path>`: absolute ones of two or more segments, and relative-looking ones of
 * four or more (Lance's errors print the dataset's absolute path without its leading slash).
 */
export const withoutServerPaths = (message: string): string =>
  message.replace(/(?<![\w.])\/(?:[^\s'"/:,;()]+\/)+[^\s'":,;()]*/g, '<path>').replace(/(?<![\w./<])(?:[^\s'"/:,;()<>]+\/){3,}[^\s'":,;()]*/g, '<path>');

export const isAsofError = (e: unknown): e is AsofError => e instanceof AsofError;

/** One field-level problem, as listed in `details` of 400 answers. */
export interface FieldIssue {
  /** Index of the row in the request, when the problem is in a row. */
  row?: number;
  /** Column or field path, dotted for nested fields. */
  field: string;
  reason: string;
}
