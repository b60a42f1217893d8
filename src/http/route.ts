/**
 * Schema-first routes: each route states its params, query, body and every
 * response as zod schemas. The same schemas validate requests (turning zod
 * issues into our 400 with field details) and produce the OpenAPI document.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Access } from '../access.js';
import type { WorkKind } from '../admission.js';
import { AsofError, ERROR_CATALOGUE } from '../errors.js';

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_CATALOGUE) as [keyof typeof ERROR_CATALOGUE, ...(keyof typeof ERROR_CATALOGUE)[]]),
      message: z.string(),
      details: z
        .union([z.array(z.object({ row: z.number().int().optional(), field: z.string(), reason: z.string() }).meta({ id: 'FieldIssue' })), z.record(z.string(), z.unknown())])
        .describe('Always present. A 400 lists each problem as {row?, field, reason} (an empty list only when no one field is at fault); other errors give an object of named facts ({} when there are none).'),
    }),
  })
  .meta({ id: 'Error' });

/** The JSON body's text as received (set by the body parser in server.ts when the request has an Idempotency-Key), for fingerprints that must not re-serialise the parsed value. */
export const RAW_JSON = Symbol('asof.rawJson');
export const rawJsonOf = (req: FastifyRequest): string | undefined => (req as { [RAW_JSON]?: string })[RAW_JSON];

/**
 * The request's Idempotency-Key, undefined without one. Node joins a header sent twice with ", ", so two keys
 * would be taken as the one key "a, b" (and answer a later request that sends that text): sent more than once
 * it is a 400, as two keys name no one request.
 */
export function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string' || !key) return undefined;
  if (key.includes(',')) {
    let sent = 0;
    for (let i = 0; i < req.raw.rawHeaders.length; i += 2) if (req.raw.rawHeaders[i].toLowerCase() === 'idempotency-key') sent++;
    if (sent > 1) throw new AsofError('ASOF_INVALID_ARGUMENT', `the Idempotency-Key header was sent ${sent} times; send one key per request`, [{ field: 'Idempotency-Key', reason: `sent ${sent} times` }]);
  }
  return key;
}

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: Method;
  url: string;
  /**
   * What a caller's API key must grant (src/access.ts): read, write, decide,
   * admin or audit; 'authenticated' (any valid key) or 'public'. Checked
   * before the body is read.
   */
  scope: Access;
  /** The kind of work, when it is bounded (admission.ts): beyond the kind's limits the route answers 429 before its body is read. */
  work?: WorkKind;
  /** The stable OpenAPI operationId (method names of generated clients): never change it once published. */
  operationId: string;
  summary: string;
  /** A hot lookup route: its requests are logged one by one only at LOG_LEVEL debug or trace (server.ts). */
  hot?: boolean;
  description?: string;
  tags: string[];
  params?: P;
  query?: Q;
  /** JSON body schema. Routes that take other content types describe them in `consumes`. */
  body?: B;
  /**
   * Parses the request instead of zod on hot paths (it may memoize zod's
   * answers); undefined falls back to zod, which then also produces the error.
   * The zod schemas still document the route.
   */
  parse?: (req: FastifyRequest) => Parsed<z.infer<P>, z.infer<Q>, z.infer<B>> | undefined;
  /**
   * Parses the JSON body instead of zod, on hot paths where zod's copy of every
   * element costs more than the work itself (1,000-row writes). It must accept
   * exactly what `body` accepts, and should hand anything else to `parsePart`
   * so errors keep their shape; `body` still documents the route.
   */
  checkBody?: (value: unknown) => z.infer<B>;
  /**
   * A JSON body of rows for the table in the `:table` param: the body parser (server.ts) offers it to the
   * ingest service's threads first (IngestService.parseJsonBody), and parses it itself when they decline.
   */
  rowsOffThread?: boolean;
  /** The JSON body's text is kept for the handler (rawJsonOf): for what only the text shows, such as numbers a float64 bends. */
  keepText?: boolean;
  /** Other body media types this route accepts (documented; parsed by the handler). */
  consumes?: string[];
  /** Status → schema. Error statuses default to the Error body. */
  responses: Record<number, z.ZodType | 'error' | { description: string; contentType: string }>;
}

export interface Parsed<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

/** Named schemas (zod `.meta({id})`), collected for the OpenAPI document's components. */
export const componentSchemas: Record<string, unknown> = {};

function toJsonSchema(s: z.ZodType): Record<string, unknown> {
  const raw = z.toJSONSchema(s, { target: 'draft-2020-12', unrepresentable: 'any', io: 'input' });
  const j = JSON.parse(JSON.stringify(raw).replaceAll('"#/$defs/', '"#/components/schemas/')) as Record<string, unknown>;
  delete j.$schema;
  const defs = j.$defs as Record<string, unknown> | undefined;
  if (defs) Object.assign(componentSchemas, defs);
  delete j.$defs;
  // A schema that is itself named comes back as its definition plus an id; refer to it instead.
  const id = (s.meta() as { id?: string } | undefined)?.id;
  if (id) {
    if (!defs?.[id]) {
      const { id: _drop, ...rest } = j;
      componentSchemas[id] = rest;
    }
    return { $ref: `#/components/schemas/${id}` };
  }
  return j;
}

/**
 * A field path as every 400 names it: the request part, then object keys
 * dotted and array indexes bracketed (`body.columns[1].metric`), as the
 * services name the fields of what they check (`columns[1].name`).
 */
export function fieldPath(where: string, path: readonly PropertyKey[]): string {
  let out = where;
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : `${out ? '.' : ''}${String(k)}`;
  return out;
}

/** The keys the object schema at `path` of `schema` takes (for an unrecognized key's reason), when the path leads plainly to one. */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let s = schema as unknown as { _zod: { def: Record<string, unknown> } };
  for (let i = 0; ; ) {
    const def = s._zod.def;
    const t = def.type as string;
    if (t === 'optional' || t === 'default' || t === 'nullable' || t === 'prefault' || t === 'readonly' || t === 'nonoptional') s = def.innerType as typeof s;
    else if (t === 'pipe') s = def.in as typeof s;
    else if (i === path.length) return t === 'object' ? Object.keys(def.shape as object) : undefined;
    else if (t === 'object') s = (def.shape as Record<string, typeof s>)[String(path[i++])];
    else if (t === 'array') (s = def.element as typeof s), i++;
    else if (t === 'record') (s = def.valueType as typeof s), i++;
    else return undefined;
    if (!s) return undefined;
  }
}

/**
 * Parses one part of a request; zod issues become a 400 naming each field. A
 * key the schema does not take is refused (every request object is strict),
 * one detail per key, naming it: `body.Op`, "unrecognized key".
 */
export function parsePart<T extends z.ZodType>(schema: T, value: unknown, where: 'params' | 'query' | 'body'): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const details = r.error.issues.flatMap((i) => {
    if (i.code !== 'unrecognized_keys') return [{ field: fieldPath(where, i.path), reason: i.message }];
    const known = keysAt(schema, i.path);
    const takes = known ? ` (${known.length ? `known: ${known.join(', ')}` : `this ${where === 'query' ? 'route takes no query parameters' : 'object takes no keys'}`})` : '';
    return i.keys.map((k) => ({ field: fieldPath(where, [...i.path, k]), reason: `unrecognized key${takes}` }));
  });
  throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid ${where}: ${details[0].field}: ${details[0].reason}`, details);
}

export function route<P extends z.ZodType = z.ZodUnknown, Q extends z.ZodType = z.ZodUnknown, B extends z.ZodType = z.ZodUnknown>(
  app: FastifyInstance,
  spec: RouteSpec<P, Q, B>,
  handler: (req: FastifyRequest, reply: FastifyReply, parsed: Parsed<z.infer<P>, z.infer<Q>, z.infer<B>>) => unknown,
): void {
  const response: Record<string, unknown> = {};
  for (const [status, s] of Object.entries(spec.responses)) {
    if (s === 'error') response[status] = { description: ERROR_DESCRIPTIONS[Number(status)] ?? 'Error', ...toJsonSchema(ErrorBody) };
    else if (s instanceof z.ZodType) response[status] = { description: s.description ?? 'OK', ...toJsonSchema(s) };
    else response[status] = { description: s.description, content: { [s.contentType]: { schema: { type: 'string' } } } };
  }
  const schema: Record<string, unknown> = { operationId: spec.operationId, summary: spec.summary, tags: spec.tags, response };
  if (spec.description) schema.description = spec.description;
  if (spec.params) schema.params = toJsonSchema(spec.params);
  if (spec.query) schema.querystring = toJsonSchema(spec.query);
  if (spec.body || spec.consumes) {
    const content: Record<string, unknown> = {};
    if (spec.body) content['application/json'] = { schema: toJsonSchema(spec.body) };
    for (const ct of spec.consumes ?? []) content[ct] = { schema: { type: 'string', format: 'binary' } };
    schema.body = spec.body && !spec.consumes ? toJsonSchema(spec.body) : { content };
  }
  app.route({
    method: spec.method,
    url: spec.url,
    schema,
    // A body parsed into memory (a JSON `body`, also its other media types) counts against the writes' byte budget; streamed uploads do not.
    // rowsChecked is read by the JSON body parser (server.ts): a route whose checkBody hands every row to the row validator skips the body walk.
    config: {
      access: spec.scope,
      hot: spec.hot,
      work: spec.work,
      bodyInMemory: spec.body !== undefined,
      rowsChecked: spec.checkBody !== undefined,
      rowsOffThread: spec.rowsOffThread,
      keepText: spec.keepText,
      accepts: [...(spec.body ? ['application/json'] : []), ...(spec.consumes ?? [])],
    },
    // zod validates inside the handler so errors take our shape; Fastify's own validation is off.
    validatorCompiler: () => () => true,
    // Not async: a handler that answers without waiting skips a promise per request; Fastify catches what it throws.
    handler: (req, reply) => {
      if (spec.body && !isJson(req)) refuseUnlessConsumed(req, spec.consumes);
      const parsed = spec.parse?.(req) ?? {
        params: spec.params ? parsePart(spec.params, req.params, 'params') : req.params,
        // A route that takes no query parameters refuses any (a misspelled one would otherwise pass unseen).
        query: parsePart(spec.query ?? NO_QUERY, req.query, 'query'),
        body: spec.body && isJson(req) ? (spec.checkBody ? spec.checkBody(req.body) : parsePart(spec.body, req.body, 'body')) : req.body,
      } as Parsed<z.infer<P>, z.infer<Q>, z.infer<B>>;
      return handler(req, reply, parsed);
    },
  });
}

const NO_QUERY = z.strictObject({});

const isJson = (req: FastifyRequest): boolean => {
  const ct = req.headers['content-type'];
  return ct === undefined || ct.startsWith('application/json');
};

/**
 * A JSON route reached with another media type that some parser accepted (an
 * NDJSON or Arrow body sent to a route that takes only JSON) is refused with
 * 415, never handed to a handler that expects an object.
 */
function refuseUnlessConsumed(req: FastifyRequest, consumes: string[] | undefined): void {
  const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  // Parsed JSON (an object), or a file body streamed to a route of an upload scope (uploads.ts), is the route's to read.
  if (consumes?.includes(ct) || (req.body !== null && typeof req.body === 'object' && !Buffer.isBuffer(req.body))) return;
  throw unsupportedMediaType(ct || undefined, ['application/json', ...(consumes ?? [])]);
}

/**
 * The 415 for a body of media type `contentType` (undefined: none was sent)
 * on a route that takes `accepts` (route config: its JSON body, then its
 * `consumes`), listing them all, in the message and in `details.accepted`.
 */
export function unsupportedMediaType(contentType: string | undefined, accepts: readonly string[]): AsofError {
  // A route without a body (none declared) says what the other routes take.
  const accepted = accepts.length ? [...accepts] : ['application/json'];
  const list = accepted.length > 1 ? `${accepted.slice(0, -1).join(', ')} or ${accepted.at(-1)}` : accepted[0];
  const hint = contentType === undefined ? ' and say so in Content-Type' : '';
  return new AsofError('ASOF_UNSUPPORTED_MEDIA_TYPE', `Content-Type ${contentType ?? '(none)'} is not accepted here: send ${list}${hint}`, { accepted });
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input; details name each bad field (and row).',
  401: 'No valid API key.',
  403: 'Not allowed.',
  404: 'Not found.',
  409: 'Conflict or incompatible schema change.',
  413: 'Body or batch too large.',
  415: 'Unsupported media type.',
  429: 'Overloaded; retry with backoff.',
  503: 'A backend is down or the server is not ready; retry.',
};
